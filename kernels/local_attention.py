"""Triton kernels of windowed local attention, tiled in the FlashAttention style.

The window math is that of ``csrc/include/pyvrel/local_attention.h`` (see
:func:`pyvrel.ops.local_attention` for the conventions): query ``i`` is centred on key ``c_i``,
its window starts at ``c_i - dilation * left`` (shifted by whole dilations with
``boundary="shift"``), slot ``o`` reads key ``start + dilation * o`` when it lies in
``[0, kv_len)``.

Forward: one program per block of ``BLOCK_M`` queries of one (batch, head) walks the band of keys
its windows cover in ``BLOCK_N`` chunks: scores by ``tl.dot`` (tensor cores for float16/bfloat16,
IEEE float32 without TF32, float64 for float64), the exact window mask per (query, key), online
softmax in float32 (float64 for float64 inputs). Backward as FlashAttention-2: one program per
query block recomputes the probabilities from the log-sum-exp and accumulates ``dq`` (and writes
the score gradient of each window slot when there is a ``rel_bias``), one program per key block
accumulates ``dk``/``dv`` over the query blocks whose windows reach it. No atomics: every output
element is written by one program in a fixed order, so results are deterministic; the
``rel_bias`` gradient is a fixed-order sum of the per-slot score gradients.

The grid is one-dimensional (``blocks * B * H`` programs; CUDA caps grid y/z at 65535) and every
row offset is int64. ``scale`` is a float64 kernel argument (a plain Python float would reach the
kernel as float32 and cost float64 inputs ~1e-8 of accuracy).
"""

import torch
import triton
import triton.language as tl
from torch import Tensor

from pyvrel.ops.reference.local_attention import local_window_ref

from .boxes import _device_guard

__all__ = ["local_attention_fwd_triton", "local_attention_bwd_triton"]


@triton.jit
def _window_start(c, n, LEFT, DIL, W, SHIFT: tl.constexpr, CAUSAL: tl.constexpr):
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
def _query_rows(QLen, KVLen, Centers, b, qb, Lq, Lk, LEFT, DIL, W, SHIFT: tl.constexpr,
                CAUSAL: tl.constexpr, HAS_CENTERS: tl.constexpr, BLOCK_M: tl.constexpr):
    """Query block ``qb`` of batch row ``b``: indices ``i`` (int64), each row's first window key
    ``start``, ``row_ok`` (inside ``Lq`` and ``q_len``) and the valid key count ``n``."""
    i = qb * BLOCK_M + tl.arange(0, BLOCK_M)  # qb is int64 (a Python int in the interpreter)
    n = tl.load(KVLen + b)
    if HAS_CENTERS:
        c = tl.load(Centers + b * Lq + i, mask=i < Lq, other=0)
    else:
        c = tl.where(Lq == Lk, i, ((2 * i + 1) * Lk) // (2 * Lq))
    start = _window_start(c.to(tl.int64), n, LEFT, DIL, W, SHIFT, CAUSAL)
    row_ok = (i < Lq) & (i < tl.load(QLen + b))
    return i, start, row_ok, n


@triton.jit
def _tile(Ptr, rows, row_ok, cols, width, DOT: tl.constexpr):
    """Rows ``rows`` (int64) of a row-major (., width) tensor as a (rows, cols) tile in ``DOT``,
    zero where ``row_ok`` is false or a column is past ``width``."""
    x = tl.load(Ptr + rows[:, None] * width + cols[None, :], mask=row_ok[:, None] & (cols[None, :] < width), other=0.0)
    return x.to(DOT)


@triton.jit
def _key_band(start, row_ok, n, Lk, DIL, W):
    """Keys ``[lo, hi]`` that some row's window covers (empty, lo > hi, when none)."""
    first = tl.maximum(start, 0)
    last = tl.minimum(start + DIL * (W - 1), n - 1)
    use = row_ok & (first <= last)
    return tl.min(tl.where(use, first, Lk), 0), tl.max(tl.where(use, last, -1), 0)


@triton.jit
def _query_block(QLen, KVLen, Centers, H, Lq, Lk, n_qb, LEFT, DIL, W, SHIFT: tl.constexpr, CAUSAL: tl.constexpr,
                 HAS_CENTERS: tl.constexpr, BLOCK_M: tl.constexpr):
    """This program's query block (grid: query blocks x batch*head folded into one axis): ``(bh,
    h, i, rows, start, row_ok, n, lo, hi)``, ``rows`` the flat int64 rows, ``[lo, hi]`` the key band."""
    pid = tl.program_id(0).to(tl.int64)
    bh = pid // n_qb
    i, start, row_ok, n = _query_rows(QLen, KVLen, Centers, bh // H, pid % n_qb, Lq, Lk, LEFT, DIL, W, SHIFT, CAUSAL,
                                      HAS_CENTERS, BLOCK_M)
    lo, hi = _key_band(start, row_ok, n, Lk, DIL, W)
    return bh, bh % H, i, bh * Lq + i, start, row_ok, n, lo, hi


@triton.jit
def _scores(q, k, j, start, row_ok, n, h, Bias, scale, DIL, W, HAS_BIAS: tl.constexpr,
            ACC: tl.constexpr, POS: tl.constexpr):
    """Scores (BLOCK_M, BLOCK_N) of the query rows against keys ``j``, ``-inf`` outside the
    windows; also the window mask and the slot of each (row, key)."""
    s = tl.dot(q, tl.trans(k), input_precision="ieee", out_dtype=ACC) * scale
    off = j.to(POS)[None, :] - start.to(POS)[:, None]
    slot = off // DIL
    ok = row_ok[:, None] & (j < n)[None, :] & (off >= 0) & (slot < W) & (off % DIL == 0)
    if HAS_BIAS:
        s += tl.load(Bias + h * W + slot, mask=ok, other=0.0).to(ACC)
    return tl.where(ok, s, float("-inf")), ok, slot


@triton.jit
def _probs(s, ok, lse):
    """exp(s - lse), 0 outside the windows and on rows without a key (lse = -inf): no NaN."""
    has = lse > float("-inf")
    use = ok & has[:, None]
    return tl.where(use, tl.exp(s - tl.where(has, lse, 0.0)[:, None]), 0.0)


@triton.jit
def _fwd_kernel(Q, K, V, Bias, QLen, KVLen, Centers, Out, Lse, scale: tl.float64, H, Lq, Lk, D, Dv, n_qb, LEFT,
                DIL, W, SHIFT: tl.constexpr, CAUSAL: tl.constexpr, HAS_CENTERS: tl.constexpr,
                HAS_BIAS: tl.constexpr, ACC: tl.constexpr, DOT: tl.constexpr, POS: tl.constexpr,
                BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DV: tl.constexpr):
    bh, h, i, rows, start, row_ok, n, lo, hi = _query_block(QLen, KVLen, Centers, H, Lq, Lk, n_qb, LEFT, DIL, W,
                                                             SHIFT, CAUSAL, HAS_CENTERS, BLOCK_M)
    scale = tl.full([], scale, ACC)  # exact: a float64 argument on the GPU, a Python float in the interpreter
    d = tl.arange(0, BLOCK_D)
    dv = tl.arange(0, BLOCK_DV)
    q = _tile(Q, rows, row_ok, d, D, DOT)
    m = tl.full([BLOCK_M], float("-inf"), ACC)
    l = tl.zeros([BLOCK_M], ACC)
    acc = tl.zeros([BLOCK_M, BLOCK_DV], ACC)
    for j0 in range(lo, hi + 1, BLOCK_N):
        j = j0 + tl.arange(0, BLOCK_N)
        keys = bh * Lk + j
        kj = _tile(K, keys, j < n, d, D, DOT)
        vj = _tile(V, keys, j < n, dv, Dv, DOT)
        s, ok, slot = _scores(q, kj, j, start, row_ok, n, h, Bias, scale, DIL, W, HAS_BIAS, ACC, POS)
        m_new = tl.maximum(m, tl.max(s, 1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        alpha = tl.exp(m - m_safe)
        p = tl.exp(s - m_safe[:, None])
        l = l * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + tl.dot(p.to(vj.dtype), vj, input_precision="ieee", out_dtype=ACC)
        m = m_new
    has = l > 0
    out = acc / tl.where(has, l, 1.0)[:, None]
    lse = tl.where(has, m + tl.log(tl.where(has, l, 1.0)), float("-inf"))
    tl.store(Out + rows[:, None] * Dv + dv[None, :], out.to(Out.dtype.element_ty),
             mask=(i < Lq)[:, None] & (dv[None, :] < Dv))
    tl.store(Lse + rows, lse.to(Lse.dtype.element_ty), mask=i < Lq)


@triton.jit
def _bwd_dq_kernel(Q, K, V, Bias, QLen, KVLen, Centers, Lse, Delta, DOut, DQ, DS, scale: tl.float64, H, Lq, Lk, D,
                   Dv, n_qb, LEFT, DIL, W, SHIFT: tl.constexpr, CAUSAL: tl.constexpr,
                   HAS_CENTERS: tl.constexpr, HAS_BIAS: tl.constexpr, ACC: tl.constexpr, DOT: tl.constexpr,
                   POS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
                   BLOCK_DV: tl.constexpr):
    """dq of one query block; with a bias also the score gradient of each (row, slot) into DS."""
    bh, h, i, rows, start, row_ok, n, lo, hi = _query_block(QLen, KVLen, Centers, H, Lq, Lk, n_qb, LEFT, DIL, W,
                                                             SHIFT, CAUSAL, HAS_CENTERS, BLOCK_M)
    scale = tl.full([], scale, ACC)  # exact: a float64 argument on the GPU, a Python float in the interpreter
    d = tl.arange(0, BLOCK_D)
    dv = tl.arange(0, BLOCK_DV)
    q = _tile(Q, rows, row_ok, d, D, DOT)
    do = _tile(DOut, rows, row_ok, dv, Dv, DOT)
    lse = tl.load(Lse + rows, mask=row_ok, other=float("-inf")).to(ACC)
    delta = tl.load(Delta + rows, mask=row_ok, other=0.0)
    dq = tl.zeros([BLOCK_M, BLOCK_D], ACC)
    for j0 in range(lo, hi + 1, BLOCK_N):
        j = j0 + tl.arange(0, BLOCK_N)
        keys = bh * Lk + j
        kj = _tile(K, keys, j < n, d, D, DOT)
        vj = _tile(V, keys, j < n, dv, Dv, DOT)
        s, ok, slot = _scores(q, kj, j, start, row_ok, n, h, Bias, scale, DIL, W, HAS_BIAS, ACC, POS)
        p = _probs(s, ok, lse)
        dp = tl.dot(do, tl.trans(vj), input_precision="ieee", out_dtype=ACC)
        ds = p * (dp - delta[:, None])
        dq += tl.dot(ds.to(kj.dtype), kj, input_precision="ieee", out_dtype=ACC)
        if HAS_BIAS:
            tl.store(DS + rows[:, None] * W + slot, ds, mask=ok)
    tl.store(DQ + rows[:, None] * D + d[None, :], (dq * scale).to(DQ.dtype.element_ty),
             mask=(i < Lq)[:, None] & (d[None, :] < D))


@triton.jit
def _bwd_dkdv_kernel(Q, K, V, Bias, QLen, KVLen, Centers, Lse, Delta, DOut, DK, DV, QBlocks, scale: tl.float64, H,
                     Lq, Lk, D, Dv, n_kb, LEFT, DIL, W, SHIFT: tl.constexpr, CAUSAL: tl.constexpr,
                     HAS_CENTERS: tl.constexpr, HAS_BIAS: tl.constexpr, ACC: tl.constexpr, DOT: tl.constexpr,
                     POS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
                     BLOCK_DV: tl.constexpr):
    """dk, dv of one key block, summed over the query blocks ``QBlocks[b, kb]`` (first, last) in
    order; keys outside every window get 0."""
    pid = tl.program_id(0).to(tl.int64)
    bh = pid // n_kb
    kb = pid % n_kb
    b, h = bh // H, bh % H
    scale = tl.full([], scale, ACC)  # exact: a float64 argument on the GPU, a Python float in the interpreter
    j = kb * BLOCK_N + tl.arange(0, BLOCK_N)
    n = tl.load(KVLen + b)
    keys = bh * Lk + j
    d = tl.arange(0, BLOCK_D)
    dv = tl.arange(0, BLOCK_DV)
    kj = _tile(K, keys, j < n, d, D, DOT)
    vj = _tile(V, keys, j < n, dv, Dv, DOT)
    dk = tl.zeros([BLOCK_N, BLOCK_D], ACC)
    dvj = tl.zeros([BLOCK_N, BLOCK_DV], ACC)
    first = tl.load(QBlocks + (b * n_kb + kb) * 2)
    last = tl.load(QBlocks + (b * n_kb + kb) * 2 + 1)
    for qb in range(first, last + 1):
        i, start, row_ok, n = _query_rows(QLen, KVLen, Centers, b, qb, Lq, Lk, LEFT, DIL, W, SHIFT, CAUSAL,
                                          HAS_CENTERS, BLOCK_M)
        rows = bh * Lq + i
        q = _tile(Q, rows, row_ok, d, D, DOT)
        do = _tile(DOut, rows, row_ok, dv, Dv, DOT)
        lse = tl.load(Lse + rows, mask=row_ok, other=float("-inf")).to(ACC)
        delta = tl.load(Delta + rows, mask=row_ok, other=0.0)
        s, ok, slot = _scores(q, kj, j, start, row_ok, n, h, Bias, scale, DIL, W, HAS_BIAS, ACC, POS)
        p = _probs(s, ok, lse)
        dvj += tl.dot(tl.trans(p.to(do.dtype)), do, input_precision="ieee", out_dtype=ACC)
        dp = tl.dot(do, tl.trans(vj), input_precision="ieee", out_dtype=ACC)
        ds = p * (dp - delta[:, None])
        dk += tl.dot(tl.trans(ds.to(q.dtype)), q, input_precision="ieee", out_dtype=ACC)
    in_range = (j < Lk)[:, None]
    tl.store(DK + keys[:, None] * D + d[None, :], (dk * scale).to(DK.dtype.element_ty),
             mask=in_range & (d[None, :] < D))
    tl.store(DV + keys[:, None] * Dv + dv[None, :], dvj.to(DV.dtype.element_ty), mask=in_range & (dv[None, :] < Dv))


def _common(q: Tensor, k: Tensor, v: Tensor, left: int, right: int, dilation: int) -> dict:
    B, H, Lq, D = q.shape
    f64 = q.dtype == torch.float64
    # operands of tl.dot: the input dtype; float32 for bfloat16 in the CPU interpreter, whose
    # tl.dot misreads bfloat16 tiles (Triton 3.9)
    dot = tl.float32 if q.dtype == torch.bfloat16 and not q.is_cuda else getattr(tl, str(q.dtype)[6:])
    # (query, key) offsets in int32 when every window position fits (cheaper masks), else int64
    pos = tl.int32 if k.shape[2] + dilation * (2 * left + right + 1) < 2**31 else tl.int64
    return dict(B=B, H=H, Lq=Lq, Lk=k.shape[2], D=D, Dv=v.shape[3], W=left + right + 1, f64=f64,
                acc=tl.float64 if f64 else tl.float32, dot=dot, pos=pos, BLOCK_D=max(16, triton.next_power_of_2(D)),
                BLOCK_DV=max(16, triton.next_power_of_2(v.shape[3])))


def _query_tiles(c: dict) -> tuple[int, int]:
    """(BLOCK_M, BLOCK_N) of the query-block kernels: 64-query tiles (32 in float64, fewer
    registers), 32-key chunks for windows up to 32 keys (a 64-query block then covers 64 + W - 1
    keys: 3 chunks of 32 waste less than 2 of 64), else 64."""
    return (32, 32) if c["f64"] else (64, 32 if c["W"] <= 32 else 64)


def local_attention_fwd_triton(q: Tensor, k: Tensor, v: Tensor, q_lengths: Tensor, kv_lengths: Tensor,
                               centers: Tensor | None, rel_bias: Tensor | None, left: int, right: int, dilation: int,
                               causal: bool, shift: bool, scale: float) -> tuple[Tensor, Tensor]:
    """Contiguous q (B, H, Lq, D), k (B, H, Lk, D), v (B, H, Lk, Dv), int64 lengths (B,) and
    centres (B, Lq) -> out (B, H, Lq, Dv), lse (B, H, Lq) (float64 for float64, else float32)."""
    c = _common(q, k, v, left, right, dilation)
    B, H, Lq = c["B"], c["H"], c["Lq"]
    out = q.new_empty(B, H, Lq, c["Dv"])
    lse = q.new_empty(B, H, Lq, dtype=torch.float64 if c["f64"] else torch.float32)
    if B * H * Lq == 0:
        return out, lse
    BLOCK_M, BLOCK_N = _query_tiles(c)
    n_qb = triton.cdiv(Lq, BLOCK_M)
    dummy = q_lengths
    with _device_guard(q):
        _fwd_kernel[(n_qb * B * H,)](
            q, k, v, dummy if rel_bias is None else rel_bias, q_lengths, kv_lengths,
            dummy if centers is None else centers, out, lse, scale, H, Lq, c["Lk"], c["D"], c["Dv"], n_qb, left,
            dilation, W=c["W"], SHIFT=shift, CAUSAL=causal, HAS_CENTERS=centers is not None,
            HAS_BIAS=rel_bias is not None, ACC=c["acc"], DOT=c["dot"], POS=c["pos"], BLOCK_M=BLOCK_M,
            BLOCK_N=BLOCK_N, BLOCK_D=c["BLOCK_D"], BLOCK_DV=c["BLOCK_DV"])
    return out, lse


def _query_blocks_of_key_blocks(q_lengths: Tensor, kv_lengths: Tensor, centers: Tensor | None, Lq: int, Lk: int,
                                left: int, right: int, dilation: int, causal: bool, shift: bool, block_m: int,
                                block_n: int) -> Tensor:
    """(B, key blocks, 2) int64: the first and last query block whose windows may reach each key
    block (every block that does lies in between; exact when windows move monotonically with the
    query, as with default centres). On the device, no host sync."""
    W = left + right + 1
    start = local_window_ref(Lq, Lk, left, right, dilation, causal, shift, kv_lengths, centers)  # (B, Lq)
    first = start.clamp(min=0)
    last = torch.minimum(start + dilation * (W - 1), kv_lengths[:, None] - 1)
    use = (torch.arange(Lq, device=start.device) < q_lengths[:, None]) & (first <= last)
    pad = (0, triton.cdiv(Lq, block_m) * block_m - Lq)
    lo = torch.nn.functional.pad(torch.where(use, first, Lk), pad, value=Lk).unflatten(1, (-1, block_m)).amin(2)
    hi = torch.nn.functional.pad(torch.where(use, last, -1), pad, value=-1).unflatten(1, (-1, block_m)).amax(2)
    hi_so_far = hi.cummax(1).values  # a block can be reached only at or after the first with hi >= n0
    lo_from_here = lo.flip(1).cummin(1).values.flip(1)  # ... and only up to the last with lo <= n1
    n0 = torch.arange(0, Lk, block_n, device=start.device).expand(start.shape[0], -1).contiguous()
    qfirst = torch.searchsorted(hi_so_far.contiguous(), n0)
    qlast = torch.searchsorted(lo_from_here.contiguous(), n0 + (block_n - 1), right=True) - 1
    return torch.stack([qfirst, qlast], 2).contiguous()


def local_attention_bwd_triton(dout: Tensor, dlse: Tensor | None, q: Tensor, k: Tensor, v: Tensor, out: Tensor,
                               lse: Tensor, q_lengths: Tensor, kv_lengths: Tensor, centers: Tensor | None,
                               rel_bias: Tensor | None, left: int, right: int, dilation: int, causal: bool,
                               shift: bool, scale: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Gradients (dq, dk, dv, drel_bias) of :func:`local_attention_fwd_triton`; drel_bias is empty
    when ``rel_bias`` is None."""
    c = _common(q, k, v, left, right, dilation)
    B, H, Lq, Lk, W = c["B"], c["H"], c["Lq"], c["Lk"], c["W"]
    adt = lse.dtype
    if B * H * Lq * Lk == 0:
        dbias = torch.zeros_like(rel_bias) if rel_bias is not None else q.new_empty(0)
        return torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v), dbias
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    # score gradient of each (query row, window slot): the rel_bias gradient is its fixed-order sum
    ds = torch.zeros(B, H, Lq, W, dtype=adt, device=q.device) if rel_bias is not None else None
    delta = (dout.to(adt) * out.to(adt)).sum(-1)
    if dlse is not None:
        delta = delta - dlse.to(adt)
    dummy = q_lengths
    common = dict(W=W, SHIFT=shift, CAUSAL=causal, HAS_CENTERS=centers is not None, HAS_BIAS=rel_bias is not None,
                  ACC=c["acc"], DOT=c["dot"], POS=c["pos"], BLOCK_D=c["BLOCK_D"], BLOCK_DV=c["BLOCK_DV"])
    head = (q, k, v, dummy if rel_bias is None else rel_bias, q_lengths, kv_lengths,
            dummy if centers is None else centers, lse, delta, dout)
    sizes = (H, Lq, Lk, c["D"], c["Dv"])
    # dk/dv: 64-key blocks (32 in float64); query tiles of 32 rows for small windows (a key block
    # is reached by BLOCK_N + W - 1 queries), else 64
    kv_n = 32 if c["f64"] else 64
    kv_m = 32 if c["f64"] or W <= 32 else 64
    n_kb = triton.cdiv(Lk, kv_n)
    qblocks = _query_blocks_of_key_blocks(q_lengths, kv_lengths, centers, Lq, Lk, left, right, dilation, causal,
                                          shift, kv_m, kv_n)
    BLOCK_M, BLOCK_N = _query_tiles(c)
    n_qb = triton.cdiv(Lq, BLOCK_M)
    with _device_guard(q):
        _bwd_dq_kernel[(n_qb * B * H,)](*head, dq, dummy if ds is None else ds, scale, *sizes, n_qb, left,
                                        dilation, BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, **common)
        _bwd_dkdv_kernel[(n_kb * B * H,)](*head, dk, dv, qblocks, scale, *sizes, n_kb, left, dilation, BLOCK_M=kv_m,
                                          BLOCK_N=kv_n, **common)
    dbias = q.new_empty(0) if ds is None else ds.sum(dim=(0, 2)).to(rel_bias.dtype)
    return dq, dk, dv, dbias
