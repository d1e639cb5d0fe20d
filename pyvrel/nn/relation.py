"""Proposal relations of HVR-Net (Han et al., ECCV 2020; the released code's ``HRNMPBBoxHead``), usable
with any RoI features.

* :class:`ProposalRelation`: the SELSA-style non-local block ``NL(X_q, X_kv)``: ``q = W_q X_q``,
  ``k = W_k X_kv``, ``A = softmax_over_keys(q k^T / sqrt(d))``, output ``W_z (A X_kv)``, with *no*
  value projection (the values are the key inputs themselves) and a 1x1 output projection ``W_z``.
* :class:`RelationStage`: ``F = fc(X)``, ``F' = ReLU(F + NL(F, F))``; stacked within a video
  (intra-video: the proposals of a window of frames) and across videos (inter-video: the
  proposals of a target, a hard positive and a hard negative video).
* :func:`video_descriptor`, :func:`mine_hard_videos`: HVR-Net's video triplet (the same-category
  video least similar to the target, the other-category video most similar to both).
* :func:`hard_proposal_triplets`, :func:`proposal_triplet_loss`: the proposal-level triplet loss on
  the inter-video stage's affinities (HVR-Net's hardest triplets, or semi-hard ones);
  :func:`proposal_attention_loss`: its soft form on the block's own softmax (every positive and
  negative weighted by its attention).

Padded proposals are masked: a masked key gets no attention, a masked query row gives output 0
(and gradient 0), never NaN. Shapes: ``B`` groups (videos), ``N`` proposals, ``D`` channels.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ProposalRelation", "RelationStage", "hard_proposal_triplets", "mine_hard_videos",
           "proposal_attention_loss", "proposal_triplet_loss", "video_descriptor"]


class ProposalRelation(nn.Module):
    """The relation block ``NL(X_q, X_kv)`` (module docstring).

    Args:
        dim: D, the width of the inputs and the output.
        embed_dim: width of the query/key projections (default D).
        init_std: every weight initialised N(0, init_std), biases 0 (the released code: 0.01, for
            1024-d features of a pretrained detector); None: PyTorch's default initialisation
            (a small model trained from scratch: query/key weights of 0.01 give near-zero
            affinities whose gradients are near zero too, and the attention stays uniform).

    ``forward(query (B, Nq, D), key (B, Nk, D) = query, *, key_mask (B, Nk) bool = None,
    query_mask (B, Nq) bool = None) -> (out (B, Nq, D), affinity (B, Nq, Nk))``: ``affinity`` are
    the scaled logits ``q k^T / sqrt(embed_dim)`` (masked keys: -inf), the triplet loss's input.
    """

    def __init__(self, dim: int, embed_dim: int | None = None, init_std: float | None = 0.01) -> None:
        super().__init__()
        embed_dim = embed_dim or dim
        self.scale = 1.0 / math.sqrt(embed_dim)
        self.q_proj, self.k_proj = nn.Linear(dim, embed_dim), nn.Linear(dim, embed_dim)
        self.out_proj = nn.Linear(dim, dim)  # the 1x1 output convolution
        if init_std is not None:
            for layer in (self.q_proj, self.k_proj, self.out_proj):
                nn.init.normal_(layer.weight, 0.0, init_std)
                nn.init.zeros_(layer.bias)

    def forward(self, query: Tensor, key: Tensor | None = None, *, key_mask: Tensor | None = None,
                query_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        key = query if key is None else key
        if query.ndim != 3 or key.ndim != 3 or query.shape[0] != key.shape[0] or query.shape[2] != key.shape[2]:
            raise ValueError(f"ProposalRelation: expected query (B, Nq, D) and key (B, Nk, D), got "
                             f"{tuple(query.shape)} and {tuple(key.shape)}")
        affinity = torch.einsum("bqe,bke->bqk", self.q_proj(query), self.k_proj(key)) * self.scale
        if key_mask is not None:
            _check_mask("key_mask", key_mask, key.shape[:2])
            affinity = affinity.masked_fill(~key_mask[:, None, :], float("-inf"))
        # a row without any key gives weights 0 (not NaN): softmax over -inf logits is NaN, so guard it
        empty = torch.isneginf(affinity).all(-1, keepdim=True)
        weights = torch.softmax(affinity.masked_fill(empty, 0.0), -1).masked_fill(empty, 0.0)
        out = self.out_proj(weights @ key)
        if query_mask is not None:
            _check_mask("query_mask", query_mask, query.shape[:2])
            out = out * query_mask[..., None]
        return out, affinity

    def cosine(self, query: Tensor, key: Tensor | None = None) -> Tensor:
        """Cosine similarities of the projected queries and keys, ``(B, Nq, Nk)`` in [-1, 1]: the
        affinities without their scale (a triplet loss on them cannot be met by growing the projections)."""
        key = query if key is None else key
        return torch.einsum("bqe,bke->bqk", F.normalize(self.q_proj(query), dim=-1), F.normalize(self.k_proj(key), dim=-1))


def _check_mask(name: str, mask: Tensor, shape: torch.Size) -> None:
    if mask.dtype != torch.bool or tuple(mask.shape) != tuple(shape):
        raise ValueError(f"ProposalRelation: {name} must be a bool tensor of shape {tuple(shape)}, got "
                         f"{mask.dtype} {tuple(mask.shape)}")


class RelationStage(nn.Module):
    """One relation stage: ``F = fc(X)`` (in_dim -> dim), ``F' = ReLU(F + NL(F, F))``
    (``embed_dim``, ``init_std``: of :class:`ProposalRelation`).

    ``forward(x (B, N, in_dim), mask (B, N) bool = None) -> (F' (B, N, dim), affinity (B, N, N))``;
    masked proposals are neither keys nor outputs (their rows are 0).
    """

    def __init__(self, in_dim: int, dim: int, embed_dim: int | None = None, init_std: float | None = 0.01) -> None:
        super().__init__()
        self.fc = nn.Linear(in_dim, dim)
        self.relation = ProposalRelation(dim, embed_dim, init_std)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        f = self.fc(x)
        related, affinity = self.relation(f, key_mask=mask, query_mask=mask)
        out = torch.relu(f + related)
        return (out if mask is None else out * mask[..., None]), affinity


def video_descriptor(features: Tensor, mask: Tensor | None = None) -> Tensor:
    """HVR-Net's video descriptor: the mean over each frame's proposals (the global average pool),
    then the max over frames. ``features (V, T, M, D)``, ``mask (V, T, M)`` bool -> ``(V, D)``; a
    frame without proposals takes no part in the max."""
    if mask is None:
        mask = torch.ones(features.shape[:3], dtype=torch.bool, device=features.device)
    count = mask.sum(-1, keepdim=True)
    frame = (features * mask[..., None]).sum(2) / count.clamp(min=1)
    frame = frame.masked_fill(count == 0, float("-inf"))
    return frame.amax(1).nan_to_num(neginf=0.0)


def mine_hard_videos(target: Tensor, positives: Tensor, negatives: Tensor) -> tuple[int, int]:
    """HVR-Net's video triplet from descriptors ``target (D,)``, ``positives (P, D)`` (videos of the
    target's category) and ``negatives (Q, D)`` (other categories). Similarities are softmaxes over
    the candidates of the scaled dot products ``x . c / sqrt(D)``. The hard positive is the positive
    least similar to the target; the hard negative the negative with the largest sum of its
    similarities to the target and to the hard positive. Returns ``(positive index, negative index)``
    (ties: the lowest index)."""
    scale = 1.0 / math.sqrt(target.shape[-1])
    pos = int(torch.softmax(positives @ target * scale, 0).argmin())
    hard = positives[pos]
    similarity = torch.softmax(negatives @ target * scale, 0) + torch.softmax(negatives @ hard * scale, 0)
    return pos, int(similarity.argmax())


def hard_proposal_triplets(affinity: Tensor, labels: Tensor, mask: Tensor | None = None,
                           mining: Literal["hardest", "semihard"] = "hardest") -> tuple[Tensor, Tensor, Tensor]:
    """Triplets of proposals: for each anchor ``i`` with ``labels[i] > 0`` (0 = background), the
    positive ``p != i`` of the same label with the *lowest* affinity ``a[i, p]`` and a negative
    (another label, background included): with ``mining="hardest"`` (HVR-Net's) the one with the
    *highest* ``a[i, n]``; with ``"semihard"`` (FaceNet's rule, in similarity space) the highest
    ``a[i, n]`` still *below* ``a[i, p]``, and an anchor whose negatives are all at or above it is
    skipped (it may be one no projection separates, e.g. two labels with identical features: its
    hardest triplet pulls the query/key projections towards a collapse, and falling back to its
    easiest negative, as FaceNet does, made the unbounded affinities and the loss blow up on the
    synthetic world). Anchors without a positive or a negative are skipped. ``affinity (N, N)``, ``labels (N,)`` int,
    ``mask (N,)`` bool (padded proposals take no part) -> ``(anchor, positive, negative)`` int64
    index tensors ``(A,)`` (ties: the lowest index)."""
    if mining not in ("hardest", "semihard"):
        raise ValueError(f"mining: expected 'hardest' or 'semihard', got {mining!r}")
    N = labels.shape[0]
    valid = torch.ones(N, dtype=torch.bool, device=labels.device) if mask is None else mask
    pair = valid[:, None] & valid[None, :]
    same = (labels[:, None] == labels[None, :]) & pair & ~torch.eye(N, dtype=torch.bool, device=labels.device)
    other = (labels[:, None] != labels[None, :]) & pair
    a = affinity.detach()
    low = a.masked_fill(~same, float("inf")).min(1)
    positive = low.indices
    if mining == "semihard":
        other = other & (a < low.values[:, None])
    negative = a.masked_fill(~other, float("-inf")).argmax(1)
    anchor = torch.nonzero((labels > 0) & valid & same.any(1) & other.any(1)).flatten()
    return anchor, positive[anchor], negative[anchor]


def proposal_triplet_loss(affinity: Tensor, labels: Tensor, mask: Tensor | None = None,
                          margin: float = 10.0, mining: Literal["hardest", "semihard"] = "hardest") -> Tensor:
    """HVR-Net's proposal-level triplet loss, in similarity space:
    ``mean over anchors of max(0, a[i, n] - a[i, p] + margin)`` with the triplets of
    :func:`hard_proposal_triplets` (``mining``; 0 when there is none). Similarity space, because the affinity
    ``a = q k^T / sqrt(d)`` is exactly the logit the relation block's softmax weighs: the loss
    shapes which proposals attend to which, and the mining and the loss use one quantity (a
    distance form ``|q_i - k_p| - |q_i - k_n|`` would mine on one scale and penalise on another,
    and its margin would need its own units). Gradients flow through ``a[i, p]`` and ``a[i, n]``."""
    anchor, positive, negative = hard_proposal_triplets(affinity, labels, mask, mining)
    if not len(anchor):
        return affinity.sum() * 0.0
    return F.relu(affinity[anchor, negative] - affinity[anchor, positive] + margin).mean()


def proposal_attention_loss(affinity: Tensor, labels: Tensor, groups: Tensor, mask: Tensor | None = None) -> Tensor:
    """The proposal triplet loss with the hard examples weighted by the relation block's own
    attention (a neighbourhood-component / supervised-contrastive form): for each anchor ``i`` with
    ``labels[i] > 0``, its positives ``P`` are the proposals of the same label in the *other* groups
    (videos), its negatives ``Q`` every proposal of another label (background included);
    proposals of its label in its own group take no part. The loss is
    ``mean over anchors of -log(sum_P exp a[i, p] / sum_(P + Q) exp a[i, j])``
    ``= softplus(logsumexp_Q a[i, :] - logsumexp_P a[i, :])``: minus the log of the attention the
    block's softmax gives the other videos' proposals of the anchor's label. A soft-margin triplet
    whose log-sum-exps are soft maxima (the gradient weighs each negative by its attention, the
    hardest most), without HVR-Net's flat minimum: the hardest triplet's ``max(0, a_in - a_ip + m)``
    is ``m`` at collapsed (constant) affinities and larger at any spread when some anchor cannot be
    separated, whereas here a constant row gives ``log(1 + |Q| / |P|)``, which raising the
    positives on average lowers. ``affinity (N, N)``, ``labels (N,)`` int, ``groups (N,)`` int,
    ``mask (N,)`` bool -> a scalar (0 without anchors); anchors without a positive or a negative
    are skipped."""
    if groups.shape != labels.shape:
        raise ValueError(f"groups: expected the shape of labels {tuple(labels.shape)}, got {tuple(groups.shape)}")
    valid = torch.ones_like(labels, dtype=torch.bool) if mask is None else mask
    pair = valid[:, None] & valid[None, :]
    same = labels[:, None] == labels[None, :]
    positive = same & (groups[:, None] != groups[None, :]) & pair
    negative = ~same & pair
    anchor = (labels > 0) & valid & positive.any(1) & negative.any(1)
    if not anchor.any():
        return affinity.sum() * 0.0
    a, positive, negative = affinity[anchor], positive[anchor], negative[anchor]
    inf = float("-inf")
    return (a.masked_fill(~(positive | negative), inf).logsumexp(1) - a.masked_fill(~positive, inf).logsumexp(1)).mean()
