"""Box areas, intersections and IoU in NumPy, for the paths that must not import torch (evaluation,
association, reports, the synthetic generator). :func:`pyvrel.ops.box_iou` is the torch operator.

Boxes are ``(x1, y1, x2, y2)`` in pixels in the last dimension; the leading dimensions of two box
arrays broadcast (``a[:, None]`` against ``b[None]`` gives all pairs, equal shapes give the paired
boxes). ``pixel_offset`` is added to every width and height: 0 for continuous coordinates, 1 for
the inclusive-pixel convention of the official VidVRD evaluation (``x2 - x1 + 1``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["box_areas", "box_intersections", "box_ious"]


def box_areas(boxes: np.ndarray, pixel_offset: float = 0) -> np.ndarray:
    """``(...)`` areas of boxes ``(..., 4)``; not clamped (an inverted box has a negative area)."""
    return (boxes[..., 2] - boxes[..., 0] + pixel_offset) * (boxes[..., 3] - boxes[..., 1] + pixel_offset)


def box_intersections(a: np.ndarray, b: np.ndarray, pixel_offset: float = 0) -> np.ndarray:
    """Intersection areas ``(...)`` of boxes ``a (..., 4)`` and ``b (..., 4)`` (broadcast); >= 0."""
    w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + pixel_offset, 0, None)
    h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + pixel_offset, 0, None)
    return w * h


def box_ious(a: np.ndarray, b: np.ndarray, pixel_offset: float = 0) -> np.ndarray:
    """IoU ``(...)`` of boxes ``a (..., 4)`` and ``b (..., 4)`` (broadcast). A union <= 0 (two
    zero-area boxes) gives 0, as :func:`pyvrel.ops.box_iou` does."""
    inter = box_intersections(a, b, pixel_offset)
    union = box_areas(a, pixel_offset) + box_areas(b, pixel_offset) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
