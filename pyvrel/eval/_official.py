"""What the official VidVRD/VidOR evaluation computes and :mod:`pyvrel.eval.relation` and
:mod:`pyvrel.eval.reference` (its executable specification) both need: the variants' settings, the
official vIoU and VOC AP. Imports nothing from pyvrel, so the specification does not import the
code it checks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["EPS32", "SETTINGS", "VARIANTS", "Variant", "settings", "viou_official", "voc_ap"]

VARIANTS = ("official", "vru", "vidvrd2")
EPS32 = np.finfo(np.float32).eps


@dataclass(frozen=True)
class Variant:
    """How a variant differs: box-area offset (1: inclusive pixels), predictions kept per video,
    P@k over k (else over min(k, m)), rounding, and whether no prediction at all warns."""

    pixel_offset: float
    top: int | None
    tag_over_k: bool
    decimals: int | None
    warn_on_empty: bool


SETTINGS = {
    "official": Variant(1.0, None, False, None, True),
    "vru": Variant(1.0, 200, False, 4, False),
    "vidvrd2": Variant(0.0, None, True, None, False),
}


def settings(name: str) -> Variant:
    """The settings of variant ``name``; ``ValueError`` names the valid ones."""
    if name not in SETTINGS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {name!r}")
    return SETTINGS[name]


def viou_official(traj_1: Sequence[Sequence[float]], duration_1: Sequence[int], traj_2: Sequence[Sequence[float]],
                  duration_2: Sequence[int], pixel_offset: float = 1) -> float:
    """The official vIoU in plain Python (as the official evaluation computes it): the executable spec.

    ``traj_k[i]`` is the box at frame ``duration_k[0] + i``. Intersections run over the frames
    both durations cover; each volume sums ``(x2 - x1 + off) * (y2 - y1 + off)`` over *all* boxes of
    its list (unclamped). Disjoint or touching durations give 0. Unlike the official code, a
    union that is not positive gives 0 instead of dividing by it (VidVRD-II divides by
    ``max(union, 1e-8)``; the two agree whenever any box has positive area).
    """
    s1, e1 = duration_1
    s2, e2 = duration_2
    if s1 >= e2 or e1 <= s2:
        return 0.0
    inter = 0.0
    for t in range(max(s1, s2), min(e1, e2)):
        a, b = traj_1[t - s1], traj_2[t - s2]
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + pixel_offset)
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + pixel_offset)
        inter += w * h
    v1 = sum((a[2] - a[0] + pixel_offset) * (a[3] - a[1] + pixel_offset) for a in traj_1)
    v2 = sum((b[2] - b[0] + pixel_offset) * (b[3] - b[1] + pixel_offset) for b in traj_2)
    union = v1 + v2 - inter
    return float(inter) / union if union > 0 else 0.0


def voc_ap(rec: np.ndarray, prec: np.ndarray) -> float:
    """All-point (area) VOC AP of a precision/recall curve, as the official ``voc_ap`` with
    ``use_07_metric=False``: pad with (0, 0) and (1, 0), take the running maximum of precision
    from the right, and sum precision times the recall steps."""
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))
