"""Grounding accuracy, trajectory recall, and hypothesis property tests of metric invariants."""

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyvrel.data import Relation
from pyvrel.data.synthetic import SynthConfig, World, generate_video
from pyvrel.eval import evaluate_relations, frame_tiou, grounding_accuracy, trajectory_recall
from pyvrel.eval.reference import evaluate_reference
from pyvrel.ops import Tubes


def rel(triplet=("a", "p", "b"), dur=(0, 10), sub=(0, 0, 9, 9), obj=(0, 0, 9, 9), score=None):
    n = dur[1] - dur[0]
    return Relation(tuple(triplet), tuple(dur), np.array([sub] * n, float), np.array([obj] * n, float), score)


# ---- grounding -----------------------------------------------------------------------------------


def test_frame_tiou():
    box = np.array([[0, 0, 9, 9]] * 10, float)
    assert frame_tiou(box, (0, 10), box, (0, 10)) == 1.0
    assert frame_tiou(box, (0, 10), box, (5, 15)) == pytest.approx(5 * 3 / (3 * 15))
    assert frame_tiou(box, (0, 10), box, (10, 20)) == 0.0
    shifted = box + [3, 0, 3, 0]  # per-frame IoU 7/13 = 0.54: passes 0.3 and 0.5, not 0.7
    assert frame_tiou(box, (0, 10), shifted, (0, 10)) == pytest.approx(2 / 3)
    assert frame_tiou(box, (0, 10), shifted, (0, 10), iou_thresholds=(0.5,)) == 1.0


def test_grounding_accuracy():
    t1, t2, t3 = ("a", "p", "b"), ("a", "q", "b"), ("c", "p", "d")
    far = (100, 100, 109, 109)
    gt = {"v1": [rel(t1), rel(t2)], "v2": [rel(t3)], "empty": []}
    groundings = {"v1": {t1: rel(t1), t2: rel(t2, obj=far)}, "v2": {}}
    out = grounding_accuracy(gt, groundings, per_video=True)
    assert out["per_video"]["v1"] == {"AccS": 1.0, "AccO": 0.5, "AccR": 0.5, "queries": 2}
    assert (out["AccS"], out["AccO"], out["AccR"]) == (0.5, 0.25, 0.25) and out["videos"] == 2
    # subject right for one instance, object for another: AccS and AccO count, AccR does not
    gt = {"v": [rel(t1, sub=(0, 0, 9, 9), obj=far), rel(t1, sub=far, obj=(0, 0, 9, 9))]}
    out = grounding_accuracy(gt, {"v": [rel(t1)]})
    assert (out["AccS"], out["AccO"], out["AccR"]) == (1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="no relation"):
        grounding_accuracy({"v": []}, {})


def test_trajectory_recall_on_the_synthetic_world():
    cfg = SynthConfig(seed=5, confusion=0.0, false_tracks=0.0)
    world = World(cfg)
    annos, dets = {}, {}
    for i in range(4):
        v = generate_video(cfg, i, world)
        f = v.features
        tubes = Tubes(torch.from_numpy(f["tracklet_boxes"]), torch.from_numpy(f["tracklet_start"]),
                      torch.from_numpy(f["tracklet_length"]))
        annos[v.annotation.video_id] = v.annotation
        dets[v.annotation.video_id] = (tubes, f["tracklet_scores"])
    out = trajectory_recall(annos, dets, world.vocab.objects, ks=(1, 5))
    assert out["R@1"] >= 0.6 and out["R@5"] >= out["R@1"] and out["trajectories"] >= 8
    wrong = {vid: (t, s[:, ::-1].copy()) for vid, (t, s) in dets.items()}  # scores of the wrong columns
    assert trajectory_recall(annos, wrong, world.vocab.objects, ks=(1,))["R@1"] < out["R@1"]
    with pytest.raises(ValueError, match="scores must have shape"):
        trajectory_recall(annos, {k: (t, s[:, :3]) for k, (t, s) in dets.items()}, world.vocab.objects)


# ---- property tests --------------------------------------------------------------------------------

TRIPLETS = [("a", "p", "b"), ("a", "q", "b"), ("b", "p", "a")]


@st.composite
def worlds(draw):
    """Small GT/prediction sets with integer boxes, prone to ties and near-threshold overlaps."""
    gt, pred = {}, {}
    for v in range(draw(st.integers(1, 4))):
        g = []
        for _ in range(draw(st.integers(0, 4))):
            s = draw(st.integers(0, 8))
            e = s + draw(st.integers(1, 6))
            x, y = draw(st.integers(0, 10)), draw(st.integers(0, 10))
            g.append(rel(draw(st.sampled_from(TRIPLETS)), (s, e), (x, y, x + 9, y + 9), (y, x, y + 9, x + 9)))
        p = []
        for _ in range(draw(st.integers(0, 6))):
            if g and draw(st.booleans()):
                src = g[draw(st.integers(0, len(g) - 1))]
                dx = draw(st.integers(-4, 4))
                s = max(0, src.duration[0] + draw(st.integers(-1, 1)))
                e = max(s + 1, src.duration[1] + draw(st.integers(-1, 1)))
                sub = tuple(np.array(src.sub_traj[0]) + [dx, 0, dx, 0])
                tr = src.triplet if draw(st.integers(0, 3)) else draw(st.sampled_from(TRIPLETS))
                p.append(rel(tr, (s, e), sub, tuple(src.obj_traj[0]), draw(st.sampled_from([0.2, 0.5, 0.9]))))
            else:
                p.append(rel(draw(st.sampled_from(TRIPLETS)), (0, 5), (30, 30, 40, 40), (0, 0, 5, 5),
                             draw(st.floats(0, 1))))
        gt[f"v{v}"] = g
        pred[f"v{v}"] = p
    return gt, pred


def _valid(gt, pred):
    return any(gt.values()) and any(pred.get(v) for v, g in gt.items() if g)


def _flat(res):
    return {f"{t}/{k}": v for t in ("RelDet", "RelTag") for k, v in res[t].items()}


SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(worlds(), st.sampled_from(["official", "vru", "vidvrd2"]))
def test_agrees_with_the_official_loop(w, variant):
    gt, pred = w
    if not _valid(gt, pred):
        return
    ours = _flat(evaluate_relations(gt, pred, variant))
    ref = evaluate_reference({k: [r.to_json() for r in v] for k, v in gt.items()},
                             {k: [r.to_json() for r in v] for k, v in pred.items()}, variant)
    for k, v in _flat(ref).items():
        assert ours[k] == pytest.approx(v, abs=1e-12)


@SETTINGS
@given(worlds())
def test_invariances(w):
    gt, pred = w
    if not _valid(gt, pred):
        return
    base = _flat(evaluate_relations(gt, pred))
    assert all(0.0 <= v <= 1.0 for v in base.values())
    assert base["RelDet/R@50"] <= base["RelDet/R@100"] + 1e-12
    # video order, videos only in the predictions, and a strictly increasing score map (exact power-of-2 scaling) change nothing
    rev_gt = dict(reversed(list(gt.items())))
    extra = {**pred, "zz_not_in_gt": [rel(score=1.0)]}
    squashed = {v: [Relation(r.triplet, r.duration, r.sub_traj, r.obj_traj, r.score * 8) for r in rs]
                for v, rs in pred.items()}
    for other in (evaluate_relations(gt, extra), evaluate_relations(gt, squashed)):
        for k, v in _flat(other).items():
            assert v == pytest.approx(base[k], abs=1e-12)
    # the official float32 mean of P@k depends on the summation order: equal to float32 precision
    for k, v in _flat(evaluate_relations(rev_gt, pred)).items():
        assert v == pytest.approx(base[k], abs=1e-6)
    # translating every box by the same integer offset changes nothing
    moved = lambda d: {v: [Relation(r.triplet, r.duration, r.sub_traj + 7, r.obj_traj + 7, r.score)  # noqa: E731
                           for r in rs] for v, rs in d.items()}
    for k, v in _flat(evaluate_relations(moved(gt), moved(pred))).items():
        assert v == pytest.approx(base[k], abs=1e-12)


@SETTINGS
@given(worlds())
def test_perfect_predictions_score_one(w):
    gt, _ = w
    if not any(gt.values()):
        return
    perfect = {v: [Relation(r.triplet, r.duration, r.sub_traj, r.obj_traj, 1.0) for r in rs] for v, rs in gt.items()}
    res = evaluate_relations(gt, perfect)
    assert res["RelDet"]["mAP"] == 1.0 and res["RelDet"]["R@50"] == 1.0 and res["RelTag"]["P@1"] == 1.0
