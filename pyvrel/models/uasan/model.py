"""UASAN's network (paper eq. 1-12), small enough for a CPU, and its "Model A" ablation.

Shapes: ``N`` trajectories, ``P`` pairs, ``L`` concept tokens, ``d`` hidden width, ``Dv`` the
visual ("ViT") feature width, ``Dt`` the text encoder's width, ``C`` classes.

* :class:`QueryEncoder`: ``L`` learnable query tokens, self-attention among them, cross-attention to
  the input vector, a feed-forward block: ``(N, Dv) -> (N, L, d)``. The bridge encoder's visual side
  (eq. 1; a Q-Former in the paper, here trained from scratch by ``L_traj``) and the visual refiner
  (its learnable visual concept tokens, ``V_M = Attn(Q', Q', Q')``, ``F_v = Attn(V_M, F_M, F_M)``).
* :class:`PromptEncoder`: the bridge encoder's text side: ``[w_1..w_Lrel, c]`` (learnable context
  tokens, eq. 9, then the name's text embedding) through a transformer layer; the last token,
  projected, is the class embedding (eq. 10). Object names go in without context (eq. 2). Any name
  (an unseen one too) gets an embedding from its text vector.
* :class:`SACEncoder` (eq. 5-6): tokens ``[F_S; F_O; U; F_mot]`` (``3L + 2``), the learnable relation
  token ``f_r`` (plus learned positions) added to queries and keys, layers of attention and MLP.
* :class:`URADecoder` (eq. 7-8): ``t_r = MHAttn(f_r, F_enc, F_enc)``, ``F_dec = Norm(t_r + phi(t_r))``.
* :class:`UASAN`: eq. 3 (cosine / temperature, mean over the ``L`` tokens as the code), eq. 4
  (:func:`distillation_loss`), eq. 11 (``R = Norm(phi_pre(F_dec + F_enc[U] + U + F_mot))``),
  the pair branch (``normalize(pair_proj([F_S, F_O]))`` plus the relative-position embedding, against
  its own prompt embeddings ``c^so``) and eq. 12's total ``L_traj + L_dis + L_union + L_fg``.
  ``variant="A"`` is Table 4's Model A: the pair branch on the bridge encoder's features only (no
  refiner, union, SACEncoder or URADecoder), ``L = L_traj + L_fg``.

Relation losses are the code's: sigmoid focal loss (gamma 2, no alpha) over the base predicates,
the mean over positive pairs' elements plus the mean over background pairs' elements.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pyvrel.models.vrdone.loss import sigmoid_focal

__all__ = ["PromptEncoder", "QueryEncoder", "SACEncoder", "UASAN", "UASANConfig", "URADecoder", "distillation_loss",
           "focal_relation_loss"]


@dataclass
class UASANConfig:
    """Network sizes. Paper: ``d=512, L=32, L_mot=2, L_rel=10`` (VidVRD); defaults here are small."""

    visual_dim: int = 16      # Dv, the "ViT" feature width (the world's ``open_vocab``)
    text_dim: int = 64        # Dt, the text encoder's width
    hidden: int = 64          # d
    tokens: int = 4           # L, concept tokens per visual feature
    context: int = 4          # L_rel, learnable prompt context tokens
    heads: int = 4
    layers: int = 1           # SACEncoder layers (the code: 3)
    dropout: float = 0.0
    motion_dim: int = 15      # relative position (12) + GIoU (3)
    temperature: float = 0.05
    variant: str = "full"     # "full" or "A" (Table 4)

    def __post_init__(self) -> None:
        from pyvrel.engine.config import ConfigError

        if self.variant not in ("full", "A"):
            raise ConfigError("variant", f"expected 'full' or 'A' (Table 4's pair-only Model A), got {self.variant!r}")
        for key in ("visual_dim", "text_dim", "hidden", "tokens", "context", "heads", "layers"):
            if getattr(self, key) < 1:
                raise ConfigError(key, f"must be >= 1, got {getattr(self, key)}")
        if self.hidden % self.heads:
            raise ConfigError("heads", f"hidden={self.hidden} must be a multiple of heads={self.heads}")


def _mlp(i: int, h: int, o: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(i, h), nn.ReLU(), nn.Linear(h, o))


class QueryEncoder(nn.Module):
    """``(N, Dv) -> (N, L, d)``: learnable queries, self-attention, cross-attention to the input, FFN."""

    def __init__(self, cfg: UASANConfig) -> None:
        super().__init__()
        d = cfg.hidden
        self.queries = nn.Parameter(torch.randn(cfg.tokens, d) * 0.02)
        self.inp = nn.Linear(cfg.visual_dim, d)
        self.self_attn = nn.MultiheadAttention(d, cfg.heads, dropout=cfg.dropout, batch_first=True)
        self.cross = nn.MultiheadAttention(d, cfg.heads, dropout=cfg.dropout, batch_first=True)
        self.ffn = _mlp(d, 2 * d, d)
        self.n1, self.n2, self.n3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)

    def forward(self, x: Tensor) -> Tensor:
        q = self.queries.expand(len(x), -1, -1)
        q = self.n1(q + self.self_attn(q, q, q, need_weights=False)[0])
        kv = self.inp(x)[:, None]
        q = self.n2(q + self.cross(q, kv, kv, need_weights=False)[0])
        return self.n3(q + self.ffn(q))


class PromptEncoder(nn.Module):
    """Text side of the bridge encoder: ``(C, Dt)`` name embeddings -> ``(C, d)`` unit class
    embeddings, with ``groups`` sets of ``context`` learnable tokens (0 groups: no context, eq. 2)."""

    def __init__(self, cfg: UASANConfig, groups: int) -> None:
        super().__init__()
        d = cfg.hidden
        self.inp = nn.Linear(cfg.text_dim, d)
        self.context = nn.Parameter(torch.randn(groups, cfg.context, d) * 0.02)
        self.layer = nn.TransformerEncoderLayer(d, cfg.heads, 2 * d, cfg.dropout, batch_first=True)
        self.out = nn.Linear(d, d)

    def forward(self, names: Tensor, group: int | None = None) -> Tensor:
        tokens = self.inp(names)[:, None]
        if group is not None:
            tokens = torch.cat([self.context[group].expand(len(names), -1, -1), tokens], 1)
        return F.normalize(self.out(self.layer(tokens)[:, -1]), dim=-1)


class _Layer(nn.Module):
    """Post-norm attention + MLP block whose queries and keys get ``pos`` added (eq. 6)."""

    def __init__(self, cfg: UASANConfig) -> None:
        super().__init__()
        d = cfg.hidden
        self.attn = nn.MultiheadAttention(d, cfg.heads, dropout=cfg.dropout, batch_first=True)
        self.mlp = _mlp(d, 2 * d, d)
        self.n1, self.n2 = nn.LayerNorm(d), nn.LayerNorm(d)

    def forward(self, x: Tensor, pos: Tensor) -> Tensor:
        x = self.n1(x + self.attn(x + pos, x + pos, x, need_weights=False)[0])
        return self.n2(x + self.mlp(x))


class SACEncoder(nn.Module):
    """Eq. 5-6: ``(P, 3L + 2, d)`` sentence tokens -> encoded tokens, relation token ``f_r`` and
    learned positions added to queries and keys."""

    def __init__(self, cfg: UASANConfig) -> None:
        super().__init__()
        self.pos = nn.Parameter(torch.randn(3 * cfg.tokens + 2, cfg.hidden) * 0.02)
        self.layers = nn.ModuleList(_Layer(cfg) for _ in range(cfg.layers))

    def forward(self, sentence: Tensor, relation_token: Tensor) -> Tensor:
        pos = self.pos + relation_token
        for layer in self.layers:
            sentence = layer(sentence, pos)
        return sentence


class URADecoder(nn.Module):
    """Eq. 7-8: the relation token attends to the encoded tokens: ``(P, T, d) -> (P, 1, d)``."""

    def __init__(self, cfg: UASANConfig) -> None:
        super().__init__()
        d = cfg.hidden
        self.attn = nn.MultiheadAttention(d, cfg.heads, dropout=cfg.dropout, batch_first=True)
        self.mlp = _mlp(d, 2 * d, d)
        self.norm = nn.LayerNorm(d)

    def forward(self, relation_token: Tensor, encoded: Tensor, pos: Tensor) -> Tensor:
        q = relation_token.expand(len(encoded), 1, -1)
        t = self.attn(q, encoded + pos, encoded, need_weights=False)[0]
        return self.norm(t + self.mlp(t))


def focal_relation_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """The code's relation loss: sigmoid focal (gamma 2, no alpha) averaged over the elements of
    positive pairs (a label set) plus over those of background pairs (no label); ``(P, C)`` each."""
    loss = sigmoid_focal(logits, targets, alpha=-1.0)
    pos = targets.sum(1) > 0
    total = logits.new_zeros(())
    for part in (pos, ~pos):
        if part.any():
            total = total + loss[part].mean()
    return total


def distillation_loss(refined: Tensor, teacher: Tensor) -> Tensor:
    """Eq. 4, ``||F_v - F'_M||`` with the teacher fixed: the mean over tokens of the L2 distance of
    ``(M, L, d)`` token features, divided by ``sqrt(d)`` (a per-coordinate scale, so that the term
    weighs like the others for any width)."""
    return (refined - teacher.detach()).norm(dim=-1).mean() / math.sqrt(refined.shape[-1])


def _cos_logits(x: Tensor, classes: Tensor, scale: Tensor) -> Tensor:
    """``(M, L, d)`` unit token embeddings x ``(C, d)`` unit class embeddings -> ``(M, C)`` mean over
    tokens of the cosine, times ``scale``."""
    return torch.einsum("mld,cd->mc", x, classes) / x.shape[1] * scale


class UASAN(nn.Module):
    """The network (module docstring). :meth:`forward` takes a batch dict (:func:`pyvrel.models.uasan.task.collate`)
    and the base classes' text vectors; it returns the losses with ``"loss"``."""

    def __init__(self, cfg: UASANConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.hidden
        self.bridge = QueryEncoder(cfg)            # eq. 1, the teacher
        self.vision_proj = nn.Linear(d, d)
        self.text = PromptEncoder(cfg, groups=2)   # eq. 2, 9-10; group 0: pair branch, 1: union branch
        self.pair_proj = _mlp(2 * d, 2 * d, d)
        self.relpos = _mlp(cfg.motion_dim, d, d)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / cfg.temperature)))
        if cfg.variant == "full":
            self.refiner = QueryEncoder(cfg)       # the visual refiner, distilled from the bridge (eq. 4)
            self.refiner_proj = nn.Linear(d, d)
            self.motion = nn.ModuleList([nn.Linear(12, d), nn.Linear(3, d)])   # phi_mot: L_mot = 2 tokens
            self.relation_token = nn.Parameter(torch.randn(1, d) * 0.02)       # f_r
            self.encoder = SACEncoder(cfg)
            self.decoder = URADecoder(cfg)
            self.predictor = _mlp(d, 2 * d, d)     # phi_pre
            self.pred_norm = nn.LayerNorm(d)

    # -- embeddings -----------------------------------------------------------------------------
    def object_embeddings(self, text: Tensor) -> Tensor:
        """``(C, Dt)`` object-name text vectors -> ``(C, d)`` (eq. 2)."""
        return self.text(text)

    def predicate_embeddings(self, text: Tensor) -> tuple[Tensor, Tensor]:
        """``(C, Dt)`` predicate-name text vectors -> pair-branch and union-branch prompt embeddings
        ``(C, d)`` each (eq. 9-10)."""
        return self.text(text, 0), self.text(text, 1)

    def trajectory(self, f: Tensor) -> tuple[Tensor, Tensor]:
        """The bridge encoder's hidden ``F' (N, L, d)`` and unit embeddings ``(N, L, d)`` (eq. 1)."""
        h = self.bridge(f)
        return h, F.normalize(self.vision_proj(h), dim=-1)

    def trajectory_logits(self, f: Tensor, objects: Tensor) -> Tensor:
        """``(N, C)`` eq. 3 logits of trajectories ``(N, Dv)`` against object embeddings ``(C, d)``."""
        return _cos_logits(self.trajectory(f)[1], objects, self.logit_scale.exp())

    # -- relations ------------------------------------------------------------------------------
    def relation_logits(self, traj: Tensor, pairs: Tensor, union: Tensor, motion: Tensor,
                        predicates: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
        """Logits ``(P, C)`` of the pair branch (``"pair"``) and, for the full model, the union branch
        (``"union"``); ``"refined"``: the refiner's trajectory features (distillation)."""
        scale = self.logit_scale.exp()
        rel = F.normalize(self.relpos(motion), dim=-1)[:, None]
        out: dict[str, Tensor] = {}
        if self.cfg.variant == "A":
            feats = self.trajectory(traj)[0]
        else:
            feats = out["refined"] = self.refiner(traj)
        pair = F.normalize(self.pair_proj(torch.cat([feats[pairs[:, 0]], feats[pairs[:, 1]]], -1)), dim=-1)
        out["pair"] = _cos_logits(F.normalize(pair + rel, dim=-1), predicates[0], scale)
        if self.cfg.variant == "full":
            u = self.refiner(union)                                               # U-hat (P, L, d)
            mot = torch.stack([self.motion[0](motion[:, :12]), self.motion[1](motion[:, 12:])], 1)  # (P, 2, d)
            sentence = torch.cat([feats[pairs[:, 0]], feats[pairs[:, 1]], u, mot], 1)             # eq. 5
            enc = self.encoder(sentence, self.relation_token)                                     # eq. 6
            dec = self.decoder(self.relation_token, enc, self.encoder.pos + self.relation_token)  # eq. 7-8
            L = self.cfg.tokens
            r = self.pred_norm(self.predictor(dec + enc[:, 2 * L:3 * L] + u + mot.mean(1, keepdim=True)))  # eq. 11
            out["union"] = _cos_logits(F.normalize(self.refiner_proj(r), dim=-1), predicates[1], scale)
        return out

    def scores(self, logits: dict[str, Tensor]) -> Tensor:
        """``(P, C)`` predicate probabilities: the mean of the branches' sigmoids."""
        parts = [torch.sigmoid(logits[k]) for k in ("pair", "union") if k in logits]
        return torch.stack(parts).mean(0)

    def forward(self, batch: dict[str, Tensor], object_text: Tensor, predicate_text: Tensor) -> dict[str, Tensor]:
        """Losses of eq. 12 for a batch (``traj (N, Dv)``, ``traj_label (N,)`` base object index or -1,
        ``pairs (P, 2)``, ``union (P, Dv)``, ``motion (P, 15)``, ``labels (P, C_base)``) given the
        base classes' text vectors ``(C_obj, Dt)`` and ``(C_pred, Dt)``."""
        objects = self.object_embeddings(object_text)
        predicates = self.predicate_embeddings(predicate_text)
        traj, labelled = batch["traj"], batch["traj_label"] >= 0
        hidden, emb = self.trajectory(traj)
        losses: dict[str, Tensor] = {}
        logits = _cos_logits(emb, objects, self.logit_scale.exp())
        losses["traj"] = (F.cross_entropy(logits[labelled], batch["traj_label"][labelled]) if labelled.any()
                          else logits.sum() * 0)
        out = self.relation_logits(traj, batch["pairs"], batch["union"], batch["motion"], predicates)
        losses["fg"] = focal_relation_loss(out["pair"], batch["labels"])
        if self.cfg.variant == "full":
            losses["dis"] = distillation_loss(out["refined"], hidden)
            losses["union"] = focal_relation_loss(out["union"], batch["labels"])
        losses["loss"] = sum(losses.values())
        return losses
