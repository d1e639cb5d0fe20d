"""Triton kernels of windowed local attention: forward and deterministic backward.

The window math is that of ``csrc/include/pyvrel/local_attention.h`` (see
:func:`pyvrel.ops.local_attention` for the conventions): query ``i`` is centred on key ``c_i``,
its window starts at ``c_i - dilation * left`` (shifted by whole dilations with
``boundary="shift"``), slot ``o`` reads key ``start + dilation * o`` when it lies in
``[0, kv_len)``. The window size ``W`` is a compile-time constant, so the slot loop is unrolled;
each program handles ``BLOCK_M`` queries of one (batch, head) and computes in float32 (float64 for
float64 inputs). The backward recomputes probabilities from the log-sum-exp; ``dk``/``dv`` are
accumulated by one program per (batch, head) walking its queries in order (no atomics), and the
``rel_bias`` gradient is a fixed-order sum of the per-row score gradients.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from .boxes import _device_guard

__all__ = ["local_attention_fwd_triton", "local_attention_bwd_triton"]


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


@triton.jit
def _window_start(c, n, LEFT, DIL, W: tl.constexpr, SHIFT: tl.constexpr, CAUSAL: tl.constexpr):
    """First key of the window centred on ``c`` with ``n`` valid keys (pyvrel/local_attention.h)."""
    start = c - DIL * LEFT
    if SHIFT:
        over = tl.maximum(start + DIL * (W - 1) - (n - 1), 0)
        start = start - DIL * ((over + DIL - 1) // DIL)
        if not CAUSAL:
            under = tl.maximum(-start, 0)
            start = start + DIL * ((under + DIL - 1) // DIL)
    return start


@triton.jit
def _centers(Centers, b, i, Lq, Lk, HAS_CENTERS: tl.constexpr):
    if HAS_CENTERS:
        c = tl.load(Centers + b * Lq + i, mask=i < Lq, other=0)
    else:
        c = tl.where(Lq == Lk, i, ((2 * i + 1) * Lk) // (2 * Lq))
    return c


@triton.jit
def _row_block(QLen, KVLen, Centers, H, Lq, Lk, LEFT, DIL, W: tl.constexpr, SHIFT: tl.constexpr,
               CAUSAL: tl.constexpr, HAS_CENTERS: tl.constexpr, BLOCK_M: tl.constexpr):
    """The query rows of this program (grid: row blocks x batch*head): ``(bh, h, i, rows, n,
    start, row_ok)`` with ``i`` the query indices, ``rows`` their flat rows, ``n`` the valid keys,
    ``start`` each row's first window key and ``row_ok`` the rows inside ``Lq`` and ``q_len``."""
    bh = tl.program_id(1)
    b = bh // H
    i = (tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
    n = tl.load(KVLen + b)
    start = _window_start(_centers(Centers, b, i, Lq, Lk, HAS_CENTERS).to(tl.int64), n, LEFT, DIL, W, SHIFT, CAUSAL)
    row_ok = (i < Lq) & (i < tl.load(QLen + b))
    return bh, bh % H, i, bh * Lq + i, n, start, row_ok


@triton.jit
def _local_attention_fwd_kernel(Q, K, V, Bias, QLen, KVLen, Centers, Out, Lse, H, Lq, Lk, D, Dv, scale, LEFT, DIL,
                W: tl.constexpr, SHIFT: tl.constexpr, CAUSAL: tl.constexpr, HAS_CENTERS: tl.constexpr,
                HAS_BIAS: tl.constexpr, ACC: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr,
                BLOCK_DV: tl.constexpr):
    bh, h, i, rows, n, start, row_ok = _row_block(QLen, KVLen, Centers, H, Lq, Lk, LEFT, DIL, W, SHIFT, CAUSAL,
                                                  HAS_CENTERS, BLOCK_M)
    d = tl.arange(0, BLOCK_D)
    dv = tl.arange(0, BLOCK_DV)
    q = tl.load(Q + rows[:, None] * D + d[None, :], mask=row_ok[:, None] & (d[None, :] < D), other=0.0).to(ACC)
    m = tl.full([BLOCK_M], float("-inf"), ACC)
    l = tl.zeros([BLOCK_M], ACC)
    acc = tl.zeros([BLOCK_M, BLOCK_DV], ACC)
    for o in tl.static_range(W):
        j = start + DIL * o
        ok = row_ok & (j >= 0) & (j < n)
        keys = bh * Lk + j
        kj = tl.load(K + keys[:, None] * D + d[None, :], mask=ok[:, None] & (d[None, :] < D), other=0.0).to(ACC)
        s = tl.sum(q * kj, axis=1) * scale
        if HAS_BIAS:
            s += tl.load(Bias + h * W + o).to(ACC)
        s = tl.where(ok, s, float("-inf"))
        m_new = tl.maximum(m, s)
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        alpha = tl.exp(m - m_safe)
        p = tl.exp(s - m_safe)
        vj = tl.load(V + keys[:, None] * Dv + dv[None, :], mask=ok[:, None] & (dv[None, :] < Dv), other=0.0).to(ACC)
        l = l * alpha + p
        acc = acc * alpha[:, None] + p[:, None] * vj
        m = m_new
    has = l > 0
    out = acc / tl.where(has, l, 1.0)[:, None]
    lse = tl.where(has, m + tl.log(tl.where(has, l, 1.0)), float("-inf"))
    tl.store(Out + rows[:, None] * Dv + dv[None, :], out.to(Out.dtype.element_ty),
             mask=(i < Lq)[:, None] & (dv[None, :] < Dv))
    tl.store(Lse + rows, lse.to(Lse.dtype.element_ty), mask=i < Lq)


@triton.jit
def _local_attention_bwd_rows_kernel(Q, K, V, Bias, QLen, KVLen, Centers, Out, Lse, DOut, DLse, DQ, P, DS, H, Lq, Lk, D, Dv, scale,
                     LEFT, DIL, W: tl.constexpr, SHIFT: tl.constexpr, CAUSAL: tl.constexpr,
                     HAS_CENTERS: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_DLSE: tl.constexpr, ACC: tl.constexpr,
                     BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr):
    """dq per query; probabilities P and score gradients DS (B*H*Lq, W), zero where invalid."""
    bh, h, i, rows, n, start, row_ok = _row_block(QLen, KVLen, Centers, H, Lq, Lk, LEFT, DIL, W, SHIFT, CAUSAL,
                                                  HAS_CENTERS, BLOCK_M)
    in_range = i < Lq
    d = tl.arange(0, BLOCK_D)
    dv = tl.arange(0, BLOCK_DV)
    qmask = row_ok[:, None] & (d[None, :] < D)
    vmask = row_ok[:, None] & (dv[None, :] < Dv)
    q = tl.load(Q + rows[:, None] * D + d[None, :], mask=qmask, other=0.0).to(ACC)
    do = tl.load(DOut + rows[:, None] * Dv + dv[None, :], mask=vmask, other=0.0).to(ACC)
    out = tl.load(Out + rows[:, None] * Dv + dv[None, :], mask=vmask, other=0.0).to(ACC)
    lse = tl.load(Lse + rows, mask=row_ok, other=0.0).to(ACC)
    delta = tl.sum(do * out, axis=1)
    if HAS_DLSE:
        delta -= tl.load(DLse + rows, mask=row_ok, other=0.0).to(ACC)
    dq = tl.zeros([BLOCK_M, BLOCK_D], ACC)
    for o in tl.static_range(W):
        j = start + DIL * o
        ok = row_ok & (j >= 0) & (j < n)
        keys = bh * Lk + j
        kj = tl.load(K + keys[:, None] * D + d[None, :], mask=ok[:, None] & (d[None, :] < D), other=0.0).to(ACC)
        vj = tl.load(V + keys[:, None] * Dv + dv[None, :], mask=ok[:, None] & (dv[None, :] < Dv), other=0.0).to(ACC)
        s = tl.sum(q * kj, axis=1) * scale
        if HAS_BIAS:
            s += tl.load(Bias + h * W + o).to(ACC)
        p = tl.where(ok, tl.exp(tl.where(ok, s - lse, 0.0)), 0.0)
        ds = p * (tl.sum(do * vj, axis=1) - delta)
        dq += ds[:, None] * kj
        tl.store(P + rows * W + o, p, mask=in_range)
        tl.store(DS + rows * W + o, ds, mask=in_range)
    tl.store(DQ + rows[:, None] * D + d[None, :], (dq * scale).to(DQ.dtype.element_ty),
             mask=in_range[:, None] & (d[None, :] < D))


@triton.jit
def _local_attention_bwd_kv_kernel(Q, DOut, QLen, KVLen, Centers, P, DS, DK, DV, H, Lq, Lk, D, Dv, scale, LEFT, DIL,
                   W: tl.constexpr, SHIFT: tl.constexpr, CAUSAL: tl.constexpr, HAS_CENTERS: tl.constexpr,
                   BLOCK_W: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr):
    """One program per (batch, head): dk, dv (zeroed, in the accumulation dtype) summed over the
    queries in order; the W keys of one query are distinct, so each step is a plain gather-add."""
    bh = tl.program_id(0)
    b = bh // H
    q_len = tl.load(QLen + b)
    n = tl.load(KVLen + b)
    o = tl.arange(0, BLOCK_W)
    d = tl.arange(0, BLOCK_D)
    dv = tl.arange(0, BLOCK_DV)
    for i in range(0, tl.minimum(Lq, q_len)):
        c = _centers(Centers, b, i, Lq, Lk, HAS_CENTERS).to(tl.int64)
        start = _window_start(c, n, LEFT, DIL, W, SHIFT, CAUSAL)
        j = start + DIL * o
        ok = (o < W) & (j >= 0) & (j < n)
        row = bh * Lq + i
        ds = tl.load(DS + row * W + o, mask=ok, other=0.0)
        p = tl.load(P + row * W + o, mask=ok, other=0.0)
        qi = tl.load(Q + row * D + d, mask=d < D, other=0.0).to(ds.dtype)
        doi = tl.load(DOut + row * Dv + dv, mask=dv < Dv, other=0.0).to(ds.dtype)
        keys = bh * Lk + j
        kmask = ok[:, None] & (d[None, :] < D)
        vmask = ok[:, None] & (dv[None, :] < Dv)
        dk_ptr = DK + keys[:, None] * D + d[None, :]
        dv_ptr = DV + keys[:, None] * Dv + dv[None, :]
        tl.store(dk_ptr, tl.load(dk_ptr, mask=kmask, other=0.0) + scale * ds[:, None] * qi[None, :], mask=kmask)
        tl.store(dv_ptr, tl.load(dv_ptr, mask=vmask, other=0.0) + p[:, None] * doi[None, :], mask=vmask)
        tl.debug_barrier()  # the next query may update the same rows


def _common(q: Tensor, k: Tensor, v: Tensor, left: int, right: int):
    B, H, Lq, D = q.shape
    Lk, Dv = k.shape[2], v.shape[3]
    W = left + right + 1
    acc = tl.float64 if q.dtype == torch.float64 else tl.float32
    blocks = dict(BLOCK_D=max(16, triton.next_power_of_2(D)), BLOCK_DV=max(16, triton.next_power_of_2(Dv)))
    return B, H, Lq, Lk, D, Dv, W, acc, blocks


_BLOCK_M = 32


def local_attention_fwd_triton(q: Tensor, k: Tensor, v: Tensor, q_lengths: Tensor, kv_lengths: Tensor,
                               centers: Tensor | None, rel_bias: Tensor | None, left: int, right: int, dilation: int,
                               causal: bool, shift: bool, scale: float) -> tuple[Tensor, Tensor]:
    """Contiguous q (B, H, Lq, D), k (B, H, Lk, D), v (B, H, Lk, Dv) -> out (B, H, Lq, Dv), lse (B, H, Lq)."""
    B, H, Lq, Lk, D, Dv, W, acc, blocks = _common(q, k, v, left, right)
    out = q.new_empty(B, H, Lq, Dv)
    lse = q.new_empty(B, H, Lq, dtype=_acc_dtype(q.dtype))
    if B * H * Lq == 0:
        return out, lse
    dummy = q_lengths
    with _device_guard(q):
        _local_attention_fwd_kernel[(triton.cdiv(Lq, _BLOCK_M), B * H)](
            q, k, v, dummy if rel_bias is None else rel_bias, q_lengths, kv_lengths,
            dummy if centers is None else centers, out, lse, H, Lq, Lk, D, Dv, scale, left, dilation, W=W,
            SHIFT=shift, CAUSAL=causal, HAS_CENTERS=centers is not None, HAS_BIAS=rel_bias is not None, ACC=acc,
            BLOCK_M=_BLOCK_M, **blocks)
    return out, lse


def local_attention_bwd_triton(dout: Tensor, dlse: Tensor | None, q: Tensor, k: Tensor, v: Tensor, out: Tensor,
                               lse: Tensor, q_lengths: Tensor, kv_lengths: Tensor, centers: Tensor | None,
                               rel_bias: Tensor | None, left: int, right: int, dilation: int, causal: bool,
                               shift: bool, scale: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Gradients (dq, dk, dv, drel_bias) of :func:`local_attention_fwd_triton`; drel_bias is empty
    when ``rel_bias`` is None."""
    B, H, Lq, Lk, D, Dv, W, acc, blocks = _common(q, k, v, left, right)
    adt = _acc_dtype(q.dtype)
    dq = torch.empty_like(q)
    dk_acc = torch.zeros(B, H, Lk, D, dtype=adt, device=q.device)
    dv_acc = torch.zeros(B, H, Lk, Dv, dtype=adt, device=q.device)
    p = torch.zeros(B, H, Lq, W, dtype=adt, device=q.device)
    ds = torch.zeros(B, H, Lq, W, dtype=adt, device=q.device)
    dummy = q_lengths
    flags = dict(W=W, SHIFT=shift, CAUSAL=causal, HAS_CENTERS=centers is not None)
    cen = dummy if centers is None else centers
    with _device_guard(q):
        if B * H * Lq:
            _local_attention_bwd_rows_kernel[(triton.cdiv(Lq, _BLOCK_M), B * H)](
                q, k, v, dummy if rel_bias is None else rel_bias, q_lengths, kv_lengths, cen, out, lse, dout,
                dummy if dlse is None else dlse, dq, p, ds, H, Lq, Lk, D, Dv, scale, left, dilation, **flags,
                HAS_BIAS=rel_bias is not None, HAS_DLSE=dlse is not None, ACC=acc, BLOCK_M=_BLOCK_M, **blocks)
            _local_attention_bwd_kv_kernel[(B * H,)](q, dout, q_lengths, kv_lengths, cen, p, ds, dk_acc, dv_acc, H, Lq, Lk, D, Dv,
                                     scale, left, dilation, **flags, BLOCK_W=max(2, triton.next_power_of_2(W)),
                                     **blocks)
    dbias = ds.sum(dim=(0, 2)).to(rel_bias.dtype) if rel_bias is not None else q.new_empty(0)
    return dq, dk_acc.to(k.dtype), dv_acc.to(v.dtype), dbias
