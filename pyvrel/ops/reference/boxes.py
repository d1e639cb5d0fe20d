"""References of the box family: box area, pairwise and aligned IoU, NMS."""

from __future__ import annotations

import torch

__all__ = ["box_area_ref", "box_iou_ref", "box_iou_aligned_ref", "nms_ref", "batched_nms_ref"]


def box_area_ref(boxes: torch.Tensor, pixel_offset: float = 0.0) -> torch.Tensor:
    """Areas ``(x2 - x1 + p) * (y2 - y1 + p)`` of boxes ``(..., 4)``, not clamped."""
    return (boxes[..., 2] - boxes[..., 0] + pixel_offset) * (boxes[..., 3] - boxes[..., 1] + pixel_offset)


def _inter(a: torch.Tensor, b: torch.Tensor, pixel_offset: float) -> torch.Tensor:
    w = (torch.minimum(a[..., 2], b[..., 2]) - torch.maximum(a[..., 0], b[..., 0]) + pixel_offset).clamp(min=0)
    h = (torch.minimum(a[..., 3], b[..., 3]) - torch.maximum(a[..., 1], b[..., 1]) + pixel_offset).clamp(min=0)
    return w * h


def _iou(a: torch.Tensor, b: torch.Tensor, pixel_offset: float) -> torch.Tensor:
    inter = _inter(a, b, pixel_offset)
    union = box_area_ref(a, pixel_offset) + box_area_ref(b, pixel_offset) - inter
    return torch.where(union > 0, inter / torch.where(union > 0, union, torch.ones_like(union)), torch.zeros_like(union))


def box_iou_ref(a: torch.Tensor, b: torch.Tensor, pixel_offset: float = 0.0) -> torch.Tensor:
    """Pairwise IoU of ``a (..., N, 4)`` and ``b (..., M, 4)`` -> ``(..., N, M)``; union <= 0 gives 0."""
    return _iou(a[..., :, None, :], b[..., None, :, :], pixel_offset)


def box_iou_aligned_ref(a: torch.Tensor, b: torch.Tensor, pixel_offset: float = 0.0) -> torch.Tensor:
    """IoU of paired boxes ``a (..., 4)``, ``b (..., 4)`` -> ``(...)``."""
    return _iou(a, b, pixel_offset)


def batched_nms_ref(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    idxs: torch.Tensor | None,
    iou_threshold: float,
    pixel_offset: float = 0.0,
) -> torch.Tensor:
    """Greedy NMS: visit boxes by descending score (stable: the lower index first among ties),
    keep a box unless a kept box of the same ``idxs`` value overlaps it with IoU > threshold.
    Returns kept indices (int64) in visiting order."""
    order = torch.sort(scores, descending=True, stable=True).indices.tolist()
    suppressed = [False] * boxes.shape[0]
    keep = []
    for pos, i in enumerate(order):
        if suppressed[i]:
            continue
        keep.append(i)
        for j in order[pos + 1 :]:
            if suppressed[j] or (idxs is not None and int(idxs[i]) != int(idxs[j])):
                continue
            if float(_iou(boxes[i], boxes[j], pixel_offset)) > iou_threshold:
                suppressed[j] = True
    return torch.tensor(keep, dtype=torch.int64, device=boxes.device)


def nms_ref(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, pixel_offset: float = 0.0) -> torch.Tensor:
    """Class-agnostic greedy NMS; see :func:`batched_nms_ref`."""
    return batched_nms_ref(boxes, scores, None, iou_threshold, pixel_offset)
