"""Greedy relation association (baseline and VidVRD-II), the baseline's confidence bug, segments;
the vectorised association against the pair-at-a-time reference."""

import subprocess
import sys

import numpy as np
import pytest

from pyvrel.data import Relation
from pyvrel.data.synthetic import SynthConfig, generate_video
from pyvrel.eval import evaluate_relations
from pyvrel.eval import _association
from pyvrel.eval.association import (SegmentRelation, Track, associate, cubic_iou, cubic_iou_matrix, cut_relations,
                                     segment_spans)
from pyvrel.eval.reference import associate_reference

T, U = ("dog", "chase", "ball"), ("dog", "bite", "ball")


def seg_rel(span, score, triplet=T, dx=0.0, sub_span=None):
    s, e = sub_span or span
    box = np.array([[10 + dx, 10, 29 + dx, 29]] * (e - s))
    return SegmentRelation(triplet, score, Track(s, box), Track(s, box + 50))


def test_segment_spans():
    assert segment_spans(100) == [(0, 30), (15, 45), (30, 60), (45, 75), (60, 90)]
    assert segment_spans(30) == [(0, 30)] and segment_spans(29) == []
    with pytest.raises(ValueError, match="positive"):
        segment_spans(100, stride=0)


def test_cubic_iou_uses_the_temporal_intersection_only():
    a = Track(0, [[0, 0, 9, 9]] * 10)
    b = Track(5, [[0, 0, 9, 9]] * 10)
    assert cubic_iou(a, b) == 1.0  # the frames only one track covers are ignored
    c = Track(12, [[5, 0, 14, 9]] * 3)
    assert cubic_iou(a, c) == 0.0
    assert cubic_iou(a, c, temporal_tolerance=3) == pytest.approx(50 / 150)  # last box vs first box
    assert cubic_iou(a, c, temporal_tolerance=2) == 0.0


@pytest.mark.parametrize("pixel_offset", [0, 1])
def test_cubic_iou_matrix_equals_cubic_iou_bit_for_bit(pixel_offset):
    # spans up to 40 frames: sums past NumPy's 8-element pairwise blocks; some inverted boxes, disjoint spans
    rng = np.random.default_rng(pixel_offset)

    def track():
        xy = rng.uniform(0, 100, (int(rng.integers(1, 41)), 2))
        return Track(int(rng.integers(0, 40)), np.concatenate([xy, xy + rng.uniform(-2, 60, xy.shape)], 1))

    for n, m in [(0, 3), (3, 0), (1, 1), (6, 7), (7, 5)]:
        a, b = [track() for _ in range(n)], [track() for _ in range(m)]
        got = cubic_iou_matrix(a, b, pixel_offset)
        assert got.shape == (n, m) and got.dtype == np.float64
        assert got.tolist() == [[cubic_iou(x, y, pixel_offset) for y in b] for x in a]
    assert cubic_iou_matrix([Track(0, [[0, 0, 9, 9]] * 10)], [Track(10, [[0, 0, 9, 9]] * 5)]).tolist() == [[0.0]]


def test_baseline_links_consecutive_segments_and_averages_boxes():
    segs = [((0, 30), [seg_rel((0, 30), 0.9)]), ((15, 45), [seg_rel((15, 45), 0.6, dx=2)]),
            ((30, 60), [seg_rel((30, 60), 0.3)])]
    (r,) = associate(segs)
    assert r.triplet == T and r.duration == (0, 60) and r.score == pytest.approx(0.6)
    assert r.sub_traj[0, 0] == 10 and r.sub_traj[20, 0] == 11 and r.sub_traj[50, 0] == 10
    assert r.sub_traj[35, 0] == 11  # (12 + 10) / 2 where segments 1 and 2 overlap
    # segment order in the input does not matter
    assert associate(segs[::-1])[0].duration == (0, 60)


def test_baseline_confidence_bug_is_fixed_by_default_and_reproducible():
    segs = [((0, 30), [seg_rel((0, 30), 0.9, triplet=U)]),
            ((15, 45), [seg_rel((15, 45), 0.2)]), ((30, 60), [seg_rel((30, 60), 0.4)])]
    fixed = {r.triplet: r.score for r in associate(segs)}
    buggy = {r.triplet: r.score for r in associate(segs, reproduce_baseline_bug=True)}
    assert fixed[T] == pytest.approx(0.3) and buggy[T] == pytest.approx(0.7)  # mean(1.0, 0.4)
    assert fixed[U] == buggy[U] == 0.9  # segment-0 relations start with their score either way
    with pytest.raises(ValueError, match="'baseline' only"):
        associate(segs, "vidvrd2", reproduce_baseline_bug=True)


def test_linking_rules():
    # different triplets, low overlap, or a skipped segment: no link
    assert len(associate([((0, 30), [seg_rel((0, 30), 0.9)]), ((15, 45), [seg_rel((15, 45), 0.8, U)])])) == 2
    assert len(associate([((0, 30), [seg_rel((0, 30), 0.9)]), ((15, 45), [seg_rel((15, 45), 0.8, dx=15)])])) == 2
    skipped = [((0, 30), [seg_rel((0, 30), 0.9)]), ((15, 45), []), ((30, 60), [seg_rel((30, 60), 0.8)])]
    assert len(associate(skipped)) == 2
    # a relation is extended at most once per segment: the duplicate starts a new relation
    dup = [((0, 30), [seg_rel((0, 30), 0.9)]), ((15, 45), [seg_rel((15, 45), 0.8), seg_rel((15, 45), 0.7)])]
    out = associate(dup)
    assert sorted(r.duration for r in out) == [(0, 45), (15, 45)]
    # only the top segment_topk predictions of a segment take part
    assert len(associate([((0, 30), [seg_rel((0, 30), s / 10) for s in range(5)])], segment_topk=3)) == 3


def test_vidvrd2_sums_scores_is_strict_and_bridges_gaps():
    segs = [((0, 30), [seg_rel((0, 30), 0.9)]), ((15, 45), [seg_rel((15, 45), 0.6)])]
    (r,) = associate(segs, "vidvrd2")
    assert r.score == pytest.approx(1.5) and r.duration == (0, 45)
    # cubic IoU exactly 0.5: the baseline links (>=), VidVRD-II does not (>)
    wide = lambda span, score, dx: SegmentRelation(T, score, Track(span[0], [[10 + dx, 10, 39 + dx, 29]] * 30),  # noqa: E731
                                                   Track(span[0], [[10 + dx, 60, 39 + dx, 79]] * 30))
    half = [((0, 30), [wide((0, 30), 0.9, 0)]), ((15, 45), [wide((15, 45), 0.6, 10)])]
    assert cubic_iou(half[0][1][0].sub, half[1][1][0].sub) == 0.5
    assert len(associate(half, "baseline")) == 1 and len(associate(half, "vidvrd2")) == 2
    # a 5-frame gap is bridged (end boxes compared, gap interpolated); the baseline needs overlap
    gap = [((0, 30), [seg_rel((0, 30), 0.9, sub_span=(0, 20))]),
           ((15, 45), [seg_rel((15, 45), 0.5, dx=4, sub_span=(25, 45))])]
    (r,) = associate(gap, "vidvrd2")
    assert r.duration == (0, 45) and r.sub_traj[22, 0] == pytest.approx(10 + 4 * 3 / 6)
    assert len(associate(gap, "baseline")) == 2
    # 1-frame relations are dropped; the top association_topk are kept
    one = [((0, 30), [seg_rel((0, 30), 0.9, sub_span=(3, 4)), seg_rel((0, 30), 0.1, U)])]
    assert [r.triplet for r in associate(one, "vidvrd2")] == [U]
    many = [((0, 30), [seg_rel((0, 30), s / 10, (str(s), "p", "o")) for s in range(10)])]
    assert [r.score for r in associate(many, "vidvrd2", association_topk=3)] == [0.9, 0.8, 0.7]


def test_cut_relations_keeps_the_pieces_inside_a_segment():
    traj = np.arange(80.0).reshape(20, 4)
    r = Relation(T, (0, 20), traj, traj + 1)
    (piece,) = cut_relations([r, Relation(U, (45, 65), traj, traj)], 15, 45, score=0.3)
    assert piece.triplet == T and piece.score == 0.3 and (piece.sub.start, piece.obj.start) == (15, 15)
    assert piece.sub.boxes.tolist() == traj[15:].tolist() and piece.obj.boxes.tolist() == (traj[15:] + 1).tolist()
    assert len(cut_relations([r], 18, 48)) == 1 and cut_relations([r], 19, 49) == []  # 2 frames kept, 1 dropped
    assert len(cut_relations([r], 19, 49, min_frames=1)) == 1


@pytest.mark.parametrize("algorithm", ["baseline", "vidvrd2"])
def test_associating_ground_truth_pieces_recovers_the_relations(algorithm):
    video = generate_video(SynthConfig(seed=11, features=False), 0)
    gt = video.annotation.relation_view()
    segs = [((s, e), cut_relations(gt, s, e, score=0.5)) for s, e in segment_spans(video.annotation.frame_count)]
    out = associate(segs, algorithm, segment_topk=10_000, association_topk=10_000)
    res = evaluate_relations({"v": gt}, {"v": out})
    assert res["RelDet"]["R@100"] >= 0.8 and res["RelTag"]["P@5"] == 1.0


@pytest.mark.parametrize("algorithm", ["baseline", "vidvrd2"])
def test_linking_a_candidate_that_is_not_the_first_of_its_segment(algorithm):
    # two relations of one triplet in segment 0; the weaker one links: removing it from the
    # candidates must not compare the stronger one's box arrays (it once raised ValueError)
    far = seg_rel((0, 30), 0.9, dx=400)
    segs = [((0, 30), [far, seg_rel((0, 30), 0.5)]), ((15, 45), [seg_rel((15, 45), 0.8)])]
    out = associate(segs, algorithm)
    assert len(out) == 2 and max(r.duration[1] for r in out) == 45


def _random_track(rng, base, start, length):
    """A jittered piece of the base track ``base (F, 4)``: frames [start, start + length)."""
    boxes = base[start: start + length] + rng.normal(0, rng.choice([0.5, 4.0, 20.0]), (length, 4))
    return Track(start, boxes)


def _random_segments(rng, frames=150, length=30, stride=15):
    """A video's segments: predictions of a few triplets on jittered pieces of a few base tracks,
    some shorter than the segment, some empty, some with gaps to the previous segment."""
    bases = []
    for _ in range(4):
        xy = rng.uniform(0, 300, 2) + np.cumsum(rng.normal(0, 3, (frames + 60, 2)), 0)
        bases.append(np.concatenate([xy, xy + rng.uniform(20, 120, 2)], 1))
    triplets = [("a", "p", "b"), ("a", "q", "b"), ("c", "p", "a")]
    segs = []
    for s, e in segment_spans(frames, length, stride):
        preds = []
        for _ in range(int(rng.integers(0, 12))):
            tracks = []
            for base in rng.choice(len(bases), 2, replace=False).tolist():
                lo = int(rng.integers(s, e - 1)) if rng.random() < 0.3 else s
                hi = int(rng.integers(lo + 1, e + 1)) if rng.random() < 0.3 else e
                if rng.random() < 0.03:
                    hi = lo  # an empty track
                tracks.append(_random_track(rng, bases[base], lo, hi - lo))
            preds.append(SegmentRelation(triplets[int(rng.integers(len(triplets)))],
                                         float(rng.choice([0.5, rng.random()])), *tracks))
        segs.append(((s, e), preds))
    return segs


@pytest.mark.parametrize("algorithm,bug", [("baseline", False), ("baseline", True), ("vidvrd2", False)])
def test_associate_equals_the_reference_on_random_videos(algorithm, bug):
    rng = np.random.default_rng(1)
    links = 0
    for video in range(16):  # the last: 200-frame segments (sums of > 128 frames)
        segs = _random_segments(rng) if video < 15 else _random_segments(rng, 500, 200, 100)
        kw = dict(segment_topk=8, linkage_threshold=float(rng.choice([0.0, 0.3, 0.5])), pixel_offset=int(rng.integers(2)),
                  temporal_tolerance=int(rng.choice([1, 5, 30])), reproduce_baseline_bug=bug, association_topk=15)
        got, expected = associate(segs, algorithm, **kw), associate_reference(segs, algorithm, **kw)
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            assert (g.triplet, g.duration, g.score) == (e.triplet, e.duration, e.score)
            assert np.array_equal(g.sub_traj, e.sub_traj) and np.array_equal(g.obj_traj, e.obj_traj)
        links += sum(r.duration[1] - r.duration[0] > 30 for r in got)
    assert links > 10  # relations were extended


@pytest.mark.parametrize("algorithm", ["baseline", "vidvrd2"])
def test_relations_over_many_segments_score_as_numpy_sums(algorithm):
    rng = np.random.default_rng(2)
    spans = segment_spans(2000)  # 132 segments: relations of 132 confidences
    scores = rng.random((6, len(spans))) * 10.0 ** rng.integers(-6, 1, (6, len(spans)))  # magnitudes: rounding shows
    box = np.array([[10.0, 10.0, 50.0, 50.0]]) + rng.normal(0, 0.5, (2000, 4))
    segs = [((s, e), [SegmentRelation((str(k), "p", "o"), float(c[i]), Track(s, box[s:e] + 100 * k),
                                      Track(s, box[s:e] + 3)) for k, c in enumerate(scores)])
            for i, (s, e) in enumerate(spans)]
    got = sorted(associate(segs, algorithm), key=lambda r: r.triplet)
    assert [r.duration for r in got] == [(0, 1995)] * 6
    assert [r.score for r in got] == (np.sum(scores, 1) if algorithm == "vidvrd2" else np.mean(scores, 1)).tolist()
    expected = sorted(associate_reference(segs, algorithm), key=lambda r: r.triplet)
    assert [r.score for r in got] == [r.score for r in expected]
    assert all(np.array_equal(r.sub_traj, e.sub_traj) for r, e in zip(got, expected))


def test_associate_runs_in_cpp_without_torch(tmp_path):
    code = ("import sys\nimport numpy as np\nfrom pyvrel.eval import _association, associate\n"
            "from pyvrel.eval.association import SegmentRelation, Track\n"
            "b = np.array([[0, 0, 9, 9]] * 30, float)\n"
            "segs = [((s, s + 30), [SegmentRelation(('a', 'b', 'c'), 0.5, Track(s, b), Track(s, b))]) for s in (0, 15)]\n"
            "assert _association.available() and [r.duration for r in associate(segs)] == [(0, 45)]\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]


def test_associate_without_the_extension_runs_the_reference(monkeypatch):
    segs = _random_segments(np.random.default_rng(3))
    expected = associate(segs, "vidvrd2")
    monkeypatch.setattr(_association, "available", lambda: False)
    monkeypatch.setattr(_association, "link", None)  # never called
    got = associate(segs, "vidvrd2")
    assert [(r.triplet, r.duration, r.score) for r in got] == [(r.triplet, r.duration, r.score) for r in expected]
