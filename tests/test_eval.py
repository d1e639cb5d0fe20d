"""Official-parity relation evaluation: one golden test per quirk of the official code, the
variants, the crash cases, agreement with the transcribed official loop, zero-shot and splits."""

import warnings

import numpy as np
import pytest

from pyvrel.data import Relation
from pyvrel.eval import (
    evaluate_predicate_split,
    evaluate_relations,
    evaluate_zero_shot,
    match_video,
    viou_official,
    zero_shot_triplets,
)
from pyvrel.eval.reference import evaluate_reference
from pyvrel.data import RelationTable, read_prediction_table, read_predictions, write_predictions
from pyvrel.eval.relation import _pair_overlaps

T = ("dog", "chase", "ball")
BOX = [0, 0, 9, 9]


def rel(triplet=T, dur=(0, 10), sub=BOX, obj=BOX, score=None, n=None):
    """A relation with constant boxes; ``n`` boxes (default: one per frame of ``dur``)."""
    n = dur[1] - dur[0] if n is None else n
    return Relation(tuple(triplet), tuple(dur), np.array([sub] * n, dtype=np.float64),
                    np.array([obj] * n, dtype=np.float64), score)


def _overlaps(gt, preds, off):
    """min(vIoU_sub, vIoU_obj) for every (prediction, ground truth) pair, through pyvrel's path."""
    pi, gj = np.divmod(np.arange(len(preds) * len(gt)), len(gt))
    p, g = (RelationTable.from_relations({"": rels}, scores=False) for rels in (preds, gt))
    return _pair_overlaps(p, pi, g, gj, off).reshape(len(preds), len(gt))


def as_json(rels):
    return {vid: [r.to_json() for r in rs] for vid, rs in rels.items()}


def both(gt, pred, variant="official", **kw):
    """pyvrel's result, checked against the transcribed official loop."""
    ours = evaluate_relations(gt, pred, variant, **kw)
    ref = evaluate_reference(as_json(gt), as_json(pred), variant, **kw)
    for task in ("RelDet", "RelTag"):
        for k, v in ref[task].items():
            assert ours[task][k] == pytest.approx(v, abs=1e-12), (task, k)
    return ours


# ---- vIoU quirks -----------------------------------------------------------------------------


def test_viou_plus_one_and_vidvrd2():
    a, b = rel(sub=[0, 0, 9, 9]), rel(sub=[5, 0, 14, 9])
    assert viou_official(a.sub_traj, a.duration, b.sub_traj, b.duration) == pytest.approx(1 / 3)
    assert viou_official(a.sub_traj, a.duration, b.sub_traj, b.duration, 0) == pytest.approx(36 / 126)
    assert round(36 / 126, 4) == 0.2857
    ov = _overlaps([rel(sub=[5, 0, 14, 9], obj=[5, 0, 14, 9])], [rel()], 1)
    assert ov[0, 0] == 50 * 10 / (150 * 10)
    assert _overlaps([rel(sub=[5, 0, 14, 9], obj=[5, 0, 14, 9])], [rel()], 0)[0, 0] == pytest.approx(36 / 126)


def test_viou_temporal_and_adjacent():
    a, b, c = rel(dur=(0, 10)), rel(dur=(5, 15)), rel(dur=(10, 20))
    assert viou_official(a.sub_traj, a.duration, b.sub_traj, b.duration) == pytest.approx(1 / 3)
    assert viou_official(a.sub_traj, a.duration, c.sub_traj, c.duration) == 0.0
    assert viou_official(a.sub_traj, (0, 5), b.sub_traj, (5, 10)) == 0.0
    ov = _overlaps([b, c], [a], 1)
    assert ov[0, 0] == pytest.approx(1 / 3, abs=1e-15) and ov[0, 1] == 0.0


def test_overlong_trajectory_adds_volume_and_exactly_half_is_a_true_positive():
    gt = {"v": [rel(dur=(0, 2))]}
    pred = {"v": [rel(dur=(0, 2), n=4, score=1.0)]}  # 4 boxes for a duration of 2: vIoU 0.5
    assert _overlaps(gt["v"], pred["v"], 1)[0, 0] == 0.5
    assert both(gt, pred)["RelDet"]["mAP"] == 1.0  # threshold inclusive
    assert both(gt, pred, viou_threshold=0.5 + 1e-9)["RelDet"]["mAP"] == 0.0
    # the extra boxes only add volume: they never overlap frames past the duration
    gt2 = {"v": [rel(dur=(0, 4))]}
    assert _overlaps(gt2["v"], pred["v"], 1)[0, 0] == pytest.approx(2 / 6)


# ---- matching, AP, recall, tagging -----------------------------------------------------------


def test_greedy_matching_is_not_optimal():
    # p0 (higher score) overlaps g0 and g1, g1 better; p1 overlaps only g1. Greedy: p0 takes g1.
    g0, g1 = rel(sub=[0, 0, 9, 9]), rel(sub=[3, 0, 12, 9])
    p0, p1 = rel(sub=[2, 0, 11, 9], score=0.9), rel(sub=[5, 0, 14, 9], score=0.8)
    assert viou_official(p1.sub_traj, p1.duration, g0.sub_traj, g0.duration) < 0.5
    m = match_video([g0, g1], [p0, p1])
    assert m.tp.tolist() == [True, False] and m.matched.tolist() == [1, -1]
    assert both({"v": [g0, g1]}, {"v": [p0, p1]})["RelDet"]["mAP"] == 0.5


def test_equal_overlap_goes_to_the_lowest_gt_index_and_duplicates_are_false_positives():
    g = rel()
    m = match_video([g, rel()], [rel(score=0.5), rel(score=0.5), rel(score=0.5)])
    assert m.matched.tolist() == [0, 1, -1] and m.tp.tolist() == [True, True, False]


def test_ties_keep_input_order():
    gt = {"v": [rel()]}
    tp, fp = rel(score=0.7), rel(sub=[50, 50, 60, 60], score=0.7)
    assert both(gt, {"v": [tp, fp]})["RelDet"]["mAP"] == 1.0
    assert both(gt, {"v": [fp, tp]})["RelDet"]["mAP"] == 0.5


def test_all_point_ap_on_float32_precision():
    gt = {"v": [rel(), rel(sub=[100, 100, 109, 109])]}
    pred = {"v": [rel(score=0.9), rel(sub=[50, 50, 55, 55], score=0.8), rel(sub=[100, 100, 109, 109], score=0.7)]}
    ap = both(gt, pred)["RelDet"]["mAP"]
    assert ap == 0.5 + 0.5 * float(np.float32(2 / 3))  # 0.83333334, not 0.8333333333
    assert ap != pytest.approx(5 / 6, abs=1e-9)
    assert both(gt, pred, "vru")["RelDet"]["mAP"] == 0.8333


def test_recall_is_pooled_over_videos():
    gt = {"a": [rel()], "b": [rel(), rel(sub=[40, 40, 49, 49]), rel(sub=[80, 80, 89, 89])]}
    pred = {"a": [rel(score=0.9)], "b": [rel(sub=[200, 200, 209, 209], score=0.9)]}
    out = both(gt, pred)
    assert out["RelDet"]["R@50"] == 0.25 and out["RelDet"]["R@100"] == 0.25  # a per-video mean would be 0.5


def test_recall_counts_only_the_top_k():
    gt = {"v": [rel(sub=[10 * i, 0, 10 * i + 9, 9]) for i in range(3)]}
    pred = {"v": [rel(sub=[10 * i, 0, 10 * i + 9, 9], score=1 - i / 10) for i in range(3)]}
    out = both(gt, pred, det_nreturns=(1, 2, 50))
    assert [out["RelDet"][f"R@{k}"] for k in (1, 2, 50)] == [float(np.float32(1) / np.float32(3)),
                                                            float(np.float32(2) / np.float32(3)), 1.0]


def test_matched_prediction_with_infinite_score_is_a_false_positive():
    out = both({"v": [rel()]}, {"v": [rel(score=float("inf"))]})
    assert out["RelDet"]["mAP"] == 0.0 and out["RelDet"]["R@50"] == 0.0


def test_triplets_match_by_exact_string_equality():
    out = both({"v": [rel()]}, {"v": [rel(triplet=("Dog", "chase", "ball"), score=1.0)]})
    assert out["RelDet"]["mAP"] == 0.0 and out["RelTag"]["P@1"] == 0.0


def test_tagging_precision_with_few_distinct_triplets():
    ts = [("a", "p", "b"), ("a", "q", "b"), ("c", "p", "b")]
    gt = {"v": [rel(triplet=t) for t in ts]}
    pred = {"v": [rel(triplet=t, score=s, sub=[90, 90, 95, 95]) for t, s in zip(ts * 2, [.9, .8, .7, .6, .5, .4])]}
    off = both(gt, pred)["RelTag"]
    assert (off["P@1"], off["P@5"], off["P@10"]) == (1.0, 1.0, 1.0)
    v2 = both(gt, pred, "vidvrd2")["RelTag"]
    assert v2["P@5"] == pytest.approx(0.6) and v2["P@10"] == pytest.approx(0.3)
    # the first occurrence (highest score) of a triplet decides its rank
    pred = {"v": [rel(triplet=("x", "y", "z"), score=0.95), rel(triplet=ts[0], score=0.9),
                  rel(triplet=("x", "y", "z"), score=0.1)]}
    out = both(gt, pred)["RelTag"]
    assert out["P@1"] == 0.0 and out["P@5"] == 0.5


def test_gt_video_without_predictions_scores_zero_and_other_videos_are_ignored():
    gt = {"a": [rel()], "b": [rel()], "empty": []}
    pred = {"a": [rel(score=0.5)], "only_in_pred": [rel(score=1.0)]}
    out = both(gt, pred)
    assert out["RelDet"]["mAP"] == 0.5 and out["videos"] == 2
    assert out["RelTag"]["P@1"] == 0.5
    pv = evaluate_relations(gt, pred, per_video=True)["per_video"]
    assert set(pv) == {"a", "b"} and pv["a"]["AP"] == 1.0 and pv["b"]["n_pred"] == 0


def test_no_predictions_at_all():
    gt = {"a": [rel()]}
    with pytest.raises(IndexError):
        evaluate_reference(as_json(gt), {})
    with pytest.warns(RuntimeWarning, match="no prediction"):
        out = evaluate_relations(gt, {"a": []})
    assert out["RelDet"] == {"mAP": 0.0, "R@50": 0.0, "R@100": 0.0}
    assert out["RelTag"] == {"P@1": 0.0, "P@5": 0.0, "P@10": 0.0}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for variant in ("vru", "vidvrd2"):
            assert both(gt, {}, variant)["RelDet"]["R@50"] == 0.0


@pytest.mark.parametrize("variant", ["official", "vru", "vidvrd2"])
def test_no_ground_truth_relation_raises(variant):
    with pytest.raises(ValueError, match="no relation"):
        evaluate_relations({"a": [], "b": []}, {"a": [rel(score=1.0)]}, variant)
    with pytest.raises(ValueError):
        evaluate_reference({"a": []}, {}, variant)


def test_vru_keeps_the_top_200_and_rounds():
    gt = {"v": [rel()]}
    noise = [rel(sub=[500, 500, 510, 510], score=0.9) for _ in range(200)]
    pred = {"v": noise + [rel(score=0.1)]}
    assert both(gt, pred)["RelDet"]["mAP"] == pytest.approx(1 / 201)
    vru = both(gt, pred, "vru")
    assert vru["RelDet"]["mAP"] == 0.0 and vru["RelDet"]["R@100"] == 0.0
    assert evaluate_relations(gt, {"v": [rel(score=1)] * 3}, "vru", tag_nreturns=(3,))["RelTag"]["P@3"] == 1.0


def test_unknown_variant():
    with pytest.raises(ValueError, match="variant must be one of"):
        evaluate_relations({"a": [rel()]}, {}, "helper")


# ---- agreement with the transcribed official loop on random inputs ---------------------------


def random_world(rng, n_videos=6, n_gt=6, n_pred=40, tie_scores=False, overlong=0.0):
    cats, preds_ = ["a", "b", "c"], ["p", "q"]
    gt, pred = {}, {}
    for v in range(n_videos):
        g = []
        for _ in range(int(rng.integers(0, n_gt + 1))):
            t = (str(rng.choice(cats)), str(rng.choice(preds_)), str(rng.choice(cats)))
            s = int(rng.integers(0, 30))
            e = s + int(rng.integers(1, 15))
            xy = rng.integers(0, 40, size=(2, 2))
            sub = np.concatenate([xy[0], xy[0] + rng.integers(8, 30, 2)])
            obj = np.concatenate([xy[1], xy[1] + rng.integers(8, 30, 2)])
            g.append(rel(t, (s, e), sub.tolist(), obj.tolist()))
        p = []
        for _ in range(int(rng.integers(0, n_pred + 1))):
            if g and rng.random() < 0.7:  # a jittered copy of a ground truth, sometimes retimed
                src = g[int(rng.integers(0, len(g)))]
                s = max(0, src.duration[0] + int(rng.integers(-1, 2)))
                e = max(s + 1, src.duration[1] + int(rng.integers(-1, 2)))
                t = src.triplet if rng.random() < 0.8 else (src.triplet[0], "q", src.triplet[2])
                n = e - s + (int(rng.integers(1, 3)) if rng.random() < overlong else 0)
                jit = lambda b: (np.array(b) + rng.normal(0, 1.0, size=(n, 4))).round(1)  # noqa: E731
                score = float(rng.integers(0, 4)) / 4 if tie_scores else float(rng.random())
                p.append(Relation(t, (s, e), jit([src.sub_traj[0]] * n), jit([src.obj_traj[0]] * n), score))
            else:
                s = int(rng.integers(0, 30))
                p.append(rel((str(rng.choice(cats)), "p", "a"), (s, s + 5), [0, 0, 10, 10], [5, 5, 20, 20],
                             float(rng.random())))
        gt[f"v{v}"] = g
        if rng.random() < 0.85:
            pred[f"v{v}"] = p
    return gt, pred


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("variant", ["official", "vru", "vidvrd2"])
def test_matches_the_official_loop_on_random_worlds(seed, variant):
    rng = np.random.default_rng(seed)
    gt, pred = random_world(rng, tie_scores=seed % 2 == 0, overlong=0.1 if seed % 3 == 0 else 0.0)
    if not any(gt.values()):
        gt["v0"] = [rel()]
    if not any(len(pred.get(v, [])) for v, g in gt.items() if g):
        pred["v0"] = [rel(score=0.5)]
    both(gt, pred, variant, det_nreturns=(5, 50, 100), tag_nreturns=(1, 5, 10))


@pytest.mark.parametrize("seed", range(4))
def test_tables_and_records_give_identical_results(tmp_path, seed):
    """The columnar path (tables, as read by read_prediction_table) and the record path (dicts of
    Relation, converted) agree exactly, with every option and split, also after a file round trip."""
    rng = np.random.default_rng(100 + seed)
    gt, pred = random_world(rng, tie_scores=seed % 2 == 0, overlong=0.15)
    gt["v0"] = gt.get("v0") or [rel()]
    pred["extra video"] = [rel(score=0.3)]  # videos only in the predictions are ignored
    write_predictions(pred, tmp_path / "p.json")
    from_file = read_prediction_table(tmp_path / "p.json")
    records = read_predictions(tmp_path / "p.json").results
    tables = RelationTable.from_relations(gt, scores=False), RelationTable.from_relations(pred)
    kw = dict(mean_recall=True, per_video=True, det_nreturns=(3, 50), tag_nreturns=(1, 4))
    for variant in ("official", "vru", "vidvrd2"):
        want = evaluate_relations(gt, pred, variant, **kw)
        assert evaluate_relations(*tables, variant, **kw) == want
        assert evaluate_relations(gt, from_file, variant, **kw) == want
        assert evaluate_relations(gt, records, variant, **kw) == want
    train = {"t": [rel(triplet=("a", "p", "b"))]}
    for generalized in (False, True):
        want = evaluate_zero_shot(gt, pred, train, generalized=generalized)
        assert evaluate_zero_shot(tables[0], from_file, train, generalized=generalized) == want
    assert evaluate_predicate_split(*tables, {"q"}) == evaluate_predicate_split(gt, pred, {"q"})
    # the table gives its relations back
    back = from_file.relations()
    assert list(back) == list(pred)
    for vid, rels in pred.items():
        for a, b in zip(rels, back[vid], strict=True):
            assert a.triplet == b.triplet and a.duration == b.duration and a.score == b.score
            np.testing.assert_array_equal(a.sub_traj, b.sub_traj)
            np.testing.assert_array_equal(a.obj_traj, b.obj_traj)


def test_prediction_table_without_the_cpp_pass(tmp_path, monkeypatch):
    """Without the C++ extension every relation goes through Relation.from_json: same table."""
    from pyvrel import _ext

    _, pred = random_world(np.random.default_rng(7), overlong=0.2)
    write_predictions(pred, tmp_path / "p.json")
    fast = read_prediction_table(tmp_path / "p.json")
    monkeypatch.setattr(_ext, "has_cpu_ext", lambda: False)
    plain = read_prediction_table(tmp_path / "p.json")
    for name in ("offsets", "triplet_id", "duration", "score"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(plain, name))
    assert fast.videos == plain.videos and fast.triplets == plain.triplets
    for rows in ("sub_rows", "obj_rows"):
        for a, b in zip(getattr(fast, rows).tolist(), getattr(plain, rows).tolist()):
            np.testing.assert_array_equal(fast.boxes[a[0]: a[0] + a[1]], plain.boxes[b[0]: b[0] + b[1]])


def test_vru_top_200_over_several_videos():
    gt, pred = random_world(np.random.default_rng(11), n_videos=4, n_gt=8, n_pred=600, tie_scores=True)
    assert sum(len(p) > 200 for p in pred.values()) >= 2
    big = max(pred, key=lambda v: len(pred[v]))
    gt.setdefault(big, []).append(rel(triplet=("z", "z", "z")))
    pred[big].append(rel(triplet=("z", "z", "z"), score=-1.0))  # matches, but ranks past 200
    vru, official = both(gt, pred, "vru"), both(gt, pred)
    assert vru["RelDet"]["mAP"] < round(official["RelDet"]["mAP"], 4)


def test_tables_are_checked():
    with pytest.raises(ValueError, match="video 'v': relation \\[1\\] is a prediction without a score"):
        RelationTable.from_relations({"v": [rel(score=0.5), rel()]})
    with pytest.raises(ValueError, match="video 'v': relation \\[0\\] has fewer boxes than its duration"):
        RelationTable.from_relations({"v": [rel(dur=(0, 5), n=4, score=0.5)]})
    gt = RelationTable.from_relations({"v": [rel()]}, scores=False)
    with pytest.raises(ValueError, match="prediction table has no scores"):
        evaluate_relations(gt, gt)


def test_the_cpp_pair_kernel_equals_the_batched_tube_op():
    gt, pred = random_world(np.random.default_rng(5), overlong=0.2)
    g, p = RelationTable.from_relations(gt, scores=False), RelationTable.from_relations(pred)
    pi, gj = np.divmod(np.arange(len(p) * len(g)), len(g))
    np.testing.assert_array_equal(_pair_overlaps(p, pi, g, gj, 1, use_ext=True),
                                  _pair_overlaps(p, pi, g, gj, 1, use_ext=False))
    np.testing.assert_array_equal(_pair_overlaps(p, pi, g, gj, 0, use_ext=True),
                                  _pair_overlaps(p, pi, g, gj, 0, use_ext=False))


def test_batched_overlaps_do_not_depend_on_the_batch_size():
    gt, pred = random_world(np.random.default_rng(9), overlong=0.2)
    g, p = RelationTable.from_relations(gt, scores=False), RelationTable.from_relations(pred)
    pi, gj = np.divmod(np.arange(len(p) * len(g)), len(g))  # every pair, equal triplets or not
    one_by_one = _pair_overlaps(p, pi, g, gj, 1, budget=1, use_ext=False)
    together = _pair_overlaps(p, pi, g, gj, 1, use_ext=False)
    np.testing.assert_array_equal(one_by_one, together)
    # and each value is the official vIoU, computed pair by pair
    preds, gts = [r for rs in pred.values() for r in rs], [r for rs in gt.values() for r in rs]
    assert len(pi) > 20 and sum(r.overlong for r in preds + gts) > 0
    for q, (i, j) in enumerate(zip(pi.tolist(), gj.tolist())):
        a, b = preds[i], gts[j]
        want = min(viou_official(a.sub_traj.tolist(), a.duration, b.sub_traj.tolist(), b.duration),
                   viou_official(a.obj_traj.tolist(), a.duration, b.obj_traj.tolist(), b.duration))
        assert together[q] == want


# ---- zero-shot, splits, mean recall ------------------------------------------------------------


def test_zero_shot_and_generalized():
    seen, unseen = ("a", "p", "b"), ("a", "q", "b")
    train = {"t": [rel(triplet=seen)]}
    gt = {"v1": [rel(triplet=seen), rel(triplet=unseen, sub=[40, 40, 49, 49])], "v2": [rel(triplet=seen)]}
    pred = {"v1": [rel(triplet=seen, score=0.9), rel(triplet=unseen, sub=[40, 40, 49, 49], score=0.8)],
            "v2": [rel(triplet=seen, score=0.9)]}
    assert zero_shot_triplets(train, gt) == {unseen} == zero_shot_triplets([list(seen)], gt)
    zs = evaluate_zero_shot(gt, pred, train)
    assert zs["videos"] == 1 and zs["triplets"] == 1 and zs["RelDet"]["mAP"] == 1.0 and zs["RelTag"]["P@1"] == 1.0
    gzs = evaluate_zero_shot(gt, pred, train, generalized=True)
    assert gzs["RelDet"]["mAP"] == 0.5 and gzs["RelTag"]["P@1"] == 0.0  # the seen triplet ranks first


def test_predicate_split_and_mean_recall():
    gt = {"v": [rel(triplet=("a", "p", "b")), rel(triplet=("a", "q", "b"), sub=[40, 40, 49, 49]),
                rel(triplet=("a", "q", "b"), sub=[80, 80, 89, 89])]}
    pred = {"v": [rel(triplet=("a", "p", "b"), score=0.9), rel(triplet=("a", "q", "b"), sub=[40, 40, 49, 49], score=0.3)]}
    out = evaluate_relations(gt, pred, mean_recall=True, det_nreturns=(1, 50))
    det = out["RelDet"]
    assert det["R@50"] == pytest.approx(2 / 3) and det["mR@50"] == pytest.approx((1 + 0.5) / 2)
    assert det["R@1"] == pytest.approx(1 / 3) and det["mR@1"] == pytest.approx(0.5)
    assert det["Mean"] == pytest.approx((det["mR@1"] + det["mR@50"] + det["R@1"] + det["R@50"]) / 4)
    novel = evaluate_predicate_split(gt, pred, {"q"})
    assert novel["RelDet"]["R@50"] == 0.5 and novel["RelDet"]["mAP"] == 0.5
