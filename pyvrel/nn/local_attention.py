"""Local-attention layers: a generic multi-head module and the ActionFormer/VrdONE blocks.

Masks of the ``(B, C, T)`` blocks are ``(B, 1, T)`` booleans marking a valid *prefix* of each
sequence (as ActionFormer/VrdONE build them); their sums are the lengths given to
:func:`pyvrel.ops.local_attention`.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pyvrel.ops.local_attention import local_attention, window_extents

__all__ = [
    "AffineDropPath",
    "ChannelLayerNorm",
    "LocalMaskedMHCA",
    "LocalMultiheadAttention",
    "MaskedConv1D",
    "TransformerBlock",
    "drop_path",
    "mask_lengths",
]


class LocalMultiheadAttention(nn.Module):
    """Multi-head windowed attention with input/output projections, self or cross.

    Args:
        embed_dim: model width E (query input and output); ``kdim``/``vdim`` default to E.
        num_heads: H; E must be divisible by H (head dim E // H).
        window, dilation, causal, boundary: as in :func:`pyvrel.ops.local_attention`.
        rel_bias: learn a per-head, per-slot bias ``(H, W)`` (initialised to 0).
        bias: biases of the linear projections.
        backend: forwarded to the op (``None``: automatic).

    ``forward(query (B, Lq, E), key (B, Lk, kdim) = query, value (B, Lk, vdim) = key, *,
    q_lengths=None, kv_lengths=None, centers=None) -> (B, Lq, E)``; padded query rows are 0 before
    the output projection.
    """

    def __init__(self, embed_dim: int, num_heads: int, window: int | tuple[int, int], *, kdim: int | None = None,
                 vdim: int | None = None, dilation: int = 1, causal: bool = False,
                 boundary: Literal["truncate", "shift"] = "truncate", rel_bias: bool = False, bias: bool = True,
                 backend: str | None = None) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"LocalMultiheadAttention: embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.window, self.dilation, self.causal, self.boundary, self.backend = window, dilation, causal, boundary, backend
        left, right = window_extents(window, causal)
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.k_proj = nn.Linear(kdim or embed_dim, embed_dim, bias=bias)
        self.v_proj = nn.Linear(vdim or embed_dim, embed_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.rel_bias = nn.Parameter(torch.zeros(num_heads, left + right + 1)) if rel_bias else None

    def forward(self, query: Tensor, key: Tensor | None = None, value: Tensor | None = None, *,
                q_lengths: Tensor | None = None, kv_lengths: Tensor | None = None,
                centers: Tensor | None = None) -> Tensor:
        key = query if key is None else key
        value = key if value is None else value
        B, Lq, _ = query.shape
        H, hd = self.num_heads, self.embed_dim // self.num_heads
        q = self.q_proj(query).view(B, Lq, H, hd)
        k = self.k_proj(key).view(B, key.shape[1], H, hd)
        v = self.v_proj(value).view(B, value.shape[1], H, hd)
        out = local_attention(q, k, v, self.window, dilation=self.dilation, causal=self.causal,
                              boundary=self.boundary, q_lengths=q_lengths, kv_lengths=kv_lengths, centers=centers,
                              rel_bias=self.rel_bias, layout="blhd", backend=self.backend)
        return self.out_proj(out.reshape(B, Lq, self.embed_dim))


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channels of a ``(B, C, T)`` tensor (eps 1e-5, affine), as ActionFormer's."""

    def __init__(self, num_channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(1, num_channels, 1))
        self.bias = nn.Parameter(torch.zeros(1, num_channels, 1))

    def no_weight_decay(self) -> set[str]:
        """A normalisation layer: no weight decay (:func:`pyvrel.engine.param_groups`)."""
        return {"weight", "bias"}

    def forward(self, x: Tensor) -> Tensor:
        mu = x.mean(dim=1, keepdim=True)
        res = x - mu
        sigma = (res * res).mean(dim=1, keepdim=True)
        return res / torch.sqrt(sigma + self.eps) * self.weight + self.bias


class MaskedConv1D(nn.Module):
    """Conv1d on ``(B, C, T)`` whose output is multiplied by the (nearest-downsampled) mask.

    ``forward(x (B, C, T), mask (B, 1, T) bool) -> (out (B, C', T // stride), mask (B, 1, T // stride))``;
    T must be divisible by the stride.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 groups: int = 1, bias: bool = True) -> None:
        super().__init__()
        if kernel_size % 2 != 1 or padding != kernel_size // 2:
            raise ValueError("MaskedConv1D: kernel_size must be odd with padding kernel_size // 2")
        self.stride = stride
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=bias)
        if bias:
            nn.init.zeros_(self.conv.bias)

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        T = x.shape[-1]
        if T % self.stride:
            raise ValueError(f"MaskedConv1D: length {T} is not divisible by the stride {self.stride}")
        out_mask = mask if self.stride == 1 else F.interpolate(mask.to(x.dtype), size=T // self.stride,
                                                               mode="nearest").bool()
        return self.conv(x) * out_mask.to(x.dtype), out_mask


def mask_lengths(mask: Tensor) -> Tensor:
    """Lengths (B,) int64 of the valid prefixes marked by a ``(B, 1, T)`` bool mask."""
    return mask.reshape(mask.shape[0], -1).sum(dim=1)


class LocalMaskedMHCA(nn.Module):
    """ActionFormer/VrdONE ``LocalMaskedMHCA``: conv-projected multi-head local self-attention.

    q, k and v each go through a depthwise :class:`MaskedConv1D` (kernel 3 at stride 1, else
    stride + 1; stride ``n_qx_stride`` for q, ``n_kv_stride`` for k/v) and a
    :class:`ChannelLayerNorm`, then a 1×1 conv; attention uses a window of ``window_size`` keys
    (truncated at the valid ends; for odd sizes exactly ActionFormer's ``±window_size // 2`` band),
    then a 1×1 output projection; the output is multiplied by the query mask.

    Differences from ActionFormer: lengths come from the masks (valid prefixes), masked keys are
    dropped (ActionFormer adds -1e4), even ``window_size`` means ``window_size`` keys (ActionFormer
    silently uses ``window_size + 1``), any T (no ``T % window_size`` rule), no attention dropout,
    and the query conv uses ``n_qx_stride`` (ActionFormer uses ``n_kv_stride``; they are equal in
    every ActionFormer/VrdONE block).

    ``forward(x (B, C, T), mask (B, 1, T) bool) -> (out (B, C, T // n_qx_stride), qx_mask)``.
    """

    def __init__(self, n_embd: int, n_head: int, window_size: int, n_qx_stride: int = 1, n_kv_stride: int = 1,
                 proj_pdrop: float = 0.0, use_rel_pe: bool = False, backend: str | None = None) -> None:
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"LocalMaskedMHCA: n_embd {n_embd} is not divisible by n_head {n_head}")
        if n_qx_stride not in (1, 2) or n_kv_stride not in (1, 2):
            raise ValueError("LocalMaskedMHCA: strides must be 1 or 2")
        self.n_embd, self.n_head, self.window_size, self.backend = n_embd, n_head, window_size, backend

        def dwconv(stride: int) -> MaskedConv1D:
            ks = stride + 1 if stride > 1 else 3
            return MaskedConv1D(n_embd, n_embd, ks, stride=stride, padding=ks // 2, groups=n_embd, bias=False)

        self.query_conv, self.key_conv, self.value_conv = dwconv(n_qx_stride), dwconv(n_kv_stride), dwconv(n_kv_stride)
        self.query_norm, self.key_norm, self.value_norm = (ChannelLayerNorm(n_embd) for _ in range(3))
        self.query, self.key, self.value, self.proj = (nn.Conv1d(n_embd, n_embd, 1) for _ in range(4))
        for conv in (self.query, self.key, self.value, self.proj):
            nn.init.zeros_(conv.bias)
        self.proj_drop = nn.Dropout(proj_pdrop)
        self.rel_pe = None
        if use_rel_pe:
            left, right = window_extents(window_size)
            self.rel_pe = nn.Parameter(torch.empty(n_head, left + right + 1))
            nn.init.trunc_normal_(self.rel_pe, std=(2.0 / n_embd) ** 0.5)

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        B, C, _ = x.shape
        q, qx_mask = self.query_conv(x, mask)
        k, kv_mask = self.key_conv(x, mask)
        v, _ = self.value_conv(x, mask)
        q = self.query(self.query_norm(q))
        k = self.key(self.key_norm(k))
        v = self.value(self.value_norm(v))
        H, hd = self.n_head, C // self.n_head
        Tq = q.shape[-1]
        # (B, C, T) -> (B, H, T, hd)
        q, k, v = (t.view(B, H, hd, t.shape[-1]).transpose(2, 3) for t in (q, k, v))
        out = local_attention(q, k, v, self.window_size, q_lengths=mask_lengths(qx_mask),
                              kv_lengths=mask_lengths(kv_mask), rel_bias=self.rel_pe, backend=self.backend)
        out = out.transpose(2, 3).reshape(B, C, Tq)
        return self.proj_drop(self.proj(out)) * qx_mask.to(out.dtype), qx_mask


def drop_path(x: Tensor, p: float, training: bool) -> Tensor:
    """Stochastic depth: zero whole samples with probability ``p`` and rescale the rest by 1/(1-p)."""
    if p == 0.0 or not training:
        return x
    keep = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(1.0 - p)
    return x * keep / (1.0 - p)


class AffineDropPath(nn.Module):
    """``drop_path(scale * x)`` with a per-channel scale ``(1, C, 1)`` initialised to ``init_scale``."""

    def __init__(self, num_channels: int, drop_prob: float = 0.0, init_scale: float = 1e-4) -> None:
        super().__init__()
        self.scale = nn.Parameter(init_scale * torch.ones(1, num_channels, 1))
        self.drop_prob = drop_prob

    def no_weight_decay(self) -> set[str]:
        """A scale: no weight decay (:func:`pyvrel.engine.param_groups`)."""
        return {"scale"}

    def forward(self, x: Tensor) -> Tensor:
        return drop_path(self.scale * x, self.drop_prob, self.training)


class TransformerBlock(nn.Module):
    """Pre-LN transformer block of ActionFormer/VrdONE on ``(B, C, T)`` with a ``(B, 1, T)`` mask.

    ``out, m = attn(LN1(x), mask); out = pool_skip(x) * m + DropPath(out);
    out = out + DropPath(MLP(LN2(out)) * m)`` where ``attn`` is :class:`LocalMaskedMHCA` with
    strides ``n_ds_strides``, ``pool_skip`` is ``MaxPool1d(s + 1, s, (s + 1) // 2)`` when the
    query stride ``s > 1`` (else identity), MLP is ``Conv1d(C, 4C, 1)-GELU-Conv1d(4C, C, 1)`` and
    DropPath is :class:`AffineDropPath` when ``path_pdrop > 0`` (else identity).

    ``forward(x (B, C, T), mask (B, 1, T) bool) -> (out (B, C, T // s), mask (B, 1, T // s))``.
    """

    def __init__(self, n_embd: int, n_head: int, n_ds_strides: tuple[int, int] = (1, 1), *, mha_win_size: int = 9,
                 n_hidden: int | None = None, proj_pdrop: float = 0.0, path_pdrop: float = 0.0,
                 use_rel_pe: bool = False, backend: str | None = None) -> None:
        super().__init__()
        self.ln1, self.ln2 = ChannelLayerNorm(n_embd), ChannelLayerNorm(n_embd)
        self.attn = LocalMaskedMHCA(n_embd, n_head, mha_win_size, n_qx_stride=n_ds_strides[0],
                                    n_kv_stride=n_ds_strides[1], proj_pdrop=proj_pdrop, use_rel_pe=use_rel_pe,
                                    backend=backend)
        s = n_ds_strides[0]
        self.pool_skip: nn.Module = nn.MaxPool1d(s + 1, stride=s, padding=(s + 1) // 2) if s > 1 else nn.Identity()
        hidden = n_hidden or 4 * n_embd
        self.mlp = nn.Sequential(nn.Conv1d(n_embd, hidden, 1), nn.GELU(), nn.Dropout(proj_pdrop),
                                 nn.Conv1d(hidden, n_embd, 1), nn.Dropout(proj_pdrop))
        for layer in (self.mlp[0], self.mlp[3]):
            nn.init.zeros_(layer.bias)
        self.drop_path_attn: nn.Module = AffineDropPath(n_embd, path_pdrop) if path_pdrop > 0 else nn.Identity()
        self.drop_path_mlp: nn.Module = AffineDropPath(n_embd, path_pdrop) if path_pdrop > 0 else nn.Identity()

    def forward(self, x: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        out, out_mask = self.attn(self.ln1(x), mask)
        m = out_mask.to(out.dtype)
        out = self.pool_skip(x) * m + self.drop_path_attn(out)
        out = out + self.drop_path_mlp(self.mlp(self.ln2(out)) * m)
        return out, out_mask
