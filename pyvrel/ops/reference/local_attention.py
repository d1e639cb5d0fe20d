"""References of windowed local attention: the window of each query and the attention itself."""

from __future__ import annotations

import torch

__all__ = ["local_window_ref", "local_attention_ref"]


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
    m = scores.amax(dim=-1, keepdim=True) if Lk else scores.new_full((B, H, Lq, 1), float("-inf"))
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m)).detach()
    e = torch.exp(scores - m)
    total = e.sum(dim=-1, keepdim=True)
    has_key = total > 0
    p = e / torch.where(has_key, total, torch.ones_like(total))
    out = torch.einsum("bhij,bhjd->bhid", p, v)
    lse = torch.where(has_key, m + torch.log(torch.where(has_key, total, torch.ones_like(total))),
                      torch.full_like(total, float("-inf")))
    return out, lse.squeeze(-1)
