"""Windowed (local / neighbourhood) multi-head attention over 1-D sequences, self and cross."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from pyvrel import _codes, _ext
from pyvrel.ops import _checks, reference
from pyvrel.ops._backend import call, choose_backend, why_not

__all__ = ["local_attention", "window_extents"]

_BACKENDS = ("cpp", "cuda", "triton", "reference")


def _lse_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


# ---- pyvrel::local_attention_fwd / pyvrel::local_attention_bwd -----------------------------------


@torch.library.custom_op("pyvrel::local_attention_fwd", mutates_args=())
def _local_attention_fwd(
    q: Tensor, k: Tensor, v: Tensor, q_lengths: Tensor, kv_lengths: Tensor, centers: Tensor | None,
    rel_bias: Tensor | None, left: int, right: int, dilation: int, causal: bool, shift: bool,
    scale: float, backend: str,
) -> tuple[Tensor, Tensor]:
    """Contiguous q (B, H, Lq, D), k (B, H, Lk, D), v (B, H, Lk, Dv), int64 lengths (B,) and
    centres (B, Lq) -> out (B, H, Lq, Dv), lse (B, H, Lq)."""
    if backend == "triton":
        from pyvrel.kernels.local_attention import local_attention_fwd_triton

        return local_attention_fwd_triton(q, k, v, q_lengths, kv_lengths, centers, rel_bias, left, right,
                                          dilation, causal, shift, scale)
    B, H, Lq, _ = q.shape
    out = q.new_empty(B, H, Lq, v.shape[-1])
    lse = q.new_empty(B, H, Lq, dtype=_lse_dtype(q.dtype))
    if out.numel() or lse.numel():
        _ext.launch(backend, "local_attention_forward", q, k, v, rel_bias, q_lengths, kv_lengths, centers, out,
                    lse, B, H, Lq, k.shape[2], q.shape[3], v.shape[3], left, right, dilation, shift, causal, scale,
                    _codes.dtype_code(q))
    return out, lse


@_local_attention_fwd.register_fake
def _(q, k, v, q_lengths, kv_lengths, centers, rel_bias, left, right, dilation, causal, shift, scale, backend):
    B, H, Lq, _ = q.shape
    return q.new_empty(B, H, Lq, v.shape[-1]), q.new_empty(B, H, Lq, dtype=_lse_dtype(q.dtype))


@torch.library.custom_op("pyvrel::local_attention_bwd", mutates_args=())
def _local_attention_bwd(
    dout: Tensor, dlse: Tensor | None, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor,
    q_lengths: Tensor, kv_lengths: Tensor, centers: Tensor | None, rel_bias: Tensor | None, left: int,
    right: int, dilation: int, causal: bool, shift: bool, scale: float, backend: str,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Gradients (dq, dk, dv, drel_bias); drel_bias is empty when rel_bias is None."""
    if backend == "triton":
        from pyvrel.kernels.local_attention import local_attention_bwd_triton

        return local_attention_bwd_triton(dout, dlse, q, k, v, out, lse, q_lengths, kv_lengths, centers, rel_bias,
                                          left, right, dilation, causal, shift, scale)
    B, H, Lq, D = q.shape
    Lk, Dv = k.shape[2], v.shape[3]
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    dbias = torch.empty_like(rel_bias) if rel_bias is not None else q.new_empty(0)
    args = [q, k, v, rel_bias, q_lengths, kv_lengths, centers, out, lse, dout, dlse, dq, dk, dv,
            None if rel_bias is None else dbias, B, H, Lq, Lk, D, Dv, left, right, dilation, shift, causal, scale,
            _codes.dtype_code(q)]
    if backend == "cuda":
        nbytes = _ext.cuda().local_attention_workspace_bytes(B, H, Lq, Lk, D, Dv, left + right + 1,
                                                             _codes.dtype_code(q))
        ws = torch.empty(nbytes, dtype=torch.uint8, device=q.device)
        args.insert(-1, ws)
    _ext.launch(backend, "local_attention_backward", *args)
    return dq, dk, dv, dbias


@_local_attention_bwd.register_fake
def _(dout, dlse, q, k, v, out, lse, q_lengths, kv_lengths, centers, rel_bias, left, right, dilation, causal,
      shift, scale, backend):
    dbias = torch.empty_like(rel_bias) if rel_bias is not None else q.new_empty(0)
    return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v), dbias


def _fwd_setup(ctx, inputs, output):
    q, k, v, q_lengths, kv_lengths, centers, rel_bias, left, right, dilation, causal, shift, scale, backend = inputs
    out, lse = output
    ctx.save_for_backward(q, k, v, out, lse, q_lengths, kv_lengths, centers, rel_bias)
    ctx.params = (left, right, dilation, causal, shift, scale, backend)


def _fwd_grad(ctx, dout, dlse):
    q, k, v, out, lse, q_lengths, kv_lengths, centers, rel_bias = ctx.saved_tensors
    dq, dk, dv, dbias = _local_attention_bwd(dout.contiguous(), None if dlse is None else dlse.contiguous(), q, k, v,
                                        out, lse, q_lengths, kv_lengths, centers, rel_bias, *ctx.params)
    return dq, dk, dv, None, None, None, (dbias if rel_bias is not None else None), *([None] * 7)


_local_attention_fwd.register_autograd(_fwd_grad, setup_context=_fwd_setup)


# ---- public API -------------------------------------------------------------------------------


def window_extents(window: int | tuple[int, int], causal: bool = False) -> tuple[int, int]:
    """``(left, right)`` extents of a window: a kernel size ``w`` gives ``(w // 2, w - 1 - w // 2)``
    (even sizes have one more key on the left); a pair is taken as is; ``causal`` sets right to 0."""
    op = "local_attention"
    if isinstance(window, bool):
        raise TypeError(f"{op}: window must be an int or a (left, right) pair of ints, got {window!r}")
    if isinstance(window, int):
        if window < 1:
            raise ValueError(f"{op}: window (kernel size) must be >= 1, got {window}")
        left, right = window // 2, window - 1 - window // 2
    elif (isinstance(window, (tuple, list)) and len(window) == 2
          and all(isinstance(x, int) and not isinstance(x, bool) for x in window)):
        left, right = int(window[0]), int(window[1])
        if left < 0 or right < 0:
            raise ValueError(f"{op}: window extents (left, right) must be >= 0, got {tuple(window)}")
    else:
        raise TypeError(f"{op}: window must be an int or a (left, right) pair of ints, got {window!r}")
    return left, (0 if causal else right)


def _lengths(op: str, name: str, value: Tensor | None, B: int, L: int, device: torch.device) -> Tensor:
    if value is None:
        return torch.full((B,), L, dtype=torch.int64, device=device)
    _checks.tensor(op, name, value, ndim=1, integer=True)
    if value.shape[0] != B:
        raise ValueError(f"{op}: {name} must have shape ({B},) (one length per batch row), got {tuple(value.shape)}")
    if value.device != device:
        raise ValueError(f"{op}: {name} is on {value.device} but q is on {device}")
    _checks.int_range(op, name, value, 0, L)
    return value.to(torch.int64).clamp(0, L).contiguous()  # unchecked values (CUDA): clamped


def _clip_window(left: int, right: int, dilation: int, causal: bool, shift: bool, Lk: int) -> tuple[int, int, int]:
    """Extents ``(left, right)`` of at most ``2 * Lk + 3`` slots that attend exactly as the given
    ones, and the slot of the given window that is slot 0 of the clipped one (for ``rel_bias``).

    No key is more than ``M = (Lk - 1) // dilation`` slots from a centre in ``[0, Lk)``, so extents
    beyond ``M`` only add slots that are never valid. With the non-causal ``"shift"`` boundary, an
    extent beyond ``M`` makes every window start at ``centre % dilation`` (slot numbering from
    there), which extents of ``M + 1`` do as well."""
    M = max(Lk - 1, 0) // dilation
    if shift and not causal:
        if left <= M and right <= M:
            return left, right, 0
        return min(left, M + 1), min(right, M + 1), 0
    return min(left, M), min(right, M), left - min(left, M)


def local_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    window: int | tuple[int, int],
    *,
    dilation: int = 1,
    causal: bool = False,
    boundary: Literal["truncate", "shift"] = "truncate",
    q_lengths: Tensor | None = None,
    kv_lengths: Tensor | None = None,
    centers: Tensor | None = None,
    rel_bias: Tensor | None = None,
    scale: float | None = None,
    return_lse: bool = False,
    layout: Literal["bhld", "blhd"] = "bhld",
    backend: str | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    """Multi-head attention in which each query attends only to a window of keys.

    Args:
        q (Tensor[B, H, Lq, D]): queries. k (Tensor[B, H, Lk, D]): keys. v (Tensor[B, H, Lk, Dv]):
            values. Same dtype and device; ``layout="blhd"`` takes and returns ``(B, L, H, D)``
            tensors instead. Self attention is ``q, k, v`` of one sequence, cross attention any
            other ``k, v`` (``Lk`` may differ from ``Lq``).
        window: a kernel size ``w >= 1`` (left extent ``w // 2``, right extent ``w - 1 - w // 2``,
            so an even size has one more key on the left) or explicit ``(left, right)`` extents.
            The window of a query has ``W = left + right + 1`` slots.
        dilation: spacing of the keys: slot ``o`` reads key ``start + dilation * o``.
        causal: no keys to the right of the centre (the right extent is taken as 0, and the
            ``"shift"`` boundary never moves the window to the right).
        boundary: ``"truncate"`` (ActionFormer/Longformer/FlashAttention): the window is
            ``[c - dilation * left, c + dilation * right]`` around the centre ``c`` and keys outside
            the valid range ``[0, kv_lengths[b])`` are dropped. ``"shift"`` (NATTEN): the window
            moves by whole multiples of ``dilation``, first left so it ends inside the valid range,
            then right so it starts at or after key 0; it keeps all ``W`` keys whenever the valid
            sequence is long enough, and keys still out of range are dropped.
        q_lengths, kv_lengths (Tensor[B] int, optional): valid queries/keys of each batch row
            (default ``Lq``/``Lk``); the window is cut (or shifted) at the *valid* end. Padded
            query rows, and rows whose window holds no valid key, output 0 (log-sum-exp ``-inf``)
            and get zero gradient, never NaN.
        centers (Tensor[B, Lq] int, optional): key position ``c_i`` of each query, in ``[0, Lk)``.
            By default ``c_i = i`` when ``Lq == Lk``, else ``floor((i + 0.5) * Lk / Lq)`` (pyramid
            levels of different lengths).
        rel_bias (Tensor[H, W], optional): learnable bias added to the score of window slot ``o``
            (``o = 0`` is the leftmost slot; with ``"shift"`` slots are positions in the shifted
            window).
        scale: score scale, default ``D ** -0.5``; scores are ``scale * q.k + rel_bias[h, o]``.
        return_lse: also return the log-sum-exp of each row's scores, ``(B, H, Lq)`` (float32 for
            half-precision inputs), differentiable too.
        layout: ``"bhld"`` (default) or ``"blhd"``.
        backend: ``None`` (automatic: on CUDA tensors the tiled Triton kernels, else the per-row
            CUDA kernels; on CPU tensors C++), ``"cpp"``, ``"cuda"``, ``"triton"`` or ``"reference"``.

    Returns:
        ``out`` (Tensor[B, H, Lq, Dv], the input dtype), or ``(out, lse)`` when ``return_lse``.
        Differentiable w.r.t. ``q``, ``k``, ``v`` and ``rel_bias``. dtypes: float32/float64 on the
        CPU (float16/bfloat16 are computed in float32), float16/bfloat16/float32 (and float64) on
        CUDA/Triton. Memory is O(B·H·L·(W + D)); no L×L tensor is formed (except by the reference).

    Example:
        >>> q = k = v = torch.randn(2, 4, 100, 32)
        >>> out = local_attention(q, k, v, 9, kv_lengths=torch.tensor([100, 64]))
    """
    op = "local_attention"
    for name, t in (("q", q), ("k", k), ("v", v)):
        _checks.tensor(op, name, t, ndim=4, dtypes=_checks.FLOAT_DTYPES)
    _checks.same_dtype(op, q=q, k=k, v=v)
    device = _checks.same_device(op, q=q, k=k, v=v)
    if layout not in ("bhld", "blhd"):
        raise ValueError(f"{op}: layout must be 'bhld' or 'blhd', got {layout!r}")
    if layout == "blhd":
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    B, H, Lq, D = q.shape
    Lk, Dv = k.shape[2], v.shape[3]
    if k.shape[:2] != (B, H) or v.shape[:2] != (B, H):
        raise ValueError(f"{op}: q, k and v must have the same batch size and number of heads, got q (B, H) = "
                         f"{(B, H)}, k {tuple(k.shape[:2])}, v {tuple(v.shape[:2])}")
    if k.shape[3] != D:
        raise ValueError(f"{op}: q and k must have the same head dim, got {D} and {k.shape[3]}")
    if v.shape[2] != Lk:
        raise ValueError(f"{op}: k and v must have the same length, got {Lk} and {v.shape[2]}")
    left, right = window_extents(window, causal)
    dilation = _checks.number(op, "dilation", dilation, 1, integer=True)
    if boundary not in ("truncate", "shift"):
        raise ValueError(f"{op}: boundary must be 'truncate' or 'shift', got {boundary!r}")
    shift = boundary == "shift"
    W = left + right + 1
    q_len = _lengths(op, "q_lengths", q_lengths, B, Lq, device)
    kv_len = _lengths(op, "kv_lengths", kv_lengths, B, Lk, device)
    if centers is not None:
        _checks.tensor(op, "centers", centers, ndim=2, integer=True)
        if tuple(centers.shape) != (B, Lq):
            raise ValueError(f"{op}: centers must have shape (B, Lq) = {(B, Lq)}, got {tuple(centers.shape)}")
        if centers.device != device:
            raise ValueError(f"{op}: centers is on {centers.device} but q is on {device}")
        _checks.int_range(op, "centers", centers, 0, Lk - 1, f"key positions in [0, Lk) = [0, {Lk})")
        centers = centers.to(torch.int64).clamp(0, max(Lk - 1, 0)).contiguous()  # unchecked values: clamped
    if rel_bias is not None:
        _checks.tensor(op, "rel_bias", rel_bias, ndim=2, dtypes=_checks.FLOAT_DTYPES)
        if tuple(rel_bias.shape) != (H, W):
            raise ValueError(f"{op}: rel_bias must have shape (H, left + right + 1) = {(H, W)}, "
                             f"got {tuple(rel_bias.shape)}")
        _checks.same_dtype(op, q=q, rel_bias=rel_bias)
        _checks.same_device(op, q=q, rel_bias=rel_bias)
    if scale is None:
        scale = float(D ** -0.5) if D else 1.0  # D = 0: every score is 0 whatever the scale
    else:
        scale = _checks.number(op, "scale", scale)
    # Extents beyond the keys are clipped (same result): the kernels' work and scratch stay
    # O(Lk) per query, and left + right + 1 never overflows.
    left, right, first = _clip_window(left, right, dilation, causal, shift, Lk)
    if rel_bias is not None:
        rel_bias = rel_bias[:, first:first + left + right + 1]

    if backend is None and device.type == "cuda" and not why_not("triton", device):
        backend = "triton"  # the tiled tensor-core kernels: the fast path on CUDA (benchmarks/README.md)
    chosen = choose_backend(op, device, backend, _BACKENDS)
    if chosen == "reference":
        out, lse = reference.local_attention_ref(q, k, v, left, right, dilation=dilation, causal=causal,
                                                 shift=shift, q_lengths=q_len, kv_lengths=kv_len, centers=centers,
                                                 rel_bias=rel_bias, scale=scale)
        lse = lse.to(_lse_dtype(q.dtype))
    else:
        dtype = q.dtype
        cdt = dtype if (chosen != "cpp" or dtype in (torch.float32, torch.float64)) else torch.float32

        def prep(t: Tensor) -> Tensor:
            return t.to(cdt).contiguous()

        out, lse = call(_local_attention_fwd, prep(q), prep(k), prep(v), q_len, kv_len, centers,
                        None if rel_bias is None else prep(rel_bias), left, right, dilation, causal,
                        shift, scale, chosen)
        out = out.to(dtype)
    if layout == "blhd":
        out, lse = out.transpose(1, 2), lse.transpose(1, 2)
    return (out, lse) if return_lse else out
