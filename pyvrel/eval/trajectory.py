"""Object trajectory classification recall R@K (UASAN/RePro's open-vocabulary trajectory
classification metric, as pyvrel defines it; the exact script was not available).

Each ground-truth object trajectory is matched to the detected trajectory with the largest
official vIoU (``pixel_offset=1``), if that is at least ``viou_threshold``; it counts as recalled at
K when its category is among the K highest-scoring categories of that trajectory. R@K pools over
videos: recalled trajectories / ground-truth trajectories.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from pyvrel.data.annotations import VideoAnnotation

if TYPE_CHECKING:
    from pyvrel.ops import Tubes

__all__ = ["trajectory_recall"]


def trajectory_recall(
    annotations: Mapping[str, VideoAnnotation],
    detections: Mapping[str, tuple[Tubes, np.ndarray]],
    categories: Sequence[str],
    *,
    ks: Sequence[int] = (5, 10),
    viou_threshold: float = 0.5,
) -> dict[str, Any]:
    """R@K of trajectory classification.

    Args:
        annotations: video id -> annotation (its objects are the ground truth).
        detections: video id -> ``(tubes, scores)``: detected trajectories and their category
            scores ``(N, C)``, column ``c`` for ``categories[c]``.
        categories: the category names of the score columns.

    Returns:
        ``{"R@5": ..., "R@10": ..., "trajectories": n}``.
    """
    from pyvrel.ops import Tubes, tube_iou

    col = {c: i for i, c in enumerate(categories)}
    hits = {k: 0 for k in ks}
    total = 0
    for vid, anno in annotations.items():
        tids, gt = anno.object_tubes()
        present = (gt.length > 0).numpy()
        total += int(present.sum())
        if vid not in detections or not present.any():
            continue
        tubes, scores = detections[vid]
        scores = np.asarray(scores)
        if scores.shape != (tubes.boxes.shape[0], len(categories)):
            raise ValueError(f"trajectory_recall: video {vid}: scores must have shape "
                             f"({tubes.boxes.shape[0]}, {len(categories)}), got {scores.shape}")
        if tubes.boxes.shape[0] == 0:
            continue
        ov = tube_iou(gt, Tubes(tubes.boxes.double(), tubes.start, tubes.length), 1).numpy()
        rank = np.argsort(-scores, axis=1, kind="stable")
        cats = anno.category_of()
        for g, tid in enumerate(tids):
            if not present[g]:
                continue
            d = int(np.argmax(ov[g]))
            if ov[g, d] < viou_threshold or cats[tid] not in col:
                continue
            pos = int(np.flatnonzero(rank[d] == col[cats[tid]])[0])
            for k in ks:
                hits[k] += pos < k
    if total == 0:
        raise ValueError("trajectory_recall: the annotations hold no object trajectory")
    out: dict[str, Any] = {f"R@{k}": hits[k] / total for k in ks}
    out["trajectories"] = total
    return out
