"""vRGV networks (Xiao et al., ECCV 2020, §3, as its public code implements it).

* :class:`VRGV` (stage 2, the code's ``relation2relation.AttHierarchicalGround``): region embedding,
  the spatial attention unit :class:`SAU` for subject and object, attention shifting (messages
  computed from the *attention maps*, one ``Linear(num_proposals -> embed_dim)`` each way), then
  :class:`TemporalHierarchy` with relation-conditioned clip attention.
* :class:`BasicGrounder` (stage 1, the code's ``basic.AttHierarchicalGround``): regions summed per
  frame, the same hierarchy without clip attention.
* :class:`CaptionDecoder`: reconstructs the relation from the video embedding with teacher forcing.
* :class:`VRGVTrainModel`: grounder + decoder + the reconstruction loss, as the engine trains it.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pyvrel.models.vrgv.config import VRGVConfig
from pyvrel.models.vrgv.soft_tubes import soft_tubes

__all__ = ["BasicGrounder", "CaptionDecoder", "GroundingOutput", "SAU", "TemporalHierarchy", "VRGV",
           "VRGVTrainModel", "box_term", "caption_loss"]


def _embed(i: int, o: int, p: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(i, o), nn.ReLU(), nn.Dropout(p))


def box_term(boxes: Tensor, width: float, height: float) -> Tensor:
    """``(..., 5)`` vRGV box features of pixel boxes ``(..., 4)``: normalised corners and the area
    fraction with the code's +1 (``(x2-x1+1)(y2-y1+1) / (W H)``)."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    area = (x2 - x1 + 1) * (y2 - y1 + 1) / (width * height)
    return torch.stack([x1 / width, y1 / height, x2 / width, y2 / height, area], -1)


class GroundingOutput(NamedTuple):
    """video (B, H) embedding; state: the clip LSTM's final ``(h, c)``, each (1, B, H);
    alpha_s, alpha_o (B, T, M) spatial attention; beta_frame (B, T); beta_clip (B, C) (None in stage 1)."""

    video: Tensor
    state: tuple[Tensor, Tensor]
    alpha_s: Tensor | None
    alpha_o: Tensor | None
    beta_frame: Tensor
    beta_clip: Tensor | None


class _Score(nn.Module):
    """Attention logits of items ``x (B, ..., L, D)`` given a context ``(B, D)``: ``"additive"`` (the
    code's ``w2ᵀ tanh(W1 [x; ctx])``, whose dependence on the context is second order: the context's
    linear term is the same for every item and cancels in the softmax) or ``"bilinear"``
    (``(W_x x)·(W_c ctx) / √D``, first order in the context)."""

    def __init__(self, dim: int, kind: str = "additive") -> None:
        super().__init__()
        self.kind = kind
        if kind == "additive":
            self.proj = nn.Linear(2 * dim, dim)
            self.score = nn.Linear(dim, 1, bias=False)
        elif kind == "bilinear":
            self.key = nn.Linear(dim, dim)
            self.query = nn.Linear(dim, dim)
        else:
            raise ValueError(f"attention: expected 'additive' or 'bilinear', got {kind!r}")

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        """x (B, ..., L, D), context (B, D) -> logits (B, ..., L)."""
        ctx = context.view(context.shape[0], *([1] * (x.dim() - 2)), context.shape[-1])
        if self.kind == "bilinear":
            return (self.key(x) * self.query(ctx)).sum(-1) / x.shape[-1] ** 0.5
        return self.score(torch.tanh(self.proj(torch.cat([x, ctx.expand_as(x)], -1)))).squeeze(-1)


class SAU(_Score):
    """Spatial attention unit (paper §3.2): ``α = softmax_M(score(v, q))``, ``f = Σ_m α_m v_m``
    (``score``: :class:`_Score`, the code's additive one by default)."""

    def forward(self, regions: Tensor, query: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        """regions (B, T, M, E), query (B, E) -> attended (B, T, E), α (B, T, M)."""
        alpha = super().forward(regions, query).softmax(-1)
        return torch.einsum("btm,btme->bte", alpha, regions), alpha


class TemporalHierarchy(nn.Module):
    """Frame LSTM over all T frames (not reset per clip, as the code), clip states at the clip ends
    ``round(linspace(L-1, T-1, C))``, optional clip attention β2 given a relation context (the weighted
    *sequence* feeds the clip LSTM, as the code), then frame attention β1 with the clip LSTM's final
    state as context: ``video = Σ_t β1_t H_t`` (``cfg.frame_values="inputs"``: ``Σ_t β1_t x_t``, the frames'
    own inputs, scored by H_t)."""

    def __init__(self, cfg: VRGVConfig, clip_attention: bool) -> None:
        super().__init__()
        H = cfg.hidden_dim
        self.frame_lstm = nn.LSTM(H, H, batch_first=True)
        self.clip_lstm = nn.LSTM(H, H, batch_first=True)
        self.clip_attention = _Score(H, cfg.attention) if clip_attention else None
        self.frame_attention = _Score(H, cfg.attention)
        self.pool_inputs = cfg.frame_values == "inputs"
        ends = torch.linspace(cfg.clip_len - 1, cfg.num_frames - 1, cfg.num_clips).round().long()
        self.register_buffer("clip_ends", ends, persistent=False)

    def forward(self, x: Tensor, relation: Tensor | None = None
                ) -> tuple[Tensor, tuple[Tensor, Tensor], Tensor, Tensor | None]:
        """x (B, T, H), relation (B, H) -> video (B, H), (h, c), β1 (B, T), β2 (B, C) or None."""
        frames, _ = self.frame_lstm(x)
        clips = frames[:, self.clip_ends]
        beta_clip = None
        if self.clip_attention is not None:
            beta_clip = self.clip_attention(clips, relation).softmax(-1)
            clips = beta_clip[..., None] * clips
        _, (h, c) = self.clip_lstm(clips)
        beta_frame = self.frame_attention(frames, h[-1]).softmax(-1)
        video = torch.einsum("bt,bth->bh", beta_frame, x if self.pool_inputs else frames)
        return video, (h, c), beta_frame, beta_clip


class VRGV(nn.Module):
    """The stage-2 grounder. ``word_table (num_objects, word_dim)`` is a buffer (saved with the
    weights), indexed by the query's subject and object category ids."""

    def __init__(self, cfg: VRGVConfig, word_table: Tensor) -> None:
        super().__init__()
        E, H, p = cfg.embed_dim, cfg.hidden_dim, cfg.dropout
        if word_table.dim() != 2 or word_table.shape[1] != cfg.word_dim:
            raise ValueError(f"word_table: expected (num_objects, {cfg.word_dim}), got {tuple(word_table.shape)}")
        self.cfg = cfg
        self.register_buffer("word_table", word_table.float().clone())
        self.embed_word = _embed(cfg.word_dim, E, p)
        self.embed_visual = _embed(cfg.feature_dim, E, p)
        self.embed_location = _embed(5, E, p)
        self.sau = SAU(E, cfg.attention)
        self.msg_sub2obj = _embed(cfg.num_proposals, E, p)
        self.msg_obj2sub = _embed(cfg.num_proposals, E, p)
        self.transform_visual = _embed(2 * E, H, p)
        self.transform_rel = _embed(2 * E, H, p)
        self.hierarchy = TemporalHierarchy(cfg, clip_attention=True)

    def forward(self, regions: Tensor, subject: Tensor, obj: Tensor) -> GroundingOutput:
        """regions (B, T, M, feature_dim + 5) (appearance, then :func:`box_term`), subject/obj (B,) category ids."""
        F_ = self.cfg.feature_dim
        v = self.embed_visual(regions[..., :F_] * self.cfg.feature_scale) + self.embed_location(regions[..., F_:])
        w_s, w_o = self.embed_word(self.word_table[subject]), self.embed_word(self.word_table[obj])
        f_s, alpha_s = self.sau(v, w_s)
        f_o, alpha_o = self.sau(v, w_o)
        if self.cfg.tube_training == "soft_viterbi":  # pool with the linking's marginals (soft_tubes.py)
            lam = self.cfg.pairwise_weight if self.cfg.tube_weight is None else self.cfg.tube_weight
            tubes = soft_tubes(torch.stack([alpha_s, alpha_o]), regions[..., F_:F_ + 4], lam)
            f_s, f_o = torch.einsum("pbtm,btme->pbte", tubes, v)
        x = torch.cat([f_s + self.msg_obj2sub(alpha_o), f_o + self.msg_sub2obj(alpha_s)], -1)
        video, state, beta_frame, beta_clip = self.hierarchy(self.transform_visual(x),
                                                             self.transform_rel(torch.cat([w_s, w_o], -1)))
        return GroundingOutput(video, state, alpha_s, alpha_o, beta_frame, beta_clip)


class BasicGrounder(nn.Module):
    """The stage-1 model (§2.3): ``x_t = Σ_m ReLU(W r_tm)``, then the hierarchy without clip attention."""

    def __init__(self, cfg: VRGVConfig) -> None:
        super().__init__()
        self.embed = _embed(cfg.visual_dim, cfg.hidden_dim, cfg.dropout)
        self.hierarchy = TemporalHierarchy(cfg, clip_attention=False)
        scale = torch.ones(cfg.visual_dim)
        scale[: cfg.feature_dim] = cfg.feature_scale
        self.register_buffer("scale", scale, persistent=False)

    def forward(self, regions: Tensor, subject: Tensor, obj: Tensor) -> GroundingOutput:
        video, state, beta_frame, _ = self.hierarchy(self.embed(regions * self.scale).sum(2))
        return GroundingOutput(video, state, None, None, beta_frame, None)


class CaptionDecoder(nn.Module):
    """One-layer LSTM decoder (the code's ``DecoderRNN``), initialised with the clip LSTM's state;
    its inputs are ``[video, <start>, w1, ...]`` and its targets ``[<start>, w1, ..., <end>]``."""

    def __init__(self, hidden_dim: int, vocab_size: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, hidden_dim)
        self.lstm = nn.LSTM(hidden_dim, hidden_dim, batch_first=True)
        self.out = nn.Linear(hidden_dim, vocab_size)

    def forward(self, video: Tensor, state: tuple[Tensor, Tensor], tokens: Tensor) -> Tensor:
        """Teacher forcing: video (B, H), tokens (B, L) targets -> logits (B, L, V); logit t predicts tokens[:, t]."""
        inputs = torch.cat([video[:, None], self.embed(tokens[:, :-1])], 1)
        h, _ = self.lstm(inputs, state)
        return self.out(h)

    @torch.no_grad()
    def greedy(self, video: Tensor, state: tuple[Tensor, Tensor], max_len: int) -> Tensor:
        """Greedy decoding (the code's ``sample``): ids (B, max_len), first output is ``<start>``."""
        x, ids = video[:, None], []
        for _ in range(max_len):
            h, state = self.lstm(x, state)
            ids.append(self.out(h[:, -1]).argmax(-1))
            x = self.embed(ids[-1])[:, None]
        return torch.stack(ids, 1)


def caption_loss(logits: Tensor, tokens: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
    """Cross-entropy over the first ``lengths[b]`` positions of each caption (the code's packed targets;
    padding never counts) -> (mean loss over tokens, token accuracy)."""
    valid = torch.arange(tokens.shape[1], device=tokens.device)[None, :] < lengths[:, None]
    loss = F.cross_entropy(logits[valid], tokens[valid])
    acc = (logits[valid].argmax(-1) == tokens[valid]).float().mean()
    return loss, acc


class VRGVTrainModel(nn.Module):
    """Grounder (stage 1: :class:`BasicGrounder`, stage 2: :class:`VRGV`) and :class:`CaptionDecoder`.

    ``forward(batch)`` with ``batch = {"regions" (B, T, M, D+5), "subject", "object" (B,), "tokens" (B, L),
    "lengths" (B,)}`` returns ``{"loss", "token_acc"}``."""

    def __init__(self, cfg: VRGVConfig, vocab_size: int, word_table: Tensor, stage: int = 2) -> None:
        super().__init__()
        if stage not in (1, 2):
            raise ValueError(f"stage: expected 1 or 2, got {stage!r}")
        self.cfg, self.stage = cfg, stage
        self.grounder = VRGV(cfg, word_table) if stage == 2 else BasicGrounder(cfg)
        self.decoder = CaptionDecoder(cfg.hidden_dim, vocab_size)

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        out = self.grounder(batch["regions"], batch["subject"], batch["object"])
        state = out.state if self.cfg.decoder_state == "clip" else tuple(torch.zeros_like(s) for s in out.state)
        logits = self.decoder(out.video, state, batch["tokens"])
        loss, acc = caption_loss(logits, batch["tokens"], batch["lengths"])
        return {"loss": loss, "token_acc": acc}
