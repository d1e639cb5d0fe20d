"""Soft tubes: vRGV's spatial attention trained through the grounding's linking (beyond the paper).

With ``VRGVConfig.tube_training="soft_viterbi"`` the subject and object features that reach the
decoder are pooled with the *path marginals* of a linking problem instead of with the per-frame
attention α: unary ``log α[t, m]`` (the SAU's logits up to a per-frame constant, which no path
distinguishes), pairwise ``λ · IoU`` of boxes of consecutive sampled frames (λ: ``tube_weight``, by
default the grounding's ``pairwise_weight``, not divided by the frame gap: a training batch has no
frame numbers), :func:`pyvrel.ops.soft_viterbi` at temperature 1. It is the soft counterpart of the
grounding's linking (a hard Viterbi path on ``α`` and ``λ / gap · IoU``), not the same problem: on
``log α`` at temperature 1, ``λ = 0`` gives marginals equal to α exactly (the paper), and with
``λ > 0`` a box gains weight when the attention on its neighbours in time continues it, so the
reconstruction loss trains the attention to make linkable tubes.

:func:`pyvrel.ops.soft_viterbi` returns its marginals without gradient (its log-partition carries
the first derivative). :class:`_Marginals` differentiates them: the Jacobian of the marginals w.r.t.
the unaries is the Hessian of the log-partition (symmetric), so the backward pass is its product with
the incoming gradient ``g``, the derivative of the marginals along ``g``, taken by central differences
in float64 with two more calls of the op (a step of ``1e-4 / max |g|`` per problem: error ~1e-8).
"""

from __future__ import annotations

import torch
from torch import Tensor

from pyvrel.ops import soft_viterbi

__all__ = ["soft_tubes"]

_STEP = 1e-4


def _marginals(boxes: Tensor, unary: Tensor, weight: float) -> Tensor:
    return soft_viterbi(boxes, unary, pairwise_weight=weight, gap_scaling=False).marginals


class _Marginals(torch.autograd.Function):
    """unary (B, T, M) float64, boxes (B, T, M, 4) -> marginals (B, T, M), differentiable in unary."""

    @staticmethod
    def forward(ctx, unary: Tensor, boxes: Tensor, weight: float) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(unary, boxes)
        ctx.weight = weight
        return _marginals(boxes, unary, weight)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        unary, boxes = ctx.saved_tensors
        grad = grad.to(unary.dtype)
        h = _STEP / grad.abs().amax((1, 2), keepdim=True).clamp_min(torch.finfo(unary.dtype).tiny)
        plus = _marginals(boxes, unary + h * grad, ctx.weight)
        minus = _marginals(boxes, unary - h * grad, ctx.weight)
        return (plus - minus) / (2 * h), None, None


def soft_tubes(alpha: Tensor, boxes: Tensor, pairwise_weight: float) -> Tensor:
    """Soft tubes of attention maps: the per-box path marginals of linking them.

    Args:
        alpha (Tensor[..., T, M]): attention over M proposals in each of T sampled frames (rows sum to 1).
        boxes (Tensor[..., T, M, 4]): the proposals' boxes (any common scale: IoU is scale-free), broadcast
            against ``alpha``'s leading dimensions.
        pairwise_weight: λ of the ``λ · IoU`` link term (per link of consecutive sampled frames).

    Returns:
        Tensor[..., T, M] in ``alpha``'s dtype, rows summing to 1, differentiable w.r.t. ``alpha``.
    """
    lead, (T, M) = alpha.shape[:-2], alpha.shape[-2:]
    boxes = boxes.expand(*lead, T, M, 4).reshape(-1, T, M, 4).detach().double()
    unary = alpha.reshape(-1, T, M).double().clamp_min(torch.finfo(torch.float64).tiny).log()
    return _Marginals.apply(unary, boxes, float(pairwise_weight)).to(alpha.dtype).reshape(alpha.shape)
