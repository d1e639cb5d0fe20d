"""References of the tube family: tube IoU (pairwise and aligned), temporal IoU, interpolation."""

from __future__ import annotations

import torch

from pyvrel.ops.reference.boxes import _inter, _iou, box_area_ref
from pyvrel.ops.types import Tubes

__all__ = ["tube_iou_ref", "tube_iou_aligned_ref", "temporal_iou_ref", "interpolate_boxes_ref"]


def _tube_boxes(t: Tubes, n: int) -> list[list[float]]:
    return t.boxes[n, : int(t.length[n])].double().tolist()


def tube_iou_ref(a: Tubes, b: Tubes, pixel_offset: float = 0.0, mode: str = "volume") -> torch.Tensor:
    """Pairwise tube IoU -> ``(N, M)``, as per-pair Python loops in float64.

    ``mode="volume"`` is the VidVRD evaluation's vIoU: the sum over shared frames of the box
    intersections divided by ``vol_a + vol_b - inter``, each volume summed over the tube's whole
    span (with ``pixel_offset=1`` this is VidVRD-helper's ``viou`` line for line).
    ``mode="iou3dt"`` is the action-detection measure: mean per-frame IoU over the shared frames
    times shared frames / frames of the union span. Disjoint spans give 0.
    """
    p = float(pixel_offset)
    out = torch.zeros(a.boxes.shape[0], b.boxes.shape[0], dtype=torch.float64)
    for n in range(a.boxes.shape[0]):
        sa, la = int(a.start[n]), int(a.length[n])
        ta = _tube_boxes(a, n)
        for m in range(b.boxes.shape[0]):
            sb, lb = int(b.start[m]), int(b.length[m])
            if sa >= sb + lb or sa + la <= sb or la == 0 or lb == 0:
                continue
            tb = _tube_boxes(b, m)
            lo, hi = max(sa, sb), min(sa + la, sb + lb)
            if mode == "volume":
                inter = 0.0
                for t in range(lo, hi):
                    x, y = ta[t - sa], tb[t - sb]
                    inter += max(0, min(x[2], y[2]) - max(x[0], y[0]) + p) * max(0, min(x[3], y[3]) - max(x[1], y[1]) + p)
                va = 0.0
                for x in ta:
                    va += (x[2] - x[0] + p) * (x[3] - x[1] + p)
                vb = 0.0
                for y in tb:
                    vb += (y[2] - y[0] + p) * (y[3] - y[1] + p)
                union = va + vb - inter
                out[n, m] = inter / union if union > 0 else 0.0
            else:
                siou = 0.0
                for t in range(lo, hi):
                    x, y = ta[t - sa], tb[t - sb]
                    inter = max(0, min(x[2], y[2]) - max(x[0], y[0]) + p) * max(0, min(x[3], y[3]) - max(x[1], y[1]) + p)
                    union = (x[2] - x[0] + p) * (x[3] - x[1] + p) + (y[2] - y[0] + p) * (y[3] - y[1] + p) - inter
                    siou += inter / union if union > 0 else 0.0
                shared = hi - lo
                out[n, m] = (siou / shared) * (shared / (max(sa + la, sb + lb) - min(sa, sb)))
    return out.to(a.boxes.dtype)


def tube_iou_aligned_ref(a: Tubes, b: Tubes, pixel_offset: float = 0.0, mode: str = "volume") -> torch.Tensor:
    """Tube IoU of pairs ``(a[i], b[i])`` -> ``(N,)``, differentiable w.r.t. the boxes (torch ops)."""
    values = []
    for n in range(a.boxes.shape[0]):
        sa, la, sb, lb = int(a.start[n]), int(a.length[n]), int(b.start[n]), int(b.length[n])
        lo, hi = max(sa, sb), min(sa + la, sb + lb)
        zero = a.boxes[n, :0].sum() + b.boxes[n, :0].sum()  # a 0 in the boxes' graph (gradient 0), as the kernels give
        if hi <= lo:
            values.append(zero)
            continue
        xa = a.boxes[n, lo - sa : hi - sa]
        xb = b.boxes[n, lo - sb : hi - sb]
        if mode == "volume":
            inter = _inter(xa, xb, pixel_offset).sum()
            union = box_area_ref(a.boxes[n, :la], pixel_offset).sum() + box_area_ref(b.boxes[n, :lb], pixel_offset).sum() - inter
            values.append(inter / union if float(union.detach()) > 0 else zero)
        else:
            span = max(sa + la, sb + lb) - min(sa, sb)
            values.append(_iou(xa, xb, pixel_offset).sum() / span)
    if not values:
        return a.boxes.new_zeros((0,))
    return torch.stack(values)


def temporal_iou_ref(spans_a: torch.Tensor, spans_b: torch.Tensor) -> torch.Tensor:
    """IoU of half-open spans ``(N, 2)`` x ``(M, 2)`` -> ``(N, M)`` float; empty unions give 0."""
    a = spans_a.double()[:, None, :]
    b = spans_b.double()[None, :, :]
    inter = (torch.minimum(a[..., 1], b[..., 1]) - torch.maximum(a[..., 0], b[..., 0])).clamp(min=0)
    union = (a[..., 1] - a[..., 0]).clamp(min=0) + (b[..., 1] - b[..., 0]).clamp(min=0) - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-300), torch.zeros_like(union))


def interpolate_boxes_ref(frames: torch.Tensor, boxes: torch.Tensor, counts: torch.Tensor) -> Tubes:
    """Linear interpolation (vRGV eq. 14) of tracks sampled at increasing ``frames (N, K)`` with
    ``boxes (N, K, 4)``, ``counts (N,)`` valid samples each -> :class:`Tubes` covering every frame
    from the first to the last sample."""
    n_tracks = frames.shape[0]
    lengths = [int(frames[n, int(counts[n]) - 1] - frames[n, 0]) + 1 if int(counts[n]) > 0 else 0 for n in range(n_tracks)]
    out = boxes.new_zeros(n_tracks, max(lengths, default=0), 4)
    for n in range(n_tracks):
        f = frames[n, : int(counts[n])].tolist()
        for i in range(lengths[n]):
            t = f[0] + i
            j = max(k for k in range(max(len(f) - 1, 1)) if f[k] <= t)
            if len(f) == 1:
                out[n, i] = boxes[n, 0]
                continue
            d = f[j + 1] - f[j]
            out[n, i] = (f[j + 1] - t) / d * boxes[n, j].double() + (t - f[j]) / d * boxes[n, j + 1].double()
    start = torch.where(counts > 0, frames[:, 0], torch.zeros_like(frames[:, 0])) if n_tracks else frames.new_zeros(0)
    return Tubes(out, start.long(), torch.tensor(lengths, dtype=torch.int64, device=frames.device))
