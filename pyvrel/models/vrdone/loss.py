"""VrdONE training objective: Hungarian matching and the CE / mask focal / dice losses.

Each pair sample is matched independently (DETR style). A target is ``(labels (G,) int64 in
[1, C], masks (G, T) float in [0, 1])``; ``G`` may be 0. Valid positions come from the input mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from pyvrel.engine import distributed as dist
from pyvrel.models.vrdone.config import VrdONEConfig

__all__ = ["Target", "sigmoid_focal", "match_costs", "hungarian_match", "SetCriterion"]


@dataclass
class Target:
    """Ground truth of one pair: predicate ``labels (G,)`` in ``[1, C]`` (0 is background) and
    temporal ``masks (G, T)`` on the feature grid (hard 0/1 or fuzzy)."""

    labels: Tensor
    masks: Tensor


def sigmoid_focal(logits: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """Element-wise sigmoid focal loss (fvcore): ``α_t (1 - p_t)^γ BCE``; soft targets allowed."""
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss


@torch.no_grad()
def match_costs(logits: Tensor, masks: Tensor, valid: Tensor, target: Target) -> tuple[Tensor, Tensor, Tensor]:
    """Cost matrices ``(Nq, G)`` of one sample: class (full cross entropy ``-log softmax``), mask
    (focal over the valid positions / their number) and dice (over the valid positions).

    Args: logits (Nq, C + 1), masks (Nq, T) logits, valid (T,) bool.
    """
    cost_class = -torch.log_softmax(logits.float(), -1)[:, target.labels]
    m, t = masks.float()[:, valid], target.masks.float()[:, valid]
    n = max(int(valid.sum()), 1)
    pos = sigmoid_focal(m, torch.ones_like(m))
    neg = sigmoid_focal(m, torch.zeros_like(m))
    cost_mask = (pos @ t.T + neg @ (1 - t).T) / n
    p = torch.sigmoid(m)
    cost_dice = 1 - (2 * p @ t.T + 1) / (p.sum(-1)[:, None] + t.sum(-1)[None, :] + 1)
    return cost_class, cost_mask, cost_dice


def hungarian_match(logits: Tensor, masks: Tensor, valid: Tensor, target: Target,
                    weights: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """``(query_idx, target_idx)`` minimising ``w_c·class + w_m·mask + w_d·dice`` (scipy)."""
    if len(target.labels) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    cc, cm, cd = match_costs(logits, masks, valid, target)
    cost = weights[0] * cc + weights[1] * cm + weights[2] * cd
    q, g = linear_sum_assignment(cost.cpu().numpy())
    return q.astype(np.int64), g.astype(np.int64)


class SetCriterion(torch.nn.Module):
    """The VrdONE loss: for the last layer and (``deep_supervision``) each earlier one, its own
    matching, then ``loss_class·CE (eos_coef weight on background, weighted mean over all queries)
    + loss_mask·Σ focal / num_masks + loss_dice·Σ dice / num_masks`` with ``num_masks =
    max(#targets in the batch, 1)``. The mask focal of a matched query is averaged over all ``T``
    positions (``mask_focal_over_padding``, official) or over its valid positions (corrected).

    Under ``torchrun`` "the batch" is the global one: both normalisers (``num_masks`` and the CE's
    sum of class weights) are summed over the processes and the local sums are divided by
    ``normaliser / world_size`` (:func:`pyvrel.engine.distributed.mean_over_ranks`), so DDP's
    gradient average is exactly the gradient of the one-process loss of the global batch (the
    official code divides by the local count, which differs when processes hold different numbers
    of targets). With one process nothing changes.

    ``forward(outputs, targets: list[Target], mask (B, 1, T)) -> dict`` of the weighted terms
    (``loss_class``, ``loss_mask``, ``loss_dice``, with ``_aux{i}`` suffixes) and ``loss`` (their sum).
    """

    def __init__(self, cfg: VrdONEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w = torch.ones(cfg.num_classes + 1)
        w[0] = cfg.eos_coef
        self.register_buffer("class_weight", w)

    def single(self, logits: Tensor, masks: Tensor, targets: list[Target], valid: Tensor,
               num_masks: Tensor) -> dict[str, Tensor]:
        """The terms of one decoder layer; ``num_masks`` is the global normaliser over world size."""
        c = self.cfg
        B, Nq, _ = logits.shape
        target_classes = torch.zeros(B, Nq, dtype=torch.long, device=logits.device)
        src, tgt, tgt_valid = [], [], []
        for b, t in enumerate(targets):
            qi, gi = hungarian_match(logits[b].detach(), masks[b].detach(), valid[b], t,
                                     (c.cost_class, c.cost_mask, c.cost_dice))
            if len(qi):
                qi_t, gi_t = torch.from_numpy(qi).to(logits.device), torch.from_numpy(gi).to(logits.device)
                target_classes[b, qi_t] = t.labels[gi_t]
                src.append(masks[b, qi_t])
                tgt.append(t.masks[gi_t].to(masks.dtype))
                tgt_valid.append(valid[b].expand(len(qi), -1))
        ce = F.cross_entropy(logits.transpose(1, 2), target_classes, weight=self.class_weight.to(logits.dtype),
                             reduction="sum")
        weight_sum = self.class_weight[target_classes].sum()  # in the buffer's dtype (not bf16 under autocast)
        loss_class = ce / dist.mean_over_ranks(weight_sum)  # weighted mean over the queries of the global batch
        if src:
            m, t, v = torch.cat(src), torch.cat(tgt), torch.cat(tgt_valid).to(masks.dtype)
            focal = sigmoid_focal(m, t) * v
            if c.mask_focal_over_padding:
                loss_mask = focal.mean(1).sum() / num_masks
            else:
                loss_mask = (focal.sum(1) / v.sum(1).clamp(min=1)).sum() / num_masks
            p = torch.sigmoid(m) * v
            dice = 1 - (2 * (p * t).sum(1) + 1) / (p.sum(1) + (t * v).sum(1) + 1)
            loss_dice = dice.sum() / num_masks
        else:
            loss_mask = loss_dice = masks.sum() * 0.0
        return {"loss_class": c.loss_class * loss_class, "loss_mask": c.loss_mask * loss_mask,
                "loss_dice": c.loss_dice * loss_dice}

    def forward(self, outputs: dict, targets: list[Target], mask: Tensor) -> dict[str, Tensor]:
        if len(targets) != outputs["pred_logits"].shape[0]:
            raise ValueError(f"SetCriterion: {len(targets)} targets for a batch of {outputs['pred_logits'].shape[0]}")
        valid = mask[:, 0]
        count = torch.tensor(float(sum(len(t.labels) for t in targets)), device=mask.device)
        # max(global count, 1) / world size: the local share of the one-process normaliser
        num_masks = dist.mean_over_ranks(count).clamp(min=1 / dist.world_size())
        losses = self.single(outputs["pred_logits"], outputs["pred_masks"], targets, valid, num_masks)
        for i, aux in enumerate(outputs.get("aux_outputs", [])):
            for k, v in self.single(aux["pred_logits"], aux["pred_masks"], targets, valid, num_masks).items():
                losses[f"{k}_aux{i}"] = v
        losses["loss"] = sum(losses.values())
        return losses
