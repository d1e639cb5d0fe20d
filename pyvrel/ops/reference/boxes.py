"""Plain PyTorch / Python references of every pyvrel op: the executable specification.

Kernels are tested against these functions; benchmarks time them as the baseline. They favour
clarity over speed (loops where the algorithm is a loop) and are never edited to match a kernel.
Conventions are those of ``pyvrel.ops``: boxes ``(x1, y1, x2, y2)``, ``pixel_offset`` added to
widths and heights, half-open frame spans ``[start, start + length)``.
"""

from __future__ import annotations

import torch

from pyvrel.ops.types import Tubes

__all__ = [
    "box_area_ref",
    "box_iou_ref",
    "box_iou_aligned_ref",
    "nms_ref",
    "batched_nms_ref",
    "tube_iou_ref",
    "tube_iou_aligned_ref",
    "temporal_iou_ref",
    "interpolate_boxes_ref",
    "local_window_ref",
    "local_attention_ref",
]


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
        if hi <= lo:
            values.append(a.boxes.new_zeros(()))
            continue
        xa = a.boxes[n, lo - sa : hi - sa]
        xb = b.boxes[n, lo - sb : hi - sb]
        if mode == "volume":
            inter = _inter(xa, xb, pixel_offset).sum()
            union = box_area_ref(a.boxes[n, :la], pixel_offset).sum() + box_area_ref(b.boxes[n, :lb], pixel_offset).sum() - inter
            values.append(inter / union if float(union.detach()) > 0 else a.boxes.new_zeros(()))
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


def local_window_ref(
    Lq: int,
    Lk: int,
    left: int,
    right: int,
    dilation: int,
    causal: bool,
    shift: bool,
    kv_lengths: torch.Tensor,
    centers: torch.Tensor | None,
) -> torch.Tensor:
    """First key (slot 0) of each query's window, ``(B, Lq)`` int64.

    Centre ``c_i``: ``centers[b, i]``, else ``i`` when ``Lq == Lk``, else ``floor((i + 0.5) * Lk / Lq)``.
    The window starts at ``c_i - dilation * left``. With ``shift`` it moves by whole multiples of
    ``dilation``: down until it ends at or before ``kv_lengths[b] - 1``, then (unless ``causal``)
    up until it starts at or after 0.
    """
    B = kv_lengths.shape[0]
    if centers is None:
        i = torch.arange(Lq, device=kv_lengths.device)
        c = i if Lq == Lk else torch.div((2 * i + 1) * Lk, 2 * Lq, rounding_mode="floor")
        centers = c.expand(B, Lq)
    start = centers.long() - dilation * left
    if shift:
        n = kv_lengths.long()[:, None]
        over = (start + dilation * (left + right) - (n - 1)).clamp(min=0)
        start = start - dilation * torch.div(over + dilation - 1, dilation, rounding_mode="floor")
        if not causal:
            under = (-start).clamp(min=0)
            start = start + dilation * torch.div(under + dilation - 1, dilation, rounding_mode="floor")
    return start


def local_attention_ref(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    left: int,
    right: int,
    *,
    dilation: int = 1,
    causal: bool = False,
    shift: bool = False,
    q_lengths: torch.Tensor | None = None,
    kv_lengths: torch.Tensor | None = None,
    centers: torch.Tensor | None = None,
    rel_bias: torch.Tensor | None = None,
    scale: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Windowed attention as dense attention with a band mask (the specification).

    ``q (B, H, Lq, D)``, ``k (B, H, Lk, D)``, ``v (B, H, Lk, Dv)``; the window has ``left``/``right``
    extents (``right`` is taken as 0 when ``causal``) and slots ``o = 0 .. left + right``; slot
    ``o`` of query ``i`` reads key ``local_window_ref(...)[b, i] + dilation * o`` when that key is in
    ``[0, kv_lengths[b])`` and ``i < q_lengths[b]``. Scores are ``scale * q.k + rel_bias[h, o]``
    (``scale`` defaults to ``D ** -0.5``). Rows without valid key give output 0 and log-sum-exp
    ``-inf`` with zero gradients. Returns ``(out (B, H, Lq, Dv), lse (B, H, Lq))``; differentiable
    through autograd. Builds ``(B, H, Lq, Lk)`` tensors: for tests and small inputs.
    """
    B, H, Lq, D = q.shape
    Lk = k.shape[2]
    if causal:
        right = 0
    W = left + right + 1
    dev = q.device
    full = torch.full((B,), Lk, dtype=torch.long, device=dev)
    kv_len = full if kv_lengths is None else kv_lengths.long()
    q_len = torch.full((B,), Lq, dtype=torch.long, device=dev) if q_lengths is None else q_lengths.long()
    start = local_window_ref(Lq, Lk, left, right, dilation, causal, shift, kv_len, centers)  # (B, Lq)
    j = torch.arange(Lk, device=dev)
    offset = j[None, None, :] - start[:, :, None]  # (B, Lq, Lk)
    slot = torch.div(offset, dilation, rounding_mode="floor")
    valid = (offset >= 0) & (offset % dilation == 0) & (slot < W) & (j[None, None, :] < kv_len[:, None, None])
    valid &= (torch.arange(Lq, device=dev)[None, :] < q_len[:, None])[:, :, None]
    scale = D ** -0.5 if scale is None else scale
    scores = torch.einsum("bhid,bhjd->bhij", q, k) * scale
    if rel_bias is not None:
        scores = scores + rel_bias[:, slot.clamp(0, W - 1)].permute(1, 0, 2, 3)  # (B, H, Lq, Lk)
    valid = valid[:, None].expand(B, H, Lq, Lk)
    scores = scores.masked_fill(~valid, float("-inf"))
    m = scores.amax(dim=-1, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m)).detach()
    e = torch.exp(scores - m)
    total = e.sum(dim=-1, keepdim=True)
    has_key = total > 0
    p = e / torch.where(has_key, total, torch.ones_like(total))
    out = torch.einsum("bhij,bhjd->bhid", p, v)
    lse = torch.where(has_key, m + torch.log(torch.where(has_key, total, torch.ones_like(total))),
                      torch.full_like(total, float("-inf")))
    return out, lse.squeeze(-1)
