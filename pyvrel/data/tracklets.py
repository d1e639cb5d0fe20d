"""Tracklets, the entity trajectories every relation model pairs up: :class:`Tracklet`, the detected
tracklets of a feature file (:func:`detected_tracklets`) or the ground truth as tracklets
(:func:`oracle_tracklets`), :func:`deduplicate` and the ordered pairs that share frames
(:func:`build_pairs`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from pyvrel.data.annotations import VideoAnnotation
from pyvrel.data.folder import CLIP_KEY

__all__ = ["Tracklet", "build_pairs", "deduplicate", "detected_tracklets", "oracle_tracklets"]


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
    """Max over both directions of ``Σ inter / Σ area_ref`` over the common frames (+1 pixel areas)."""
    lo, hi = max(a.start, b.start), min(a.end, b.end)
    if hi <= lo:
        return 0.0
    ba, bb = a.boxes[lo - a.start: hi - a.start], b.boxes[lo - b.start: hi - b.start]
    iw = np.clip(np.minimum(ba[:, 2], bb[:, 2]) - np.maximum(ba[:, 0], bb[:, 0]) + 1, 0, None)
    ih = np.clip(np.minimum(ba[:, 3], bb[:, 3]) - np.maximum(ba[:, 1], bb[:, 1]) + 1, 0, None)
    inter = (iw * ih).sum()
    area = lambda x: ((x[:, 2] - x[:, 0] + 1) * (x[:, 3] - x[:, 1] + 1)).sum()  # noqa: E731
    return float(max(inter / max(area(ba), 1e-9), inter / max(area(bb), 1e-9)))


def deduplicate(tracklets: list[Tracklet], threshold: float = 0.9) -> list[Tracklet]:
    """Drop a tracklet when another of the same category contains it in time and in space
    (containment vIoU ``> threshold``); returns the kept ones in input order."""
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
    supplementary's Table 1). ``features[tid]`` (and ``clip[tid]``, VrdONE-X's stream) is
    ``(L, D)`` for the object's frames; objects must be present on one contiguous span."""
    by_tid = annotation.boxes_by_tid()
    out = []
    for obj in annotation.objects:
        frames = sorted(by_tid[obj.tid])
        if not frames:
            continue
        if frames[-1] - frames[0] + 1 != len(frames):
            raise ValueError(f"oracle_tracklets: object {obj.tid} of {annotation.video_id} is not contiguous")
        boxes = np.array([by_tid[obj.tid][f] for f in frames], dtype=np.float64)
        out.append(Tracklet(obj.category, 1.0, frames[0], boxes, features[obj.tid],
                            None if clip is None else clip[obj.tid], tid=obj.tid))
    return out
