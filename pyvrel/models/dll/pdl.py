"""Pattern decoupling learning (PDL, paper §3.2, code §4.2 of ``shared/specs/models.md``).

The predicate embedding is split into an actional and a spatial feature, each scored by its own
pattern classifier; an adversarial branch (gradient reversal) keeps the two features apart; the
pattern logits are mapped back to predicate logits (:class:`PatternMapping`), after ``steps``
rounds of mutual calibration.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pyvrel.models.dll.patterns import PatternTable

__all__ = ["GradientReversal", "PatternDecoupling", "PatternMapping", "bernoulli_kl", "grad_reverse"]


class GradientReversal(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by ``-coeff`` (Ganin & Lempitsky)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, coeff: float) -> Tensor:
        ctx.coeff = coeff
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return -ctx.coeff * grad, None


def grad_reverse(x: Tensor, coeff: float = 1.0) -> Tensor:
    """``x`` unchanged, with its gradient reversed and scaled by ``coeff``."""
    return GradientReversal.apply(x, coeff)


def _log_bernoulli(z: Tensor) -> Tensor:
    """``log [σ(z), 1 - σ(z)]`` of every logit as rows of a ``(numel, 2)`` tensor."""
    return torch.stack([F.logsigmoid(z), F.logsigmoid(-z)], -1).reshape(-1, 2)


def bernoulli_kl(input_logits: Tensor, target_logits: Tensor) -> Tensor:
    """``KL(Bern(σ(target)) || Bern(σ(input)))`` averaged over the logits (the code's
    ``KLDivLoss(batchmean, log_target=True)`` on the ``(B·K, 2)`` layout); 0 for no logits."""
    if input_logits.numel() == 0:
        return input_logits.sum()
    return F.kl_div(_log_bernoulli(input_logits), _log_bernoulli(target_logits), reduction="batchmean",
                    log_target=True)


class PatternMapping(nn.Module):
    """Pattern logits -> predicate logits and back, for a :class:`PatternTable`.

    ``forward(za (B, n_act), zs (B, n_sp)) -> (B, P)``: a dual-pattern predicate gets
    ``ratio · za[act] + (1 - ratio) · zs[sp]``, a single-pattern one its pattern's logit.
    ``inverse(p) -> (za', zs')``: each pattern's mean over the predicates that carry it.
    """

    def __init__(self, table: PatternTable, ratio: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"ratio: expected a value in [0, 1], got {ratio}")
        A, S = table.one_hot()
        both = (A.sum(1) > 0) & (S.sum(1) > 0)
        wa = torch.where(both, torch.tensor(ratio), torch.tensor(1.0))
        ws = torch.where(both, torch.tensor(1.0 - ratio), torch.tensor(1.0))
        self.register_buffer("act_to_pred", (A * wa[:, None]).T.contiguous())    # (n_act, P)
        self.register_buffer("sp_to_pred", (S * ws[:, None]).T.contiguous())     # (n_sp, P)
        self.register_buffer("pred_to_act", A / A.sum(0, keepdim=True))         # (P, n_act)
        self.register_buffer("pred_to_sp", S / S.sum(0, keepdim=True))          # (P, n_sp)

    def forward(self, za: Tensor, zs: Tensor) -> Tensor:
        return za @ self.act_to_pred.to(za.dtype) + zs @ self.sp_to_pred.to(zs.dtype)

    def inverse(self, p: Tensor) -> tuple[Tensor, Tensor]:
        return p @ self.pred_to_act.to(p.dtype), p @ self.pred_to_sp.to(p.dtype)

    def calibrate(self, za: Tensor, zs: Tensor, theta: float, steps: int) -> tuple[Tensor, Tensor]:
        """Mutual calibration: ``steps`` times ``z <- (1 - theta) z + theta · inverse(forward(za, zs))``."""
        for _ in range(steps):
            ca, cs = self.inverse(self(za, zs))
            za, zs = (1 - theta) * za + theta * ca, (1 - theta) * zs + theta * cs
        return za, zs


class PatternDecoupling(nn.Module):
    """PDL: ``forward(pf (B, in_dim)) -> (predicate logits (B, P), {"pdl": loss})``.

    Args:
        in_dim: width of the predicate embedding. table: the predicate -> pattern table.
        dim: width of the actional / spatial features (code: 384).
        adversarial: weight λ of the Bernoulli-KL adversarial loss (code 0.13; 0: no branch).
        grl: gradient reversal coefficient (VidVRD-II variant 1.0, STGC 0.01).
        ratio: share of the actional logit in a dual-pattern predicate (0.5; STGC 0.3).
        theta, steps: mutual calibration weight and rounds (1e-3, 1; 0 steps: none).

    The loss only exists in training mode (the adversarial branch is not run at inference);
    calibration runs in both modes, so training and inference score predicates alike.
    """

    def __init__(self, in_dim: int, table: PatternTable, dim: int = 384, adversarial: float = 0.13,
                 grl: float = 1.0, ratio: float = 0.5, theta: float = 1e-3, steps: int = 1) -> None:
        super().__init__()
        self.adversarial, self.grl, self.theta, self.steps = adversarial, grl, theta, steps
        self.action_feature = nn.Sequential(nn.Linear(in_dim, dim), nn.ReLU())
        self.spatial_feature = nn.Sequential(nn.Linear(in_dim, dim), nn.ReLU())
        self.action_classifier = nn.Linear(dim, len(table.actions), bias=False)
        self.spatial_classifier = nn.Linear(dim, len(table.spatials), bias=False)
        self.action_to_spatial = nn.Linear(dim, dim)
        self.spatial_to_action = nn.Linear(dim, dim)
        self.mapping = PatternMapping(table, ratio)

    def pattern_logits(self, pf: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(za, zs, a, s)``: actional / spatial pattern logits and features."""
        a, s = self.action_feature(pf), self.spatial_feature(pf)
        return self.action_classifier(a), self.spatial_classifier(s), a, s

    def forward(self, pf: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        za, zs, a, s = self.pattern_logits(pf)
        losses = {}
        if self.training and self.adversarial > 0:
            # the classifiers learn to read the other pattern out of each feature; the reversed
            # gradient teaches the feature extractors to hide it
            zs_wrong = self.spatial_classifier(self.action_to_spatial(grad_reverse(a, self.grl)))
            za_wrong = self.action_classifier(self.spatial_to_action(grad_reverse(s, self.grl)))
            losses["pdl"] = self.adversarial * (bernoulli_kl(zs_wrong, zs.detach()) +
                                                bernoulli_kl(za_wrong, za.detach()))
        za, zs = self.mapping.calibrate(za, zs, self.theta, self.steps)
        return self.mapping(za, zs), losses
