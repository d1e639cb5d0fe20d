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

__all__ = ["Target", "sigmoid_focal", "match_costs", "hungarian_match", "match_layers", "targets_to_device",
           "to_device", "SetCriterion"]


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

    The padded positions are zeroed, not dropped (no data-dependent shape: no host sync).
    """
    cost_class = -torch.log_softmax(logits.float(), -1)[:, target.labels]
    v = valid.float()
    m, t = torch.where(valid, masks.float(), 0.0), target.masks.float() * v
    n = v.sum().clamp(min=1)
    pos = sigmoid_focal(m, torch.ones_like(m)) * v
    neg = sigmoid_focal(m, torch.zeros_like(m)) * v
    cost_mask = (pos @ t.T + neg @ (1 - t).T) / n
    p = torch.sigmoid(m) * v
    cost_dice = 1 - (2 * p @ t.T + 1) / (p.sum(-1)[:, None] + t.sum(-1)[None, :] + 1)
    return cost_class, cost_mask, cost_dice


def _cost(logits: Tensor, masks: Tensor, valid: Tensor, target: Target, weights: tuple[float, float, float]) -> Tensor:
    """The matching cost ``w_c·class + w_m·mask + w_d·dice`` (Nq, G) of one sample."""
    cc, cm, cd = match_costs(logits, masks, valid, target)
    return weights[0] * cc + weights[1] * cm + weights[2] * cd


def hungarian_match(logits: Tensor, masks: Tensor, valid: Tensor, target: Target,
                    weights: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """``(query_idx, target_idx)`` minimising ``w_c·class + w_m·mask + w_d·dice`` (scipy)."""
    if len(target.labels) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    q, g = linear_sum_assignment(_cost(logits, masks, valid, target, weights).cpu().numpy())
    return q.astype(np.int64), g.astype(np.int64)


def to_device(tensors: list[Tensor], device: torch.device) -> list[Tensor]:
    """``tensors`` (on the host, one dtype) on ``device`` by one copy: flattened into one pinned
    buffer, copied asynchronously, viewed back (two copies per tensor would each wait for the GPU)."""
    if device.type != "cuda" or not tensors or all(t.device == device for t in tensors):
        return [t.to(device) for t in tensors]
    flat = torch.cat([t.reshape(-1) for t in tensors]).pin_memory().to(device, non_blocking=True)
    return [part.view(t.shape) for part, t in zip(flat.split([t.numel() for t in tensors]), tensors)]


def targets_to_device(targets: list[Target], device: torch.device) -> list[Target]:
    """The targets of a batch on ``device``: one copy of all labels and one of all masks."""
    labels = to_device([t.labels for t in targets], device)
    masks = to_device([t.masks for t in targets], device)
    return [Target(lab, m) for lab, m in zip(labels, masks)]


def match_layers(layers: list[tuple[Tensor, Tensor]], valid: Tensor, targets: list[Target],
                 weights: tuple[float, float, float]) -> list[list[tuple[Tensor, Tensor]]]:
    """:func:`hungarian_match` of every decoder layer and sample with one device -> host copy (all
    cost matrices side by side) and one host -> device copy (all indices).

    Args: layers: ``(logits (B, Nq, C + 1), masks (B, Nq, T))`` per layer; valid (B, T) bool.
    Returns: per layer, per sample ``(query_idx, target_idx)`` int64 on the logits' device.
    """
    sizes = [len(t.labels) for t in targets]
    device = layers[0][0].device
    if sum(sizes) == 0:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return [[(empty, empty)] * len(targets) for _ in layers]
    costs = torch.stack([torch.cat([_cost(lg[b].detach(), mk[b].detach(), valid[b], t, weights)
                                    for b, t in enumerate(targets) if sizes[b]], 1) for lg, mk in layers])
    costs = costs.cpu().numpy()  # the step's one wait for the device: scipy needs the costs
    bounds = np.cumsum([0] + sizes)
    found = [linear_sum_assignment(c[:, bounds[b]:bounds[b + 1]]) for c in costs for b in range(len(targets))]
    flat = to_device([torch.from_numpy(x.astype(np.int64)) for pair in found for x in pair], device)
    pairs = list(zip(flat[0::2], flat[1::2]))
    return [pairs[i * len(targets):(i + 1) * len(targets)] for i in range(len(layers))]


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
               num_masks: Tensor, matches: list[tuple[Tensor, Tensor]]) -> dict[str, Tensor]:
        """The terms of one decoder layer; ``num_masks`` is the global normaliser over world size,
        ``matches`` the layer's :func:`match_layers` result."""
        c = self.cfg
        B, Nq, _ = logits.shape
        target_classes = torch.zeros(B, Nq, dtype=torch.long, device=logits.device)
        src, tgt, tgt_valid = [], [], []
        for b, (t, (qi_t, gi_t)) in enumerate(zip(targets, matches)):
            if len(qi_t):  # a shape: known on the host
                target_classes[b, qi_t] = t.labels[gi_t]
                src.append(masks[b, qi_t])
                tgt.append(t.masks[gi_t].to(masks.dtype))
                tgt_valid.append(valid[b].expand(len(qi_t), -1))
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
        count = torch.full((), float(sum(len(t.labels) for t in targets)), device=mask.device)  # no copy
        # max(global count, 1) / world size: the local share of the one-process normaliser
        num_masks = dist.mean_over_ranks(count).clamp(min=1 / dist.world_size())
        layers = [outputs] + list(outputs.get("aux_outputs", []))
        c = self.cfg
        matches = match_layers([(o["pred_logits"], o["pred_masks"]) for o in layers], valid, targets,
                               (c.cost_class, c.cost_mask, c.cost_dice))
        losses = self.single(outputs["pred_logits"], outputs["pred_masks"], targets, valid, num_masks, matches[0])
        for i, aux in enumerate(layers[1:]):
            for k, v in self.single(aux["pred_logits"], aux["pred_masks"], targets, valid, num_masks,
                                    matches[i + 1]).items():
                losses[f"{k}_aux{i}"] = v
        losses["loss"] = sum(losses.values())
        return losses
