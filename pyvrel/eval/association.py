"""Greedy relation association: segment-level relation predictions -> video-level relations, as
the MM'17 VidVRD baseline and VidVRD-II do it.

Videos are cut into short overlapping segments (:func:`segment_spans`: 30 frames, stride 15); a
model predicts relations per segment; association links a segment's prediction to a relation of
the *previous* segment with the same triplet whose subject and object tracks overlap it enough,
and extends it. Both algorithms share that structure:

``"baseline"`` (VidVRD-helper ``baseline/association.py``)
    Top ``segment_topk=100`` predictions per segment, segments by start frame. Segment 0 starts a
    relation per prediction. Later, each prediction (by descending score) is compared with the
    relations created or extended in the previous segment that are not yet extended in this one,
    sorted by mean confidence (descending); the first with the same triplet, both tracks starting
    before the relation's end, and cubic IoU (over the temporal intersection, +1 pixel areas)
    ``>= 0.5`` for the subject and the object is extended: boxes of shared frames are averaged, new
    frames appended, the confidence appended. Otherwise the prediction starts a new relation.
    Every relation is output with ``score = mean(confidences)``. The released code starts new
    relations of later segments with confidence 1.0 instead of their score (``confs`` defaults to
    1), which inflates them: pyvrel uses the score, and ``reproduce_baseline_bug=True`` gives the
    released behaviour.

``"vidvrd2"`` (VidVRD-II ``common/association.py``, ``association_algorithm: greedy``)
    The same loop with ``score = sum`` of the segment scores, candidates sorted by that score, and
    linkage when the cubic IoU is ``> linkage_threshold`` (strict; 0.5) for the subject and then the
    object; tracks that do not overlap but are less than ``temporal_tolerance=30`` frames apart are
    compared by the IoU of the last box of one and the first box of the other. Joining averages
    shared frames and interpolates gaps linearly. Output relations span the intersection of their
    subject and object tracks, are dropped when that is at most 1 frame, and only the
    ``association_topk=200`` best are kept.

The output is a list of :class:`~pyvrel.data.Relation` (official prediction records) whose
duration is the intersection of the subject and object tracks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from pyvrel.data.boxes import box_areas, box_intersections, box_ious
from pyvrel.data.relations import Relation, Triplet
from pyvrel.data.segments import segment_spans  # re-exported: pyvrel.eval.segment_spans
from pyvrel.eval import _association

__all__ = ["Track", "SegmentRelation", "segment_spans", "cut_relations", "cubic_iou", "cubic_iou_matrix",
           "associate"]


@dataclass
class Track:
    """A box track: ``boxes[i]`` (x1, y1, x2, y2) is at frame ``start + i``."""

    start: int
    boxes: np.ndarray

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)

    @property
    def end(self) -> int:
        return self.start + len(self.boxes)


@dataclass
class SegmentRelation:
    """One segment-level prediction: triplet, score, subject and object tracks."""

    triplet: Triplet
    score: float
    sub: Track
    obj: Track


def cut_relations(relations: Sequence[Relation], begin: int, end: int, score: float = 1.0, min_frames: int = 2
                  ) -> list[SegmentRelation]:
    """The parts of video-level ``relations`` inside frames ``[begin, end)`` that keep ``>= min_frames``
    frames, in input order, as segment predictions of confidence ``score``: what a segment model that
    saw the ground truth would predict (the inverse of :func:`associate`, for its tests and benchmark)."""
    out = []
    for r in relations:
        lo, hi = max(begin, r.duration[0]), min(end, r.duration[1])
        if hi - lo >= max(min_frames, 1):
            a, b = lo - r.duration[0], hi - r.duration[0]
            out.append(SegmentRelation(r.triplet, score, Track(lo, r.sub_traj[a:b]), Track(lo, r.obj_traj[a:b])))
    return out


def cubic_iou(a: Track, b: Track, pixel_offset: float = 1, temporal_tolerance: int = 0) -> float:
    """Spatio-temporal IoU of two tracks over their temporal intersection (volumes of the shared
    frames only). Without shared frames: 0, unless the gap between them is below
    ``temporal_tolerance`` frames; then the IoU of the earlier track's last box and the later
    track's first box (VidVRD-II)."""
    lo, hi = max(a.start, b.start), min(a.end, b.end)
    if hi <= lo:
        first, second = (a, b) if a.start <= b.start else (b, a)
        if len(a.boxes) and len(b.boxes) and second.start - first.end < temporal_tolerance:
            return float(box_ious(first.boxes[-1], second.boxes[0], pixel_offset))
        return 0.0
    x, y = a.boxes[lo - a.start: hi - a.start], b.boxes[lo - b.start: hi - b.start]
    inter = float(box_intersections(x, y, pixel_offset).sum())
    union = float(box_areas(x, pixel_offset).sum() + box_areas(y, pixel_offset).sum()) - inter
    return inter / union if union > 0 else 0.0


def cubic_iou_matrix(a: Sequence[Track], b: Sequence[Track], pixel_offset: float = 1) -> np.ndarray:
    """``(len(a), len(b))`` float64: :func:`cubic_iou` of every pair (``temporal_tolerance`` 0: pairs
    without shared frames give 0), bit for bit: the pairs of each length of temporal intersection in
    one NumPy pass, every per-pair sum over its own contiguous run of frames, as :func:`cubic_iou`."""
    out = np.zeros((len(a), len(b)))
    if not len(a) or not len(b):
        return out
    starts = [np.array([t.start for t in ts]) for ts in (a, b)]
    boxes = []
    for ts in (a, b):
        padded = np.zeros((len(ts), max(len(t.boxes) for t in ts), 4))
        for i, t in enumerate(ts):
            padded[i, : len(t.boxes)] = t.boxes
        boxes.append(padded)
    lo = np.maximum(starts[0][:, None], starts[1][None])
    shared = np.minimum(np.array([t.end for t in a])[:, None], np.array([t.end for t in b])[None]) - lo
    for length in np.unique(shared[shared > 0]):
        i, j = np.nonzero(shared == length)
        frames = lo[i, j][:, None] + np.arange(length)
        x, y = boxes[0][i[:, None], frames - starts[0][i, None]], boxes[1][j[:, None], frames - starts[1][j, None]]
        inter = box_intersections(x, y, pixel_offset).sum(1)
        union = box_areas(x, pixel_offset).sum(1) + box_areas(y, pixel_offset).sum(1) - inter
        out[i, j] = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    return out


@dataclass(eq=False)  # identity: candidates.remove() must not compare the box arrays
class _Linked:
    triplet: Triplet
    sub: Track
    obj: Track
    confs: list[float] = field(default_factory=list)

    def score(self, mode: str) -> float:
        return float(np.sum(self.confs)) if mode == "vidvrd2" else float(np.mean(self.confs))


def _check(algorithm: str, reproduce_baseline_bug: bool) -> None:
    if algorithm not in ("baseline", "vidvrd2"):
        raise ValueError(f"associate: algorithm must be 'baseline' or 'vidvrd2', got {algorithm!r}")
    if reproduce_baseline_bug and algorithm != "baseline":
        raise ValueError("associate: reproduce_baseline_bug applies to algorithm='baseline' only")


def _relations(linked: Sequence[_Linked], scores: Sequence[float], algorithm: str, association_topk: int
               ) -> list[Relation]:
    """The output of :func:`associate` from its linked relations (in creation order) and their scores."""
    out = []
    for r, score in zip(linked, scores):
        lo, hi = max(r.sub.start, r.obj.start), min(r.sub.end, r.obj.end)
        if hi - lo <= (1 if algorithm == "vidvrd2" else 0):
            continue
        out.append(Relation(r.triplet, (lo, hi), r.sub.boxes[lo - r.sub.start: hi - r.sub.start],
                            r.obj.boxes[lo - r.obj.start: hi - r.obj.start], score))
    order = sorted(range(len(out)), key=lambda i: -out[i].score)
    out = [out[i] for i in order]
    return out[:association_topk] if algorithm == "vidvrd2" else out


def associate(
    segments: Sequence[tuple[tuple[int, int], Sequence[SegmentRelation]]],
    algorithm: str = "baseline",
    *,
    segment_topk: int = 100,
    linkage_threshold: float = 0.5,
    temporal_tolerance: int = 30,
    association_topk: int = 200,
    pixel_offset: float = 1,
    reproduce_baseline_bug: bool = False,
) -> list[Relation]:
    """Associate one video's segment predictions into video-level relations.

    Args:
        segments: ``((begin, end), predictions)`` per segment, in any order (sorted by begin,
            stably, before linking).
        algorithm: ``"baseline"`` (MM'17) or ``"vidvrd2"`` (VidVRD-II greedy); see the module
            docstring.
        segment_topk: predictions per segment that take part (100 in both).
        linkage_threshold: cubic IoU needed for a link (``>=`` for the baseline, ``>`` for vidvrd2).
        temporal_tolerance: vidvrd2's largest gap (frames) bridged by comparing end boxes.
        association_topk: vidvrd2 keeps this many relations (the baseline keeps all).
        reproduce_baseline_bug: start later-segment baseline relations with confidence 1.0, as the
            released code does.

    Returns:
        Relations sorted by descending score (ties in creation order), trajectories over the
        intersection of the subject and object tracks. The linking runs in C++
        (:mod:`pyvrel.eval._association`); its relations are those of
        :func:`pyvrel.eval.reference.associate_reference` (the loop in Python, which also serves
        when ``pyvrel._C`` is not built) bit for bit.
    """
    _check(algorithm, reproduce_baseline_bug)
    if not _association.available():
        from pyvrel.eval.reference import associate_reference

        return associate_reference(segments, algorithm, segment_topk=segment_topk, linkage_threshold=linkage_threshold,
                                   temporal_tolerance=temporal_tolerance, association_topk=association_topk,
                                   pixel_offset=pixel_offset, reproduce_baseline_bug=reproduce_baseline_bug)
    ordered = [sorted(preds, key=lambda p: p.score, reverse=True)[:segment_topk]
               for _, preds in sorted(segments, key=lambda s: s[0][0])]
    preds, rel, scores, boxes = _association.link(ordered, algorithm, linkage_threshold,
                                                  temporal_tolerance if algorithm == "vidvrd2" else 0, pixel_offset,
                                                  reproduce_baseline_bug)
    linked, b = [], 0
    for first, sub_start, sub_len, obj_start, obj_len in rel.tolist():
        sub, obj = Track(sub_start, boxes[b: b + sub_len]), Track(obj_start, boxes[b + sub_len: b + sub_len + obj_len])
        linked.append(_Linked(tuple(preds[first].triplet), sub, obj))
        b += sub_len + obj_len
    return _relations(linked, scores.tolist(), algorithm, association_topk)
