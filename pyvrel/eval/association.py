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


def _pair_cubic_ious(a: Sequence[Track], ia: np.ndarray, b: Sequence[Track], ib: np.ndarray, pixel_offset: float,
                     temporal_tolerance: int) -> np.ndarray:
    """``(K,)`` float64: ``cubic_iou(a[ia[k]], b[ib[k]], pixel_offset, temporal_tolerance)`` for
    every k, bit for bit: the same operations, and the per-frame sums of pairs that share the same
    number of frames are reduced together as rows of one array (NumPy sums each row as it sums
    one vector)."""
    def columns(tracks: Sequence[Track], index: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        lengths = np.array([len(t.boxes) for t in tracks], np.int64)
        first = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        boxes = np.concatenate([t.boxes for t in tracks]) if tracks else np.zeros((0, 4))
        return boxes, np.array([t.start for t in tracks], np.int64)[index], lengths[index], first[index]

    a_boxes, sa, la, fa = columns(a, ia)
    b_boxes, sb, lb, fb = columns(b, ib)
    lo, hi = np.maximum(sa, sb), np.minimum(sa + la, sb + lb)
    out = np.zeros(len(ia))
    frames = hi - lo
    for n in np.unique(frames[frames > 0]).tolist():
        k = np.flatnonzero(frames == n)
        x = a_boxes[(fa[k] + lo[k] - sa[k])[:, None] + np.arange(n)]
        y = b_boxes[(fb[k] + lo[k] - sb[k])[:, None] + np.arange(n)]
        inter = box_intersections(x, y, pixel_offset).sum(1)
        union = box_areas(x, pixel_offset).sum(1) + box_areas(y, pixel_offset).sum(1) - inter
        out[k] = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    a_first = sa <= sb  # no shared frame: the earlier track's last box against the later one's first
    gap = np.where(a_first, sb - (sa + la), sa - (sb + lb))
    k = np.flatnonzero((frames <= 0) & (la > 0) & (lb > 0) & (gap < temporal_tolerance))
    if len(k):
        a_box, b_box = np.where(a_first[k], fa[k] + la[k] - 1, fa[k]), np.where(a_first[k], fb[k], fb[k] + lb[k] - 1)
        out[k] = box_ious(a_boxes[a_box], b_boxes[b_box], pixel_offset)
    return out


def _join(a: Track, b: Track) -> Track:
    """Union of two tracks: shared frames averaged, frames of one kept, a gap between them (or
    before / after an empty track's start) interpolated linearly."""
    a_end, b_end = a.start + len(a.boxes), b.start + len(b.boxes)
    start, end = min(a.start, b.start), max(a_end, b_end)
    out = np.zeros((end - start, 4))
    out[a.start - start: a_end - start] += a.boxes
    out[b.start - start: b_end - start] += b.boxes
    lo, hi = max(a.start, b.start), min(a_end, b_end)
    if hi > lo:
        out[lo - start: hi - start] /= 2
    elif hi < lo:
        have = np.ones(end - start, bool)
        have[hi - start: lo - start] = False
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
    _scored: tuple[int, float] = (0, 0.0)  # (len(confs), score): confs only grow

    def score(self, mode: str) -> float:
        if self._scored[0] != len(self.confs):
            value = float(np.sum(self.confs)) if mode == "vidvrd2" else float(np.mean(self.confs))
            self._scored = (len(self.confs), value)
        return self._scored[1]


def _first_links(preds: Sequence[SegmentRelation], candidates: Sequence[_Linked], algorithm: str, threshold: float,
                 pixel_offset: float, tolerance: int) -> list[_Linked | None]:
    """The relation each prediction (in order) extends, or None: the first candidate (in order) not
    taken by an earlier prediction with the same triplet and both cubic IoUs passing. A taken
    candidate is extended, and so never compared again, so every IoU is one of the tracks as they
    stand when the segment starts: all are computed at once."""
    ids: dict[tuple, int] = {}
    tp = np.array([ids.setdefault(tuple(p.triplet), len(ids)) for p in preds], np.int64)
    tc = np.array([ids.get(tuple(r.triplet), -1) for r in candidates], np.int64)
    same = tp[:, None] == tc[None, :]
    if algorithm == "baseline":  # both tracks start before the relation ends
        r_end = np.array([r.sub.end for r in candidates], np.int64)
        starts = np.array([[p.sub.start, p.obj.start] for p in preds], np.int64).reshape(-1, 2)
        same &= (starts.max(1)[:, None] < r_end[None, :])
    ip, ic = np.nonzero(same)
    # subjects and objects in one call: ious[:K] of the subjects, ious[K:] of the objects
    ious = _pair_cubic_ious([r.sub for r in candidates] + [r.obj for r in candidates],
                            np.concatenate([ic, ic + len(candidates)]), [p.sub for p in preds] + [p.obj for p in preds],
                            np.concatenate([ip, ip + len(preds)]), pixel_offset, tolerance)
    ok = ious >= threshold if algorithm == "baseline" else ious > threshold
    ok = ok[: len(ip)] & ok[len(ip):]
    ip, ic = ip[ok].tolist(), ic[ok].tolist()
    taken, out, k = set(), [], 0
    for i in range(len(preds)):
        linked = None
        while k < len(ip) and ip[k] == i:  # (ip, ic) is in row-major order: candidate order per prediction
            if linked is None and ic[k] not in taken:
                linked = ic[k]
                taken.add(linked)
            k += 1
        out.append(None if linked is None else candidates[linked])
    return out


def _check(algorithm: str, reproduce_baseline_bug: bool) -> None:
    if algorithm not in ("baseline", "vidvrd2"):
        raise ValueError(f"associate: algorithm must be 'baseline' or 'vidvrd2', got {algorithm!r}")
    if reproduce_baseline_bug and algorithm != "baseline":
        raise ValueError("associate: reproduce_baseline_bug applies to algorithm='baseline' only")


def _relations(linked: Sequence[_Linked], algorithm: str, association_topk: int) -> list[Relation]:
    """The output of :func:`associate` from its linked relations (in creation order)."""
    out = []
    for r in linked:
        lo, hi = max(r.sub.start, r.obj.start), min(r.sub.end, r.obj.end)
        if hi - lo <= (1 if algorithm == "vidvrd2" else 0):
            continue
        out.append(Relation(r.triplet, (lo, hi), r.sub.boxes[lo - r.sub.start: hi - r.sub.start],
                            r.obj.boxes[lo - r.obj.start: hi - r.obj.start], r.score(algorithm)))
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
        intersection of the subject and object tracks. Equal to
        :func:`pyvrel.eval.reference.associate_reference` (the same loop one pair at a time).
    """
    _check(algorithm, reproduce_baseline_bug)
    tolerance = temporal_tolerance if algorithm == "vidvrd2" else 0
    relations: list[_Linked] = []
    previous: list[_Linked] = []
    for index, (_, preds) in enumerate(sorted(segments, key=lambda s: s[0][0])):
        top = sorted(preds, key=lambda p: p.score, reverse=True)[:segment_topk]
        candidates = sorted(previous, key=lambda r: r.score(algorithm), reverse=True)
        links = (_first_links(top, candidates, algorithm, linkage_threshold, pixel_offset, tolerance)
                 if index > 0 and top and candidates else [None] * len(top))
        previous = []
        for p, linked in zip(top, links):
            if linked is not None:
                linked.sub, linked.obj = _join(linked.sub, p.sub), _join(linked.obj, p.obj)
                linked.confs.append(float(p.score))
            else:
                first_conf = 1.0 if (reproduce_baseline_bug and index > 0) else float(p.score)
                linked = _Linked(tuple(p.triplet), Track(p.sub.start, p.sub.boxes.copy()),
                                 Track(p.obj.start, p.obj.boxes.copy()), [first_conf])
                relations.append(linked)
            previous.append(linked)
    return _relations(relations, algorithm, association_topk)
