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

__all__ = ["Track", "SegmentRelation", "segment_spans", "cubic_iou", "associate"]


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


def _join(a: Track, b: Track) -> Track:
    """Union of two tracks: shared frames averaged, frames of one kept, gaps interpolated."""
    start, end = min(a.start, b.start), max(a.end, b.end)
    total = np.zeros((end - start, 4))
    count = np.zeros(end - start)
    for t in (a, b):
        total[t.start - start: t.end - start] += t.boxes
        count[t.start - start: t.end - start] += 1
    have = count > 0
    out = np.zeros_like(total)
    out[have] = total[have] / count[have, None]
    if not have.all():
        f, known = np.arange(end - start), np.flatnonzero(have)
        for c in range(4):
            out[~have, c] = np.interp(f[~have], known, out[known, c])
    return Track(start, out)


@dataclass(eq=False)  # identity: candidates.remove() must not compare the box arrays
class _Linked:
    triplet: Triplet
    sub: Track
    obj: Track
    confs: list[float] = field(default_factory=list)

    def score(self, mode: str) -> float:
        return float(np.sum(self.confs)) if mode == "vidvrd2" else float(np.mean(self.confs))


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
        intersection of the subject and object tracks.
    """
    if algorithm not in ("baseline", "vidvrd2"):
        raise ValueError(f"associate: algorithm must be 'baseline' or 'vidvrd2', got {algorithm!r}")
    if reproduce_baseline_bug and algorithm != "baseline":
        raise ValueError("associate: reproduce_baseline_bug applies to algorithm='baseline' only")
    tolerance = temporal_tolerance if algorithm == "vidvrd2" else 0
    ordered = sorted(segments, key=lambda s: s[0][0])
    relations: list[_Linked] = []
    previous: list[_Linked] = []
    for index, (_, preds) in enumerate(ordered):
        top = sorted(preds, key=lambda p: p.score, reverse=True)[:segment_topk]
        candidates = sorted(previous, key=lambda r: r.score(algorithm), reverse=True)
        current: list[_Linked] = []
        for p in top:
            linked = None
            if index > 0:
                for r in candidates:
                    if tuple(r.triplet) != tuple(p.triplet):
                        continue
                    if algorithm == "baseline":
                        r_end = r.sub.end
                        if not (p.sub.start < r_end and p.obj.start < r_end):
                            continue
                        ok = (cubic_iou(r.sub, p.sub, pixel_offset) >= linkage_threshold
                              and cubic_iou(r.obj, p.obj, pixel_offset) >= linkage_threshold)
                    else:
                        ok = (cubic_iou(r.sub, p.sub, pixel_offset, tolerance) > linkage_threshold
                              and cubic_iou(r.obj, p.obj, pixel_offset, tolerance) > linkage_threshold)
                    if ok:
                        linked = r
                        break
            if linked is not None:
                candidates = [c for c in candidates if c is not linked]  # by identity: tracks hold arrays
                linked.sub, linked.obj = _join(linked.sub, p.sub), _join(linked.obj, p.obj)
                linked.confs.append(float(p.score))
                current.append(linked)
            else:
                first_conf = 1.0 if (reproduce_baseline_bug and index > 0) else float(p.score)
                r = _Linked(tuple(p.triplet), Track(p.sub.start, p.sub.boxes.copy()),
                            Track(p.obj.start, p.obj.boxes.copy()), [first_conf])
                relations.append(r)
                current.append(r)
        previous = current
    out = []
    for r in relations:
        lo, hi = max(r.sub.start, r.obj.start), min(r.sub.end, r.obj.end)
        if hi - lo <= (1 if algorithm == "vidvrd2" else 0):
            continue
        out.append(Relation(r.triplet, (lo, hi), r.sub.boxes[lo - r.sub.start: hi - r.sub.start],
                            r.obj.boxes[lo - r.obj.start: hi - r.obj.start], r.score(algorithm)))
    order = sorted(range(len(out)), key=lambda i: -out[i].score)
    out = [out[i] for i in order]
    return out[:association_topk] if algorithm == "vidvrd2" else out
