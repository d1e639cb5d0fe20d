"""Triton kernels of the tube ops: pairwise/aligned tube IoU and box-track interpolation.

The math is that of ``csrc/include/pyvrel/tubes.h``. A tube batch is ``boxes (N, T, 4)`` with int64
``start (N,)`` and ``length (N,)``: ``boxes[n, i]`` is the box at video frame ``start[n] + i`` for
``i < length[n]``. ``mode`` 0 is VidVRD's volumetric vIoU, 1 is iou3dt.

Precision: per-frame quantities (box areas, intersections, IoUs) are computed in the boxes'
dtype, and every sum over frames (tube volumes, intersection volumes, IoU sums) is accumulated in
float64 in increasing frame order, as the C++ kernels do (``acc_t = double``); the final ratios
are float64 too and are rounded to the boxes' dtype once. Interpolation weights are float64.

Pairwise tube IoU runs on 2-D tiles of pairs; each program loops over the frames from the
smallest to the largest temporal-overlap bound of its tile, masking per pair, so pairs with
disjoint spans (``[0, 5)`` and ``[5, 10)`` included) are exactly 0 and a tile of disjoint pairs
reads no frame. Backward kernels write every gradient element from exactly one program (no
atomics), so they are deterministic. Block sizes are fixed heuristics (no autotuning).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from .boxes import (_area_grad, _block, _box_inter, _box_iou, _device_guard, _inter_grad_first, _iou_grad_first,
                    _load_box, _store_box)

__all__ = [
    "tube_iou_triton",
    "tube_iou_aligned_triton",
    "tube_iou_aligned_backward_triton",
    "interpolate_boxes_triton",
    "interpolate_boxes_backward_triton",
]


# ---- helpers --------------------------------------------------------------------------------


@triton.jit
def _span_loop_bounds(lo, hi, valid):
    """Frame range [t_lo, t_hi) of a loop that covers every span [lo, hi) where ``valid``
    (elementwise over a tile); empty when no element is valid."""
    t_hi = tl.max(tl.where(valid, hi, 0))
    t_lo = tl.min(tl.where(valid, lo, t_hi))
    return t_lo, t_hi


@triton.jit
def _overlap_sum(a_ptr, a_first, sa, ea, b_ptr, b_first, sb, eb, off, MODE: tl.constexpr):
    """float64 sum over the shared frames of tubes a and b of the box intersection (MODE 0) or
    IoU (MODE 1), in increasing frame order. A tube is its span [s, e) and the index of its first
    box in its buffer; the arguments broadcast (a (BN, 1) x b (1, BM) for pairwise tiles). Masked
    tubes must have empty spans."""
    lo = tl.maximum(sa, sb)
    hi = tl.minimum(ea, eb)
    t_lo, t_hi = _span_loop_bounds(lo, hi, hi > lo)
    acc = tl.zeros(lo.shape, tl.float64)
    for t in range(t_lo, t_hi):
        in_a = (t >= sa) & (t < ea)
        in_b = (t >= sb) & (t < eb)
        ax1, ay1, ax2, ay2 = _load_box(a_ptr, a_first + (t - sa), in_a)
        bx1, by1, bx2, by2 = _load_box(b_ptr, b_first + (t - sb), in_b)
        if MODE == 0:
            v = _box_inter(ax1, ay1, ax2, ay2, bx1, by1, bx2, by2, off)
        else:
            v = _box_iou(ax1, ay1, ax2, ay2, bx1, by1, bx2, by2, off)
        acc += tl.where(in_a & in_b, v.to(tl.float64), 0.0)
    return acc


@triton.jit
def _tube_iou_value(acc, sa, ea, va, sb, eb, vb, MODE: tl.constexpr):
    """Tube IoU (float64) from the overlap sum ``acc`` of :func:`_overlap_sum`; exactly 0 for
    disjoint spans and, in MODE 0, where vol_a + vol_b - inter <= 0."""
    lo = tl.maximum(sa, sb)
    hi = tl.minimum(ea, eb)
    overlap = hi > lo
    if MODE == 0:
        uni = va + vb - acc
        value = tl.where(uni > 0, acc / tl.where(uni > 0, uni, 1.0), 0.0)
    else:
        shared = tl.where(overlap, hi - lo, 1).to(tl.float64)
        span = (tl.maximum(ea, eb) - tl.minimum(sa, sb)).to(tl.float64)
        value = (acc / shared) * (shared / tl.where(overlap, span, 1.0))
    return tl.where(overlap, value, 0.0)


# ---- kernels --------------------------------------------------------------------------------


@triton.jit
def _tube_iou_volume_kernel(boxes_ptr, length_ptr, out_ptr, N, T, off, BLOCK: tl.constexpr):
    """out[n] = sum over the tube's frames of its box areas, float64, in frame order."""
    rn = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = rn < N
    length = tl.load(length_ptr + rn, mask=mask, other=0)
    vol = tl.zeros([BLOCK], tl.float64)
    for i in range(0, tl.max(length)):
        frame = i < length
        x1, y1, x2, y2 = _load_box(boxes_ptr, rn * T + i, frame)
        vol += tl.where(frame, ((x2 - x1 + off) * (y2 - y1 + off)).to(tl.float64), 0.0)
    tl.store(out_ptr + rn, vol, mask=mask)


@triton.jit
def _tube_iou_kernel(a_ptr, a_start_ptr, a_len_ptr, a_vol_ptr, N, Ta,
                     b_ptr, b_start_ptr, b_len_ptr, b_vol_ptr, M, Tb,
                     out_ptr, off, MODE: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr):
    """One (BLOCK_N, BLOCK_M) tile of out (N, M) per program; 1-D grid over (tile_n, tile_m)."""
    pid = tl.program_id(0)
    tiles_m = tl.cdiv(M, BLOCK_M)
    rn = (pid // tiles_m).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    rm = (pid % tiles_m).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    mask_n = rn < N
    mask_m = rm < M
    sa = tl.load(a_start_ptr + rn, mask=mask_n, other=0)
    ea = sa + tl.load(a_len_ptr + rn, mask=mask_n, other=0)
    sb = tl.load(b_start_ptr + rm, mask=mask_m, other=0)
    eb = sb + tl.load(b_len_ptr + rm, mask=mask_m, other=0)
    acc = _overlap_sum(a_ptr, (rn * Ta)[:, None], sa[:, None], ea[:, None],
                       b_ptr, (rm * Tb)[None, :], sb[None, :], eb[None, :], off, MODE)
    if MODE == 0:
        va = tl.load(a_vol_ptr + rn, mask=mask_n, other=0.0)[:, None]
        vb = tl.load(b_vol_ptr + rm, mask=mask_m, other=0.0)[None, :]
    else:  # iou3dt needs no volumes
        va = 0.0
        vb = 0.0
    value = _tube_iou_value(acc, sa[:, None], ea[:, None], va, sb[None, :], eb[None, :], vb, MODE)
    tl.store(out_ptr + rn[:, None] * M + rm[None, :], value.to(out_ptr.dtype.element_ty),
             mask=mask_n[:, None] & mask_m[None, :])


@triton.jit
def _aligned_spans(a_start_ptr, a_len_ptr, b_start_ptr, b_len_ptr, N, BLOCK: tl.constexpr):
    """The BLOCK aligned pairs of this program: ``(rn, mask, sa, ea, sb, eb)``, pair indices, their
    validity and the half-open frame spans ``[sa, ea)`` of a[n] and ``[sb, eb)`` of b[n]."""
    rn = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = rn < N
    sa = tl.load(a_start_ptr + rn, mask=mask, other=0)
    ea = sa + tl.load(a_len_ptr + rn, mask=mask, other=0)
    sb = tl.load(b_start_ptr + rn, mask=mask, other=0)
    eb = sb + tl.load(b_len_ptr + rn, mask=mask, other=0)
    return rn, mask, sa, ea, sb, eb


@triton.jit
def _tube_iou_aligned_fwd_kernel(a_ptr, a_start_ptr, a_len_ptr, a_vol_ptr, Ta,
                                 b_ptr, b_start_ptr, b_len_ptr, b_vol_ptr, Tb,
                                 N, out_ptr, off, MODE: tl.constexpr, BLOCK: tl.constexpr):
    """BLOCK pairs (a[n], b[n]) per program -> out (N,)."""
    rn, mask, sa, ea, sb, eb = _aligned_spans(a_start_ptr, a_len_ptr, b_start_ptr, b_len_ptr, N, BLOCK)
    acc = _overlap_sum(a_ptr, rn * Ta, sa, ea, b_ptr, rn * Tb, sb, eb, off, MODE)
    if MODE == 0:
        va = tl.load(a_vol_ptr + rn, mask=mask, other=0.0)
        vb = tl.load(b_vol_ptr + rn, mask=mask, other=0.0)
    else:  # iou3dt needs no volumes
        va = 0.0
        vb = 0.0
    value = _tube_iou_value(acc, sa, ea, va, sb, eb, vb, MODE)
    tl.store(out_ptr + rn, value.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _tube_iou_aligned_bwd_kernel(a_ptr, a_start_ptr, a_len_ptr, a_vol_ptr, Ta,
                                 b_ptr, b_start_ptr, b_len_ptr, b_vol_ptr, Tb,
                                 N, g_ptr, ga_ptr, gb_ptr, off, MODE: tl.constexpr, BLOCK: tl.constexpr):
    """BLOCK pairs per program: writes grad_a (N, Ta, 4) / grad_b (N, Tb, 4) on the frames of each
    tube's span, for pairs with a nonzero gradient (the rest stays as zero-initialised)."""
    rn, mask, sa, ea, sb, eb = _aligned_spans(a_start_ptr, a_len_ptr, b_start_ptr, b_len_ptr, N, BLOCK)
    a_first = rn * Ta
    b_first = rn * Tb
    g = tl.load(g_ptr + rn, mask=mask, other=0.0)
    live = tl.minimum(ea, eb) > tl.maximum(sa, sb)
    if MODE == 0:
        # tubes.h tube_volume_iou_grad: coefficients of the intersection and volume gradients.
        inter = _overlap_sum(a_ptr, a_first, sa, ea, b_ptr, b_first, sb, eb, off, MODE)
        va = tl.load(a_vol_ptr + rn, mask=mask, other=0.0)
        vb = tl.load(b_vol_ptr + rn, mask=mask, other=0.0)
        uni = va + vb - inter
        live = live & (uni > 0)
        uu = tl.where(live, uni * uni, 1.0)
        g_inter = tl.where(live, g.to(tl.float64) * (va + vb) / uu, 0.0).to(g.dtype)
        g_coef = tl.where(live, -g.to(tl.float64) * inter / uu, 0.0).to(g.dtype)
    else:
        # tubes.h tube_iou3dt_grad: each shared frame's IoU has weight 1 / (frames of the union span).
        span = (tl.maximum(ea, eb) - tl.minimum(sa, sb)).to(tl.float64)
        g_coef = tl.where(live, g.to(tl.float64) / tl.where(live, span, 1.0), 0.0).to(g.dtype)
    t_lo, t_hi = _span_loop_bounds(tl.minimum(sa, sb), tl.maximum(ea, eb), live)
    for t in range(t_lo, t_hi):
        in_a = live & (t >= sa) & (t < ea)
        in_b = live & (t >= sb) & (t < eb)
        shared = in_a & in_b
        ax1, ay1, ax2, ay2 = _load_box(a_ptr, a_first + (t - sa), in_a)
        bx1, by1, bx2, by2 = _load_box(b_ptr, b_first + (t - sb), in_b)
        if MODE == 0:
            gi = tl.where(shared, g_inter, 0.0)
            p1, p2, p3, p4 = _inter_grad_first(ax1, ay1, ax2, ay2, bx1, by1, bx2, by2, off, gi)
            q1, q2, q3, q4 = _area_grad(ax1, ay1, ax2, ay2, off, g_coef)
            _store_box(ga_ptr, a_first + (t - sa), p1 + q1, p2 + q2, p3 + q3, p4 + q4, in_a)
            p1, p2, p3, p4 = _inter_grad_first(bx1, by1, bx2, by2, ax1, ay1, ax2, ay2, off, gi)
            q1, q2, q3, q4 = _area_grad(bx1, by1, bx2, by2, off, g_coef)
            _store_box(gb_ptr, b_first + (t - sb), p1 + q1, p2 + q2, p3 + q3, p4 + q4, in_b)
        else:
            gf = tl.where(shared, g_coef, 0.0)
            p1, p2, p3, p4 = _iou_grad_first(ax1, ay1, ax2, ay2, bx1, by1, bx2, by2, off, gf)
            _store_box(ga_ptr, a_first + (t - sa), p1, p2, p3, p4, in_a)
            p1, p2, p3, p4 = _iou_grad_first(bx1, by1, bx2, by2, ax1, ay1, ax2, ay2, off, gf)
            _store_box(gb_ptr, b_first + (t - sb), p1, p2, p3, p4, in_b)


@triton.jit
def _interp_weight(f_ptr, row, k, t, mask, n_steps):
    """tubes.h ``interp_weight`` for frames ``t`` of tracks whose k sampled frames start at
    ``f_ptr + row``: the last j < k - 1 with f[j] <= t (binary search of ``n_steps`` halvings) and
    the float64 weights (f[j+1] - t) / d and (t - f[j]) / d of boxes j and j + 1; (0, 1, 0) when
    k == 1."""
    lo = tl.zeros(row.shape, tl.int64)
    hi = k - 1
    for _ in range(n_steps):
        mid = (lo + hi) // 2
        halve = mask & (hi - lo > 1)
        right = tl.load(f_ptr + row + mid, mask=halve, other=0) <= t
        lo = tl.where(halve & right, mid, lo)
        hi = tl.where(halve & ~right, mid, hi)
    pair = mask & (k > 1)
    f_lo = tl.load(f_ptr + row + lo, mask=pair, other=0)
    f_hi = tl.load(f_ptr + row + lo + 1, mask=pair, other=1)
    d = (f_hi - f_lo).to(tl.float64)
    wl = tl.where(pair, (f_hi - t).to(tl.float64) / d, 1.0)
    wr = tl.where(pair, (t - f_lo).to(tl.float64) / d, 0.0)
    return lo, wl, wr


@triton.jit
def _interpolate_boxes_fwd_kernel(frames_ptr, boxes_ptr, counts_ptr, out_ptr, N, K, L, n_steps, BLOCK: tl.constexpr):
    """BLOCK output frames (n, i) of out (N, L, 4) per program; 0 past each track's last sample."""
    idx = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = idx < N * L
    n = idx // L
    i = idx % L
    k = tl.load(counts_ptr + n, mask=mask, other=0)
    row = n * K
    track = mask & (k > 0)
    f0 = tl.load(frames_ptr + row, mask=track, other=0)
    f_last = tl.load(frames_ptr + row + k - 1, mask=track, other=0)
    valid = track & (i <= f_last - f0)
    j, wl, wr = _interp_weight(frames_ptr, row, k, f0 + i, valid, n_steps)
    c = tl.arange(0, 4)
    left = tl.load(boxes_ptr + (row + j)[:, None] * 4 + c[None, :], mask=valid[:, None], other=0.0)
    right = tl.load(boxes_ptr + (row + tl.minimum(j + 1, k - 1))[:, None] * 4 + c[None, :],
                    mask=valid[:, None], other=0.0)
    box = wl[:, None] * left.to(tl.float64) + wr[:, None] * right.to(tl.float64)
    box = tl.where(valid[:, None], box, 0.0)
    tl.store(out_ptr + idx[:, None] * 4 + c[None, :], box.to(out_ptr.dtype.element_ty), mask=mask[:, None])


@triton.jit
def _interpolate_boxes_bwd_kernel(frames_ptr, counts_ptr, g_ptr, gb_ptr, N, K, L, n_steps, BLOCK: tl.constexpr):
    """BLOCK samples (n, p) of grad_boxes (N, K, 4) per program: gathers grad_out (N, L, 4) over
    the frames [f[p-1], f[p+1]] (the only ones whose weights use box p), in frame order, adding the
    terms rounded to the output dtype as the C++ kernels do; 0 for p >= counts[n]."""
    idx = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = idx < N * K
    n = idx // K
    p = idx % K
    k = tl.load(counts_ptr + n, mask=mask, other=0)
    row = n * K
    valid = mask & (p < k)
    f0 = tl.load(frames_ptr + row, mask=valid, other=0)
    first = tl.load(frames_ptr + row + tl.maximum(p - 1, 0), mask=valid, other=0)
    last = tl.load(frames_ptr + row + tl.minimum(p + 1, k - 1), mask=valid, other=-1)
    c = tl.arange(0, 4)
    acc = tl.zeros([BLOCK, 4], gb_ptr.dtype.element_ty)
    for r in range(0, tl.max(last - first + 1)):
        t = first + r
        active = valid & (t <= last)
        j, wl, wr = _interp_weight(frames_ptr, row, k, t, active, n_steps)
        g = tl.load(g_ptr + (n * L + t - f0)[:, None] * 4 + c[None, :], mask=active[:, None], other=0.0)
        g = g.to(tl.float64)
        acc += tl.where((active & (j == p))[:, None], (wl[:, None] * g).to(acc.dtype), 0.0)
        acc += tl.where((active & (tl.minimum(j + 1, k - 1) == p))[:, None], (wr[:, None] * g).to(acc.dtype), 0.0)
    tl.store(gb_ptr + idx[:, None] * 4 + c[None, :], acc, mask=mask[:, None])


# ---- host functions -------------------------------------------------------------------------


def _tube_volumes(boxes: Tensor, length: Tensor, pixel_offset: float) -> Tensor:
    """float64 (N,) sums of box areas over each tube's span: boxes (N, T, 4), length (N,)."""
    N, T = boxes.shape[0], boxes.shape[1]
    out = torch.empty(N, dtype=torch.float64, device=boxes.device)
    block = _block(N, 128)
    _tube_iou_volume_kernel[(triton.cdiv(N, block),)](boxes, length, out, N, T, pixel_offset, BLOCK=block)
    return out


def tube_iou_triton(a: Tensor, a_start: Tensor, a_length: Tensor, b: Tensor, b_start: Tensor, b_length: Tensor,
                    pixel_offset: float, mode: int) -> Tensor:
    """Pairwise tube IoU: a (N, Ta, 4), b (M, Tb, 4) contiguous float32/float64 with int64
    start/length (N,)/(M,); mode 0 volumetric vIoU, 1 iou3dt -> (N, M) of the boxes' dtype."""
    N, Ta, M, Tb = a.shape[0], a.shape[1], b.shape[0], b.shape[1]
    if N * M == 0 or Ta * Tb == 0:  # no pairs, or every tube is empty
        return a.new_zeros(N, M)
    out = a.new_empty(N, M)
    bn, bm = _block(N, 32), _block(M, 32)
    with _device_guard(a):
        a_vol = _tube_volumes(a, a_length, pixel_offset) if mode == 0 else None
        b_vol = _tube_volumes(b, b_length, pixel_offset) if mode == 0 else None
        _tube_iou_kernel[(triton.cdiv(N, bn) * triton.cdiv(M, bm),)](
            a, a_start, a_length, a_vol, N, Ta, b, b_start, b_length, b_vol, M, Tb, out, pixel_offset,
            MODE=mode, BLOCK_N=bn, BLOCK_M=bm)
    return out


def tube_iou_aligned_triton(a: Tensor, a_start: Tensor, a_length: Tensor, b: Tensor, b_start: Tensor,
                            b_length: Tensor, pixel_offset: float, mode: int) -> Tensor:
    """Tube IoU of pairs (a[n], b[n]): a (N, Ta, 4), b (N, Tb, 4), int64 start/length (N,) -> (N,)."""
    N, Ta, Tb = a.shape[0], a.shape[1], b.shape[1]
    if N == 0 or Ta * Tb == 0:
        return a.new_zeros(N)
    out = a.new_empty(N)
    block = _block(N, 128)
    with _device_guard(a):
        a_vol = _tube_volumes(a, a_length, pixel_offset) if mode == 0 else None
        b_vol = _tube_volumes(b, b_length, pixel_offset) if mode == 0 else None
        _tube_iou_aligned_fwd_kernel[(triton.cdiv(N, block),)](
            a, a_start, a_length, a_vol, Ta, b, b_start, b_length, b_vol, Tb, N, out, pixel_offset,
            MODE=mode, BLOCK=block)
    return out


def tube_iou_aligned_backward_triton(a: Tensor, a_start: Tensor, a_length: Tensor, b: Tensor, b_start: Tensor,
                                     b_length: Tensor, grad: Tensor, pixel_offset: float,
                                     mode: int) -> tuple[Tensor, Tensor]:
    """Gradients of :func:`tube_iou_aligned_triton`: grad (N,) -> grad_a (N, Ta, 4), grad_b (N, Tb, 4),
    zero on frames outside each tube's span."""
    N, Ta, Tb = a.shape[0], a.shape[1], b.shape[1]
    ga, gb = torch.zeros_like(a), torch.zeros_like(b)
    if N == 0 or Ta * Tb == 0:
        return ga, gb
    block = _block(N, 64)
    with _device_guard(a):
        a_vol = _tube_volumes(a, a_length, pixel_offset) if mode == 0 else None
        b_vol = _tube_volumes(b, b_length, pixel_offset) if mode == 0 else None
        _tube_iou_aligned_bwd_kernel[(triton.cdiv(N, block),)](
            a, a_start, a_length, a_vol, Ta, b, b_start, b_length, b_vol, Tb, N, grad, ga, gb, pixel_offset,
            MODE=mode, BLOCK=block)
    return ga, gb


def _search_steps(K: int) -> int:
    """Binary-search halvings that find the segment among K samples: ceil(log2(K - 1))."""
    return max(K - 2, 0).bit_length()


def interpolate_boxes_triton(frames: Tensor, boxes: Tensor, counts: Tensor, length: int) -> Tensor:
    """Linear interpolation of tracks: frames (N, K) int64 strictly increasing within the first
    counts[n] samples, boxes (N, K, 4) float32/float64, counts (N,) int64 -> (N, length, 4),
    zero past each track's last sample."""
    N, K = frames.shape
    if N * K * length == 0:
        return boxes.new_zeros(N, length, 4)
    out = boxes.new_empty(N, length, 4)
    block = _block(N * length, 256)
    with _device_guard(boxes):
        _interpolate_boxes_fwd_kernel[(triton.cdiv(N * length, block),)](frames, boxes, counts, out, N, K, length,
                                                              _search_steps(K), BLOCK=block)
    return out


def interpolate_boxes_backward_triton(frames: Tensor, counts: Tensor, grad: Tensor) -> Tensor:
    """Gradient of :func:`interpolate_boxes_triton`: grad (N, L, 4) -> grad of boxes (N, K, 4)."""
    N, K = frames.shape
    L = grad.shape[1]
    if N * K * L == 0:
        return grad.new_zeros(N, K, 4)
    gb = grad.new_empty(N, K, 4)
    block = _block(N * K, 128)
    with _device_guard(grad):
        _interpolate_boxes_bwd_kernel[(triton.cdiv(N * K, block),)](frames, counts, grad, gb, N, K, L, _search_steps(K),
                                                         BLOCK=block)
    return gb
