"""VidVRD-II's pair classifier (:class:`IterativeClassifier`), its replaceable predicate head and losses.

Pair batch (what :meth:`IterativeClassifier.forward` reads; a :class:`PairBatch`)
    ``subject_features``, ``object_features`` ``(B, D)`` (a tracklet's feature: the mean of its
    per-frame features over the segment), ``position`` ``(B, 12)``
    (:func:`pyvrel.data.segments.relative_position`); for training also ``subject_labels``,
    ``object_labels`` ``(B,)`` int64 in ``[0, O]`` (O = background) and ``predicate_targets``
    ``(B, P)`` multi-hot (all zero for a pair without relation).

Predicate head interface (DLL's heads plug in here)
    ``IterativeClassifier(cfg, predicate_head=None)``; ``self.predicate_head`` is any module with
    ``forward(pair_features, subject_logits, object_logits, predicate_bias, predicate_targets=None)
    -> (predicate_logits, extra_losses)``:

    * ``pair_features`` ``(B, hidden)``: the pair embedding (``predicate_feat_emb`` of §4.1);
    * ``subject_logits``, ``object_logits`` ``(B, O + 1)``: the object classifier's raw logits;
    * ``predicate_bias`` ``(B, P)``: the preference term ``(s ⊗ o)·so2p`` to add to the head's own
      predicate logits (from ground-truth one-hots in training; zeros at inference, where the
      iterative inference adds it step by step);
    * ``predicate_targets`` ``(B, P)`` multi-hot in training, ``None`` at inference;
    * returns ``predicate_logits`` ``(B, P)`` (own logits + ``predicate_bias``) and
      ``extra_losses`` ``{name: scalar}``, added to the total loss and logged (``{}`` at inference).

    The default head, :class:`LinearPredicateHead`, is §4.1's ``predicate_predictor``
    (``Linear(hidden -> P, no bias)``). The model always adds the binary focal loss of the
    returned logits (``"predicate"``), the softmax focal losses of the biased subject and object
    logits (``"subject"``, ``"object"``) and the head's extra losses into ``"loss"``.

The preference tables (:class:`PreferenceTables`: ``sp2o``, ``po2s``, ``so2p``) are trained with
their own weight decay (``own_weight_decay()``, an optimizer group of
:func:`pyvrel.engine.param_groups`).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pyvrel.models.vidvrd2.config import VidVRD2Config

__all__ = ["IterativeClassifier", "LinearPredicateHead", "PairBatch", "PreferenceTables", "binary_focal_loss",
           "softmax_focal_loss"]

POSITION_DIM = 12


class PairBatch(NamedTuple):
    """A batch of pairs (module docstring); the label fields are ``None`` at inference."""

    subject_features: Tensor
    object_features: Tensor
    position: Tensor
    subject_labels: Tensor | None = None
    object_labels: Tensor | None = None
    predicate_targets: Tensor | None = None


def softmax_focal_loss(logits: Tensor, target: Tensor, gamma: float = 2.0) -> Tensor:
    """Mean over rows of ``-(1 - p_t)^gamma log p_t`` (softmax over ``(B, C)`` logits, ``target (B,)``);
    0 for an empty batch."""
    if logits.shape[0] == 0:
        return logits.sum() * 0.0
    logp = F.log_softmax(logits, -1).gather(1, target[:, None])[:, 0]
    return (-(1 - logp.exp()) ** gamma * logp).mean()


def binary_focal_loss(logits: Tensor, target: Tensor, gamma: float = 2.0) -> Tensor:
    """BCE-with-logits weighted by the detached ``(1 - p_t)^gamma``, mean over all elements (VidVRD-II's
    ``binary_focal_loss``); 0 for an empty batch."""
    if logits.numel() == 0:
        return logits.sum() * 0.0
    p = torch.sigmoid(logits.detach())
    p_t = torch.where(target > 0.5, p, 1 - p)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return ((1 - p_t) ** gamma * bce).mean()


def _outer(a: Tensor, b: Tensor) -> Tensor:
    """``(B, m * n)``: the row-wise outer products of ``a (B, m)`` and ``b (B, n)``, flattened."""
    return (a[:, :, None] * b[:, None, :]).flatten(1)


class PreferenceTables(nn.Module):
    """The zero-initialised preference tables of §4.1: ``sp2o ((O+1)·P, O+1)``, ``po2s (P·(O+1), O+1)``,
    ``so2p ((O+1)², P)``, trained with their own weight decay ``weight_decay``."""

    def __init__(self, num_objects: int, num_predicates: int, weight_decay: float) -> None:
        super().__init__()
        C, P = num_objects + 1, num_predicates
        self.sp2o = nn.Parameter(torch.zeros(C * P, C))
        self.po2s = nn.Parameter(torch.zeros(P * C, C))
        self.so2p = nn.Parameter(torch.zeros(C * C, P))
        self.weight_decay = weight_decay

    def own_weight_decay(self) -> dict[str, float]:
        return {n: self.weight_decay for n, _ in self.named_parameters()}

    def subject_bias(self, p: Tensor, o: Tensor) -> Tensor:
        """``(B, O+1)``: ``(p ⊗ o)·po2s`` for predicate ``p (B, P)`` and object ``o (B, O+1)`` vectors."""
        return _outer(p, o) @ self.po2s

    def object_bias(self, s: Tensor, p: Tensor) -> Tensor:
        """``(B, O+1)``: ``(s ⊗ p)·sp2o``."""
        return _outer(s, p) @ self.sp2o

    def predicate_bias(self, s: Tensor, o: Tensor) -> Tensor:
        """``(B, P)``: ``(s ⊗ o)·so2p``."""
        return _outer(s, o) @ self.so2p


class LinearPredicateHead(nn.Module):
    """§4.1's ``predicate_predictor``: ``Linear(hidden -> P, no bias)`` (the default predicate head)."""

    def __init__(self, hidden: int, num_predicates: int) -> None:
        super().__init__()
        self.predictor = nn.Linear(hidden, num_predicates, bias=False)

    def forward(self, pair_features: Tensor, subject_logits: Tensor, object_logits: Tensor, predicate_bias: Tensor,
                predicate_targets: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        return self.predictor(pair_features) + predicate_bias, {}


class IterativeClassifier(nn.Module):
    """VidVRD-II's classifier of subject, object and predicates of tracklet pairs (module docstring).

    ``forward(batch)`` (training) returns ``{"loss", "subject", "object", "predicate", *extra}``;
    :meth:`infer` gives the probabilities of the iterative inference.
    """

    def __init__(self, cfg: VidVRD2Config, predicate_head: nn.Module | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        D, H, O, P = cfg.feature_dim, cfg.hidden, cfg.num_objects, cfg.num_predicates
        self.object_predictor = nn.Sequential(nn.Linear(D, H), nn.Dropout(cfg.dropout), nn.ReLU(),
                                              nn.Linear(H, O + 1, bias=False))
        self.predicate_vis_feat_emb = nn.Sequential(nn.Linear(2 * D, H), nn.Dropout(cfg.dropout), nn.ReLU())
        self.predicate_feat_emb = nn.Sequential(nn.Linear(H + POSITION_DIM, H), nn.ReLU())
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        self.predicate_head = predicate_head if predicate_head is not None else LinearPredicateHead(H, P)
        if predicate_head is None:
            nn.init.xavier_uniform_(self.predicate_head.predictor.weight)
        self.preference = PreferenceTables(O, P, cfg.preference_weight_decay)

    def _check(self, batch: PairBatch, training: bool) -> None:
        D, B = self.cfg.feature_dim, batch.subject_features.shape[0]
        shapes = {"subject_features": (B, D), "object_features": (B, D), "position": (B, POSITION_DIM)}
        if training:
            shapes.update(subject_labels=(B,), object_labels=(B,), predicate_targets=(B, self.cfg.num_predicates))
        for name, shape in shapes.items():
            value = getattr(batch, name)
            if value is None or tuple(value.shape) != shape:
                got = None if value is None else tuple(value.shape)
                raise ValueError(f"IterativeClassifier: {name} must have shape {shape}, got {got}")
        if training:
            for name in ("subject_labels", "object_labels"):
                labels = getattr(batch, name)
                if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) > self.cfg.num_objects):
                    raise ValueError(f"IterativeClassifier: {name} must lie in [0, {self.cfg.num_objects}] "
                                     f"(the last is background), got [{int(labels.min())}, {int(labels.max())}]")

    def encode(self, batch: PairBatch) -> tuple[Tensor, Tensor, Tensor]:
        """Subject and object logits ``(B, O+1)`` and the pair features ``(B, hidden)``."""
        dtype = next(self.parameters()).dtype
        sub, obj = batch.subject_features.to(dtype), batch.object_features.to(dtype)
        vis = self.predicate_vis_feat_emb(torch.cat([sub, obj], 1))
        pair = self.predicate_feat_emb(torch.cat([vis, batch.position.to(dtype)], 1))
        return self.object_predictor(sub), self.object_predictor(obj), pair

    def forward(self, batch: PairBatch) -> dict[str, Tensor]:
        self._check(batch, training=True)
        s, o, pair = self.encode(batch)
        C = self.cfg.num_objects + 1
        s_vec = F.one_hot(batch.subject_labels, C).to(s.dtype)
        o_vec = F.one_hot(batch.object_labels, C).to(s.dtype)
        p_vec = batch.predicate_targets.to(s.dtype)
        t = self.preference
        p, extra = self.predicate_head(pair, s, o, t.predicate_bias(s_vec, o_vec), p_vec)
        g = self.cfg.focal_gamma
        losses = {"subject": softmax_focal_loss(s + t.subject_bias(p_vec, o_vec), batch.subject_labels, g),
                  "object": softmax_focal_loss(o + t.object_bias(s_vec, p_vec), batch.object_labels, g),
                  "predicate": binary_focal_loss(p, p_vec, g)}
        clash = set(extra) & {"loss", *losses}
        if clash:
            raise ValueError(f"IterativeClassifier: the predicate head's extra losses reuse the names {sorted(clash)}")
        losses.update(extra)
        return {"loss": sum(losses.values()), **losses}

    @torch.no_grad()
    def logits(self, batch: PairBatch) -> tuple[Tensor, Tensor, Tensor]:
        """Raw subject, object ``(B, O+1)`` and predicate ``(B, P)`` logits of inference (no preference terms)."""
        self._check(batch, training=False)
        s, o, pair = self.encode(batch)
        p, _ = self.predicate_head(pair, s, o, s.new_zeros(len(s), self.cfg.num_predicates))
        return s, o, p

    @torch.no_grad()
    def iterate(self, s: Tensor, o: Tensor, p: Tensor, steps: int,
                init: tuple[Tensor, Tensor, Tensor] | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """The iterative inference: from probabilities ``init`` (default softmax/sigmoid of the logits), ``steps``
        times ``s = softmax(s + (p⊗o)·po2s)``, ``o = softmax(o + (s⊗p)·sp2o)``, ``p = σ(p + (s⊗o)·so2p)``, each
        from the previous step's probabilities; returns the subject, object and predicate probabilities."""
        ps, po, pp = init if init is not None else (s.softmax(-1), o.softmax(-1), p.sigmoid())
        t = self.preference
        for _ in range(steps):
            ps, po, pp = ((s + t.subject_bias(pp, po)).softmax(-1), (o + t.object_bias(ps, pp)).softmax(-1),
                          (p + t.predicate_bias(ps, po)).sigmoid())
        return ps, po, pp
