"""Triton kernels of the frame-level box ops: pairwise and aligned IoU, forward and backward.

The per-element math is that of ``csrc/include/pyvrel/boxes.h``: boxes are ``(x1, y1, x2, y2)``,
``pixel_offset`` is added to widths and heights, areas are not clamped, intersections are clamped
per axis, a union <= 0 gives IoU 0 and zero gradient, and the gradient of a min/max whose two
arguments tie is split 0.5/0.5. Everything is computed in the boxes' dtype (float32 or float64);
divisions are rounded to nearest (:func:`_div`), as in the C++ kernels.

Backward kernels are deterministic (no atomics): each program owns the gradient rows it writes
and reduces over the other box set tile by tile. Block sizes are fixed heuristics (no autotuning).
The ``@triton.jit`` helpers below are shared with :mod:`pyvrel.kernels.tubes`.
"""

from __future__ import annotations

import contextlib

import torch
import triton
import triton.language as tl
from torch import Tensor

__all__ = ["box_iou_triton", "box_iou_backward_triton", "box_iou_aligned_triton", "box_iou_aligned_backward_triton"]


# ---- shared helpers -------------------------------------------------------------------------


def _block(n: int, cap: int) -> int:
    """Power-of-two block size for ``n`` elements: at least 16, at most ``cap``."""
    return min(cap, max(16, triton.next_power_of_2(n)))


def _device_guard(t: Tensor):
    """Context that makes ``t``'s GPU current: Triton launches on the current device."""
    return torch.cuda.device(t.device) if t.is_cuda else contextlib.nullcontext()


@triton.jit
def _div(x, y):
    """``x / y`` rounded to nearest: Triton's float32 ``/`` may lower to an approximate division."""
    if x.dtype == tl.float32:
        return tl.math.div_rn(x, y)
    else:
        return x / y


@triton.jit
def _load_box(ptr, idx, mask):
    """The four coordinates of boxes ``idx`` (any shape) of a ``(..., 4)`` buffer; 0 where masked."""
    p = ptr + idx * 4
    return (tl.load(p, mask=mask, other=0.0), tl.load(p + 1, mask=mask, other=0.0),
            tl.load(p + 2, mask=mask, other=0.0), tl.load(p + 3, mask=mask, other=0.0))


@triton.jit
def _store_box(ptr, idx, x1, y1, x2, y2, mask):
    """Store four coordinates at boxes ``idx`` of a ``(..., 4)`` buffer where ``mask``."""
    p = ptr + idx * 4
    tl.store(p, x1, mask=mask)
    tl.store(p + 1, y1, mask=mask)
    tl.store(p + 2, x2, mask=mask)
    tl.store(p + 3, y2, mask=mask)


@triton.jit
def _box_inter(ax1, ay1, ax2, ay2, bx1, by1, bx2, by2, off):
    """Intersection area, clamped at zero per axis (boxes.h ``box_inter``)."""
    w = tl.maximum(tl.minimum(ax2, bx2) - tl.maximum(ax1, bx1) + off, 0.0)
    h = tl.maximum(tl.minimum(ay2, by2) - tl.maximum(ay1, by1) + off, 0.0)
    return w * h


@triton.jit
def _box_iou(ax1, ay1, ax2, ay2, bx1, by1, bx2, by2, off):
    """IoU; 0 where the union is not positive (boxes.h ``box_iou``)."""
    inter = _box_inter(ax1, ay1, ax2, ay2, bx1, by1, bx2, by2, off)
    uni = (ax2 - ax1 + off) * (ay2 - ay1 + off) + (bx2 - bx1 + off) * (by2 - by1 + off) - inter
    return tl.where(uni > 0, _div(inter, tl.where(uni > 0, uni, 1.0)), 0.0)


@triton.jit
def _share_min(x, y):
    """Share of d min(x, y) that goes to ``x``: 1, 0, or 0.5 on ties."""
    return tl.where(x < y, 1.0, tl.where(x > y, 0.0, 0.5))


@triton.jit
def _share_max(x, y):
    """Share of d max(x, y) that goes to ``x``: 1, 0, or 0.5 on ties."""
    return tl.where(x > y, 1.0, tl.where(x < y, 0.0, 0.5))


@triton.jit
def _area_grad(x1, y1, x2, y2, off, g):
    """``g * d(area)/d(box)`` (boxes.h ``box_area_grad``)."""
    w = x2 - x1 + off
    h = y2 - y1 + off
    return -(g * h), -(g * w), g * h, g * w


@triton.jit
def _inter_grad_first(ax1, ay1, ax2, ay2, bx1, by1, bx2, by2, off, g):
    """``g * d(inter)/d(a)`` (a's part of boxes.h ``box_inter_grad``); zero unless w > 0 and h > 0.
    The part of ``b`` is the same call with the boxes swapped."""
    w = tl.minimum(ax2, bx2) - tl.maximum(ax1, bx1) + off
    h = tl.minimum(ay2, by2) - tl.maximum(ay1, by1) + off
    overlap = (w > 0) & (h > 0)
    gw = tl.where(overlap, g * h, 0.0)
    gh = tl.where(overlap, g * w, 0.0)
    return (-(gw * _share_max(ax1, bx1)), -(gh * _share_max(ay1, by1)),
            gw * _share_min(ax2, bx2), gh * _share_min(ay2, by2))


@triton.jit
def _iou_grad_first(ax1, ay1, ax2, ay2, bx1, by1, bx2, by2, off, g):
    """``g * d(iou)/d(a)`` (a's part of boxes.h ``box_iou_grad``): d/dI = (Aa + Ab) / U^2,
    d/dAa = -I / U^2, zero where U <= 0. The gradient of ``b`` is the same call with the boxes
    swapped (IoU is symmetric)."""
    inter = _box_inter(ax1, ay1, ax2, ay2, bx1, by1, bx2, by2, off)
    area_a = (ax2 - ax1 + off) * (ay2 - ay1 + off)
    area_b = (bx2 - bx1 + off) * (by2 - by1 + off)
    uni = area_a + area_b - inter
    valid = uni > 0
    uu = tl.where(valid, uni * uni, 1.0)
    inv2 = _div(tl.full(uu.shape, 1.0, uu.dtype), uu)
    g_inter = tl.where(valid, g * (area_a + area_b) * inv2, 0.0)
    g_area = tl.where(valid, -g * inter * inv2, 0.0)
    gx1, gy1, gx2, gy2 = _inter_grad_first(ax1, ay1, ax2, ay2, bx1, by1, bx2, by2, off, g_inter)
    dx1, dy1, dx2, dy2 = _area_grad(ax1, ay1, ax2, ay2, off, g_area)
    return gx1 + dx1, gy1 + dy1, gx2 + dx2, gy2 + dy2


# ---- kernels --------------------------------------------------------------------------------


@triton.jit
def _box_iou_fwd_kernel(a_ptr, b_ptr, out_ptr, N, M, off, BLOCK_N: tl.constexpr, BLOCK_M: tl.constexpr):
    """One (BLOCK_N, BLOCK_M) tile of out[batch] per program; 1-D grid over (batch, tile_n, tile_m)."""
    pid = tl.program_id(0)
    tiles_n = tl.cdiv(N, BLOCK_N)
    tiles_m = tl.cdiv(M, BLOCK_M)
    batch = (pid // (tiles_n * tiles_m)).to(tl.int64)
    tile = pid % (tiles_n * tiles_m)
    rn = (tile // tiles_m).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)
    rm = (tile % tiles_m).to(tl.int64) * BLOCK_M + tl.arange(0, BLOCK_M)
    mask_n = rn < N
    mask_m = rm < M
    ax1, ay1, ax2, ay2 = _load_box(a_ptr, batch * N + rn, mask_n)
    bx1, by1, bx2, by2 = _load_box(b_ptr, batch * M + rm, mask_m)
    iou = _box_iou(ax1[:, None], ay1[:, None], ax2[:, None], ay2[:, None],
                   bx1[None, :], by1[None, :], bx2[None, :], by2[None, :], off)
    offs = (batch * N + rn)[:, None] * M + rm[None, :]
    tl.store(out_ptr + offs, iou, mask=mask_n[:, None] & mask_m[None, :])


@triton.jit
def _box_iou_bwd_kernel(x_ptr, y_ptr, g_ptr, gx_ptr, NX, NY, g_stride_x, g_stride_y, off,
                        BLOCK_X: tl.constexpr, BLOCK_Y: tl.constexpr):
    """grad of the boxes x (B, NX, 4) of IoU(x, y) with y (B, NY, 4): each program owns BLOCK_X
    rows of gx and reduces over y in BLOCK_Y tiles, in a fixed order. g[batch, i, j] (the upstream
    gradient of IoU(x_i, y_j)) is at batch * NX * NY + i * g_stride_x + j * g_stride_y."""
    pid = tl.program_id(0)
    tiles_x = tl.cdiv(NX, BLOCK_X)
    batch = (pid // tiles_x).to(tl.int64)
    rx = (pid % tiles_x).to(tl.int64) * BLOCK_X + tl.arange(0, BLOCK_X)
    mask_x = rx < NX
    x1, y1, x2, y2 = _load_box(x_ptr, batch * NX + rx, mask_x)
    x1, y1, x2, y2 = x1[:, None], y1[:, None], x2[:, None], y2[:, None]
    acc1 = tl.zeros([BLOCK_X], gx_ptr.dtype.element_ty)
    acc2 = tl.zeros([BLOCK_X], gx_ptr.dtype.element_ty)
    acc3 = tl.zeros([BLOCK_X], gx_ptr.dtype.element_ty)
    acc4 = tl.zeros([BLOCK_X], gx_ptr.dtype.element_ty)
    g_base = batch * NX * NY + rx[:, None] * g_stride_x
    for y0 in range(0, NY, BLOCK_Y):
        ry = y0 + tl.arange(0, BLOCK_Y).to(tl.int64)
        mask_y = ry < NY
        u1, v1, u2, v2 = _load_box(y_ptr, batch * NY + ry, mask_y)
        pair = mask_x[:, None] & mask_y[None, :]
        g = tl.load(g_ptr + g_base + ry[None, :] * g_stride_y, mask=pair, other=0.0)
        d1, d2, d3, d4 = _iou_grad_first(x1, y1, x2, y2, u1[None, :], v1[None, :], u2[None, :], v2[None, :],
                                         off, g)
        acc1 += tl.sum(tl.where(pair, d1, 0.0), axis=1)
        acc2 += tl.sum(tl.where(pair, d2, 0.0), axis=1)
        acc3 += tl.sum(tl.where(pair, d3, 0.0), axis=1)
        acc4 += tl.sum(tl.where(pair, d4, 0.0), axis=1)
    _store_box(gx_ptr, batch * NX + rx, acc1, acc2, acc3, acc4, mask_x)


@triton.jit
def _box_iou_aligned_fwd_kernel(a_ptr, b_ptr, out_ptr, K, off, BLOCK: tl.constexpr):
    rk = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = rk < K
    ax1, ay1, ax2, ay2 = _load_box(a_ptr, rk, mask)
    bx1, by1, bx2, by2 = _load_box(b_ptr, rk, mask)
    tl.store(out_ptr + rk, _box_iou(ax1, ay1, ax2, ay2, bx1, by1, bx2, by2, off), mask=mask)


@triton.jit
def _box_iou_aligned_bwd_kernel(a_ptr, b_ptr, g_ptr, ga_ptr, gb_ptr, K, off, BLOCK: tl.constexpr):
    rk = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = rk < K
    ax1, ay1, ax2, ay2 = _load_box(a_ptr, rk, mask)
    bx1, by1, bx2, by2 = _load_box(b_ptr, rk, mask)
    g = tl.load(g_ptr + rk, mask=mask, other=0.0)
    d1, d2, d3, d4 = _iou_grad_first(ax1, ay1, ax2, ay2, bx1, by1, bx2, by2, off, g)
    _store_box(ga_ptr, rk, d1, d2, d3, d4, mask)
    d1, d2, d3, d4 = _iou_grad_first(bx1, by1, bx2, by2, ax1, ay1, ax2, ay2, off, g)
    _store_box(gb_ptr, rk, d1, d2, d3, d4, mask)


# ---- host functions -------------------------------------------------------------------------


def box_iou_triton(a: Tensor, b: Tensor, pixel_offset: float) -> Tensor:
    """Pairwise IoU: a (B, N, 4), b (B, M, 4) contiguous float32/float64 -> (B, N, M)."""
    B, N, M = a.shape[0], a.shape[1], b.shape[1]
    out = a.new_empty(B, N, M)
    if out.numel() == 0:
        return out
    bn, bm = _block(N, 64), _block(M, 64)
    grid = (B * triton.cdiv(N, bn) * triton.cdiv(M, bm),)
    with _device_guard(a):
        _box_iou_fwd_kernel[grid](a, b, out, N, M, pixel_offset, BLOCK_N=bn, BLOCK_M=bm)
    return out


def box_iou_backward_triton(a: Tensor, b: Tensor, grad: Tensor, pixel_offset: float) -> tuple[Tensor, Tensor]:
    """Gradients of :func:`box_iou_triton`: grad (B, N, M) -> grad_a (B, N, 4), grad_b (B, M, 4)."""
    B, N, M = a.shape[0], a.shape[1], b.shape[1]
    if grad.numel() == 0:
        return torch.zeros_like(a), torch.zeros_like(b)
    ga, gb = torch.empty_like(a), torch.empty_like(b)
    with _device_guard(a):
        bx, by = _block(N, 64), _block(M, 32)
        _box_iou_bwd_kernel[(B * triton.cdiv(N, bx),)](a, b, grad, ga, N, M, M, 1, pixel_offset,
                                                       BLOCK_X=bx, BLOCK_Y=by)
        bx, by = _block(M, 64), _block(N, 32)
        _box_iou_bwd_kernel[(B * triton.cdiv(M, bx),)](b, a, grad, gb, M, N, 1, M, pixel_offset,
                                                       BLOCK_X=bx, BLOCK_Y=by)
    return ga, gb


def box_iou_aligned_triton(a: Tensor, b: Tensor, pixel_offset: float) -> Tensor:
    """IoU of paired boxes: a (K, 4), b (K, 4) contiguous float32/float64 -> (K,)."""
    K = a.shape[0]
    out = a.new_empty(K)
    if K == 0:
        return out
    block = _block(K, 1024)
    with _device_guard(a):
        _box_iou_aligned_fwd_kernel[(triton.cdiv(K, block),)](a, b, out, K, pixel_offset, BLOCK=block)
    return out


def box_iou_aligned_backward_triton(a: Tensor, b: Tensor, grad: Tensor, pixel_offset: float) -> tuple[Tensor, Tensor]:
    """Gradients of :func:`box_iou_aligned_triton`: grad (K,) -> grad_a (K, 4), grad_b (K, 4)."""
    K = a.shape[0]
    ga, gb = torch.empty_like(a), torch.empty_like(b)
    if K == 0:
        return ga, gb
    block = _block(K, 512)
    with _device_guard(a):
        _box_iou_aligned_bwd_kernel[(triton.cdiv(K, block),)](a, b, grad, ga, gb, K, pixel_offset, BLOCK=block)
    return ga, gb
