"""UASAN's inputs per 30-frame segment (stride 15, :mod:`pyvrel.data.segments`): tracklets, ordered
pairs, union-region and motion features, and the predicate labels of ground-truth pairs.

* trajectory feature ``f_i (Dv,)``: the mean over the segment's frames of the tracklet's concept
  feature (``tracklet_concept``, the "ViT" feature of the paper; one vector per trajectory);
* union feature ``U (Dv,)`` of a pair: ``union="box"`` (the paper's union region, default): for each
  shared frame, the mean of the ``union_grid`` cells the union box of the two boxes touches, then
  the mean over frames; ``union="segment"`` (the public code): one vector for the whole segment, the
  mean over its pairs of the former, repeated for every pair;
* motion ``(15,)``: the 12-d relative position of the first and last boxes in the segment
  (:func:`pyvrel.data.segments.relative_position`, VidVRD-II's order; the code interleaves the same
  12 values, which a learnt layer does not notice) and the GIoU of the boxes at the first and last
  shared frames with their difference.

A pair takes part when both tracklets share at least ``min_frames`` frames of the segment (the
code's ``traj_len_th=15``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from pyvrel.data.annotations import VideoAnnotation
from pyvrel.data.boxes import box_areas, box_intersections
from pyvrel.data.segments import cut_tracklets, ordered_pairs, relative_position, segment_spans
from pyvrel.data.synthetic.streams.openvocab import CELL
from pyvrel.data.tracklets import Tracklet, oracle_tracklets

__all__ = ["CONCEPT_KEY", "GRID_KEY", "Segment", "gt_tracklets", "motion_features", "segment_inputs",
           "union_features"]

CONCEPT_KEY, GRID_KEY = "tracklet_concept", "union_grid"


@dataclass
class Segment:
    """One segment's inputs: ``span (begin, end)``, its ``tracklets`` (cut to the segment),
    ``traj (N, Dv)``, ``pairs (P, 2)`` int64 indices into ``tracklets``, ``union (P, Dv)``,
    ``motion (P, 15)`` float32 and, for ground-truth tracklets, ``labels`` (per pair, the set of
    predicates annotated over at least half the pair's shared frames)."""

    span: tuple[int, int]
    tracklets: list[Tracklet]
    traj: np.ndarray
    pairs: np.ndarray
    union: np.ndarray
    motion: np.ndarray
    labels: list[set[str]] | None = None


def gt_tracklets(annotation: VideoAnnotation, arrays: Mapping[str, np.ndarray]) -> list[Tracklet]:
    """The ground-truth trajectories as tracklets whose features are the concept features of the
    detected tracklets that follow them (:func:`pyvrel.models.vrdone.entity_features`)."""
    from pyvrel.models.vrdone.samples import entity_features

    feats = entity_features(arrays, annotation, CONCEPT_KEY)
    return [t for t in oracle_tracklets(annotation, feats) if t.tid in feats] if feats else []


def _giou(a: np.ndarray, b: np.ndarray) -> float:
    """GIoU of two pixel boxes (+1 areas, the code's TO_REMOVE convention)."""
    inter = box_intersections(a, b, 1)
    union = box_areas(a, 1) + box_areas(b, 1) - inter
    hull = (max(a[2], b[2]) - min(a[0], b[0]) + 1) * (max(a[3], b[3]) - min(a[1], b[1]) + 1)
    return float(inter / union - (hull - union) / hull)


def motion_features(tracklets: list[Tracklet], pairs: np.ndarray, width: float, height: float) -> np.ndarray:
    """``(P, 15)`` float32: relative position (12) and GIoU (3) of each pair (module docstring)."""
    rel = relative_position(tracklets, pairs, width, height)
    giou = np.zeros((len(pairs), 3), np.float32)
    for k, (i, j) in enumerate(np.asarray(pairs).tolist()):
        s, o = tracklets[i], tracklets[j]
        lo, hi = max(s.start, o.start), min(s.end, o.end) - 1
        gs = _giou(s.boxes[lo - s.start], o.boxes[lo - o.start])
        ge = _giou(s.boxes[hi - s.start], o.boxes[hi - o.start])
        giou[k] = gs, ge, ge - gs
    return np.concatenate([rel, giou], 1)


def union_features(grid: np.ndarray, s: Tracklet, o: Tracklet) -> np.ndarray:
    """``(Dv,)``: mean over the shared frames of the mean ``grid (F, R, C, Dv)`` cell that the union
    box of the pair's boxes touches (cells of :data:`~pyvrel.data.synthetic.streams.openvocab.CELL` px)."""
    lo, hi = max(s.start, o.start), min(s.end, o.end)
    a, b = s.boxes[lo - s.start: hi - s.start], o.boxes[lo - o.start: hi - o.start]
    u = np.concatenate([np.minimum(a[:, :2], b[:, :2]), np.maximum(a[:, 2:], b[:, 2:])], 1)
    R, C = grid.shape[1:3]
    c0 = np.clip(np.maximum(u[:, 0], 0) // CELL, 0, C - 1).astype(int)
    r0 = np.clip(np.maximum(u[:, 1], 0) // CELL, 0, R - 1).astype(int)
    c1 = np.maximum(np.minimum(np.ceil(u[:, 2] / CELL), C), c0 + 1).astype(int)
    r1 = np.maximum(np.minimum(np.ceil(u[:, 3] / CELL), R), r0 + 1).astype(int)
    out = [grid[f, y0:y1, x0:x1].mean((0, 1)) for f, y0, y1, x0, x1 in zip(range(lo, hi), r0, r1, c0, c1)]
    return np.mean(out, 0).astype(np.float32)


def segment_inputs(tracklets: list[Tracklet], grid: np.ndarray, frame_count: int, size: tuple[float, float], *,
                   min_frames: int = 15, union: str = "box", annotation: VideoAnnotation | None = None
                   ) -> list[Segment]:
    """The :class:`Segment` inputs of one video's ``tracklets`` (``features``: per-frame concept
    features), ``grid`` (its ``union_grid``) and frame ``size`` (width, height); ``annotation`` (with
    ground-truth tracklets, ``tid`` set) adds the labels. Segments without a pair are left out."""
    if union not in ("box", "segment"):
        raise ValueError(f"union: expected 'box' (the paper's union region) or 'segment' (the code's), got {union!r}")
    out = []
    for lo, hi in segment_spans(frame_count):
        cut = cut_tracklets(tracklets, lo, hi, min_frames)
        pairs = np.array([(i, j) for i, j in ordered_pairs(len(cut)).tolist()
                          if min(cut[i].end, cut[j].end) - max(cut[i].start, cut[j].start) >= min_frames],
                         np.int64).reshape(-1, 2)
        if not len(pairs):
            continue
        uni = np.stack([union_features(grid, cut[i], cut[j]) for i, j in pairs.tolist()])
        if union == "segment":
            uni = np.repeat(uni.mean(0, keepdims=True), len(pairs), 0)
        seg = Segment((lo, hi), cut, np.stack([t.features.mean(0) for t in cut]).astype(np.float32), pairs, uni,
                      motion_features(cut, pairs, *size))
        if annotation is not None:
            seg.labels = []
            for i, j in pairs.tolist():
                a, b = cut[i], cut[j]
                p0, p1 = max(a.start, b.start), min(a.end, b.end)
                seg.labels.append({r.predicate for r in annotation.relations
                                   if (r.subject_tid, r.object_tid) == (a.tid, b.tid)
                                   and 2 * (min(r.end_fid, p1) - max(r.begin_fid, p0)) >= p1 - p0})
        out.append(seg)
    return out
