"""Tracklets, the entity trajectories every relation model pairs up: :class:`Tracklet`, the detected
tracklets of a feature file (:func:`detected_tracklets`) or the ground truth as tracklets
(:func:`oracle_tracklets`), :func:`deduplicate` and the ordered pairs that share frames
(:func:`build_pairs`); the ground-truth objects' runs (:func:`object_segments`), the object each
detected tracklet follows (:func:`assign_tracklets`) and the per-frame features of the objects read
from those tracklets (:func:`entity_features`), which models train on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from pyvrel.data.annotations import VideoAnnotation
from pyvrel.data.boxes import box_areas, box_intersections
from pyvrel.data.folder import CLIP_KEY

__all__ = ["Tracklet", "assign_tracklets", "build_pairs", "deduplicate", "detected_tracklets", "entity_features",
           "object_segments", "oracle_tracklets"]


@dataclass
class Tracklet:
    """One entity trajectory: ``boxes (L, 4)`` pixels for frames ``[start, start + L)``, visual
    ``features (L, D)`` (and optional ``clip (L, Dc)``), its category and detection score."""

    category: str
    score: float
    start: int
    boxes: np.ndarray
    features: np.ndarray
    clip: np.ndarray | None = None
    tid: int | None = None

    @property
    def end(self) -> int:
        return self.start + len(self.boxes)


def _containment(a: Tracklet, b: Tracklet) -> float:
    """How much of ``a`` lies inside ``b``: ``Σ inter / Σ area(a)`` over the common frames (+1 pixel areas)."""
    lo, hi = max(a.start, b.start), min(a.end, b.end)
    if hi <= lo:
        return 0.0
    ba, bb = a.boxes[lo - a.start: hi - a.start], b.boxes[lo - b.start: hi - b.start]
    return float(box_intersections(ba, bb, 1).sum() / max(box_areas(ba, 1).sum(), 1e-9))


def deduplicate(tracklets: list[Tracklet], threshold: float = 0.9) -> list[Tracklet]:
    """Drop a tracklet when another of the same category contains it in time and in space
    (``Σ inter / Σ area`` of the dropped tracklet over their common frames ``> threshold``, as the
    official VrdONE); returns the kept ones in input order."""
    drop = set()
    for i, a in enumerate(tracklets):
        for j, b in enumerate(tracklets):
            if i == j or i in drop or j in drop or a.category != b.category:
                continue
            contains = b.start <= a.start and a.end <= b.end
            same_span = (a.start, a.end) == (b.start, b.end)
            if contains and (not same_span or j < i) and _containment(a, b) > threshold:
                drop.add(i)
    return [t for i, t in enumerate(tracklets) if i not in drop]


def build_pairs(tracklets: list[Tracklet], min_frames: int, stride: int) -> list[tuple[int, int, int, int]]:
    """Ordered pairs ``(s, o, begin, end)`` with ``s != o`` sharing ``>= min_frames`` frames and
    ``>= 2`` steps after striding."""
    out = []
    for s, a in enumerate(tracklets):
        for o, b in enumerate(tracklets):
            lo, hi = max(a.start, b.start), min(a.end, b.end)
            if s != o and hi - lo >= max(min_frames, 1) and -(-(hi - lo) // stride) >= 2:
                out.append((s, o, lo, hi))
    return out


def detected_tracklets(arrays: Mapping[str, np.ndarray], objects: list[str]) -> list[Tracklet]:
    """The detected tracklets of a video's feature arrays (:func:`pyvrel.data.folder.check_tracklets`):
    category = best-scoring object, score = its score; ``clip`` from ``tracklet_clip`` when present."""
    clip = arrays.get(CLIP_KEY)
    out = []
    for k in range(len(arrays["tracklet_start"])):
        L = int(arrays["tracklet_length"][k])
        c = int(np.argmax(arrays["tracklet_scores"][k]))
        out.append(Tracklet(objects[c], float(arrays["tracklet_scores"][k, c]), int(arrays["tracklet_start"][k]),
                            arrays["tracklet_boxes"][k, :L].astype(np.float64), arrays["tracklet_features"][k, :L],
                            None if clip is None else clip[k, :L]))
    return out


def oracle_tracklets(annotation: VideoAnnotation, features: dict[int, np.ndarray],
                     clip: dict[int, np.ndarray] | None = None) -> list[Tracklet]:
    """Ground-truth trajectories and categories as tracklets of score 1 (the oracle setting of the
    supplementary's Table 1), one per contiguous run of an object's frames (VidOR objects may leave
    and re-enter; each run is a tracklet with the object's ``tid``). ``features[tid]`` (and
    ``clip[tid]``, VrdONE-X's stream) is ``(frame_count, D)``: row ``f`` is frame ``f``
    (:func:`entity_features`)."""
    by_tid = annotation.boxes_by_tid()
    out = []
    for obj in annotation.objects:
        frames = np.array(sorted(by_tid[obj.tid]), dtype=np.int64)
        if len(frames) == 0:
            continue
        if len(features[obj.tid]) <= frames[-1]:
            raise ValueError(f"oracle_tracklets: features of object {obj.tid} of {annotation.video_id} have "
                             f"{len(features[obj.tid])} rows, need one per frame up to {frames[-1]}")
        for run in np.split(frames, np.flatnonzero(np.diff(frames) > 1) + 1):
            s, e = int(run[0]), int(run[-1]) + 1
            boxes = np.array([by_tid[obj.tid][f] for f in run.tolist()], dtype=np.float64)
            out.append(Tracklet(obj.category, 1.0, s, boxes, features[obj.tid][s:e],
                                None if clip is None else clip[obj.tid][s:e], tid=obj.tid))
    return out


def object_segments(annotation: VideoAnnotation) -> dict[int, list[tuple[int, np.ndarray]]]:
    """tid -> contiguous runs ``(start_frame, boxes (L, 4))`` of its ground-truth trajectory."""
    out: dict[int, list[tuple[int, np.ndarray]]] = {}
    for tid, frames in annotation.boxes_by_tid().items():
        fs = sorted(frames)
        runs, begin = [], 0
        for k in range(1, len(fs) + 1):
            if k == len(fs) or fs[k] != fs[k - 1] + 1:
                runs.append((fs[begin], np.array([frames[f] for f in fs[begin:k]], dtype=np.float64)))
                begin = k
        out[tid] = runs
    return out


def assign_tracklets(arrays: Mapping[str, np.ndarray], annotation: VideoAnnotation,
                     threshold: float = 0.5) -> np.ndarray:
    """The ground-truth object each detected tracklet follows: ``(N,)`` int64 tids, -1 for none.

    A tracklet goes to the object with the highest volumetric vIoU (official VidVRD, +1 pixel
    areas; each contiguous run of an object's trajectory compared separately) when it is at least
    ``threshold``.
    """
    import torch

    from pyvrel.ops import Tubes, tube_iou

    runs = [(tid, s, b) for tid, rs in object_segments(annotation).items() for s, b in rs]
    N = len(arrays["tracklet_start"])
    if not runs or N == 0:
        return np.full(N, -1, np.int64)
    gt_boxes = np.zeros((len(runs), max(len(b) for _, _, b in runs), 4))
    for i, (_, _, b) in enumerate(runs):
        gt_boxes[i, : len(b)] = b
    gt = Tubes(torch.from_numpy(gt_boxes), torch.tensor([s for _, s, _ in runs]),
               torch.tensor([len(b) for _, _, b in runs]))
    tracks = Tubes(torch.from_numpy(np.asarray(arrays["tracklet_boxes"], np.float64)),
                   torch.from_numpy(np.asarray(arrays["tracklet_start"], np.int64)),
                   torch.from_numpy(np.asarray(arrays["tracklet_length"], np.int64)))
    iou = tube_iou(tracks, gt, pixel_offset=1).numpy()
    best = iou.argmax(1)
    tids = np.array([runs[j][0] for j in best], np.int64)
    return np.where(iou[np.arange(N), best] >= threshold, tids, -1)


def entity_features(arrays: Mapping[str, np.ndarray], annotation: VideoAnnotation,
                    key: str = "tracklet_features") -> dict[int, np.ndarray]:
    """Per-frame features ``(frame_count, D)`` of the ground-truth objects (appearance, or
    ``key="tracklet_clip"``: VrdONE-X's extra stream), read from the tracklets that follow them
    (``tracklet_tid``, else :func:`assign_tracklets`); frames no such tracklet covers take the
    nearest covered frame's feature. Objects no tracklet follows are left out (their pairs give no
    training sample)."""
    n, D = annotation.frame_count, arrays[key].shape[-1]
    tid_of = arrays["tracklet_tid"] if "tracklet_tid" in arrays else assign_tracklets(arrays, annotation)
    out = {}
    for obj in annotation.objects:
        feat, covered = np.zeros((n, D), np.float32), np.zeros(n, bool)
        for k in np.flatnonzero(tid_of == obj.tid):
            s, L = int(arrays["tracklet_start"][k]), int(arrays["tracklet_length"][k])
            feat[s: s + L], covered[s: s + L] = arrays[key][k, :L], True
        idx = np.flatnonzero(covered)
        if len(idx) == 0:
            continue
        nearest = idx[np.clip(np.searchsorted(idx, np.arange(n)), 0, len(idx) - 1)]
        left = idx[np.clip(np.searchsorted(idx, np.arange(n)) - 1, 0, len(idx) - 1)]
        pick = np.where(np.abs(left - np.arange(n)) <= np.abs(nearest - np.arange(n)), left, nearest)
        out[obj.tid] = feat[pick]
    return out
