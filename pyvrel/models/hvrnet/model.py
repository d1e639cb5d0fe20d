"""HVR-Net's detection head with proposal relations (the released code's ``HRNMPBBoxHead``, §5.3 of
pyvrel's model notes), on RoI features of any detector.

Stages (:class:`~pyvrel.nn.RelationStage`: ``F' = ReLU(fc(X) + NL(fc(X), fc(X)))``): ``intra_stages``
within one video's window of frames, then the last stage, which in training relates the proposals
of three videos at once (target, hard positive, hard negative; *inter-video*) when ``relations ==
"inter"``, and at test time relates the window's proposals as one more intra-video stage (the code's
``forward_test``). ``relations == "none"`` is the frame-only baseline: the same fully connected
layers, no relation (each proposal alone). Heads: classification over ``num_classes + 1`` (0 =
background) and class-agnostic box regression (deltas ``(dx, dy, dw, dh)`` divided by
:data:`DELTA_STDS`). Losses: cross-entropy over every valid proposal, smooth L1 (beta 1) on the
foreground ones divided by the number of proposals, and with ``"inter"`` the proposal-level hard
triplet loss (:func:`~pyvrel.nn.proposal_triplet_loss`) on the inter-video stage's affinities.
Not kept from the code: the branch head after the second stage (an auxiliary loss), the
key-frame-only queries in training (every frame of the window is a query and gets a loss).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pyvrel.nn import (RelationStage, mine_hard_videos, proposal_attention_loss, proposal_triplet_loss,
                       video_descriptor)

__all__ = ["DELTA_STDS", "HVRNet", "HVRNetConfig", "decode_boxes", "encode_boxes"]

#: Standard deviations the regression targets are divided by (the code's target_stds).
DELTA_STDS = (0.1, 0.1, 0.2, 0.2)


@dataclass
class HVRNetConfig:
    """HVR-Net's head (module docstring). Paper/code values in brackets.

    Attributes:
        feature_dim: RoI feature width D [12544 = 256 x 7 x 7].
        dim: width of the stages [1024].
        num_classes: object categories (background excluded) [30].
        relations: ``"none"`` (frame only), ``"intra"`` or ``"inter"`` [inter].
        intra_stages: intra-video stages before the last stage [2].
        window: frames of a window, in training and around each key frame at test [3 / 21].
        positives, negatives: candidate videos the hard positive / negative are mined from [2 / 6].
        triplet_margin, triplet_weight: the proposal triplet loss [10 / 1].
        triplet_mining: its triplets, ``"hardest"`` or ``"semihard"``
            (:func:`~pyvrel.nn.hard_proposal_triplets`), or ``"attention"``: every positive (same label,
            another video) and negative weighted by the block's attention
            (:func:`~pyvrel.nn.proposal_attention_loss`; no margin, on the affinities) [hardest].
        triplet_similarity: what the triplets are mined and penalised on: ``"affinity"`` (the block's
            logits ``q k^T / sqrt(d)``, unbounded) or ``"cosine"`` (of the projected queries and keys,
            :meth:`~pyvrel.nn.ProposalRelation.cosine`) [affinity].
        mining_descriptor: what the hard videos are mined on: ``"video"`` (the code's: each frame's
            mean over all its proposals, max over frames, :func:`~pyvrel.nn.video_descriptor`) or
            ``"object"`` (the same over the proposals of one object category: the item's category
            in the target and the positives, each category of a negative window, a negative as
            hard as its most similar category; for videos of several objects, where a frame's mean
            is mostly background and other objects) [video].
        init_std: the relation blocks' weight initialisation (:class:`~pyvrel.nn.ProposalRelation`;
            None: PyTorch's default) [0.01].
        fg_iou: IoU with a ground-truth box that makes a proposal foreground [0.5].
        score_threshold, nms_threshold, max_per_frame: inference [0.001 / 0.3 / 300].
    """

    feature_dim: int = 12544
    dim: int = 1024
    num_classes: int = 30
    relations: Literal["none", "intra", "inter"] = "inter"
    intra_stages: int = 2
    window: int = 3
    positives: int = 2
    negatives: int = 6
    triplet_margin: float = 10.0
    triplet_weight: float = 1.0
    triplet_mining: Literal["hardest", "semihard", "attention"] = "hardest"
    mining_descriptor: Literal["video", "object"] = "video"
    triplet_similarity: Literal["affinity", "cosine"] = "affinity"
    init_std: float | None = 0.01
    fg_iou: float = 0.5
    score_threshold: float = 0.001
    nms_threshold: float = 0.3
    max_per_frame: int = 300

    def __post_init__(self) -> None:
        if self.relations not in ("none", "intra", "inter"):
            raise ValueError(f"relations: expected 'none', 'intra' or 'inter', got {self.relations!r}")
        if self.triplet_mining not in ("hardest", "semihard", "attention"):
            raise ValueError(f"triplet_mining: expected 'hardest', 'semihard' or 'attention', got "
                             f"{self.triplet_mining!r}")
        if self.triplet_similarity not in ("affinity", "cosine"):
            raise ValueError(f"triplet_similarity: expected 'affinity' or 'cosine', got {self.triplet_similarity!r}")
        if self.triplet_mining == "attention" and self.triplet_similarity != "affinity":
            raise ValueError("triplet_mining='attention' weighs the block's own softmax of its affinities: expected "
                             f"triplet_similarity='affinity', got {self.triplet_similarity!r}")
        if self.mining_descriptor not in ("video", "object"):
            raise ValueError(f"mining_descriptor: expected 'video' or 'object', got {self.mining_descriptor!r}")
        for key in ("feature_dim", "dim", "num_classes", "window", "positives", "negatives", "max_per_frame"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}: expected an integer >= 1, got {getattr(self, key)}")
        if self.intra_stages < 0:
            raise ValueError(f"intra_stages: expected an integer >= 0, got {self.intra_stages}")

    @classmethod
    def synthetic(cls) -> HVRNetConfig:
        """Sizes of the synthetic world (:mod:`pyvrel.data.synthetic.streams.hvrnet`, 32-d RoI features);
        the triplet loss at margin 1 and weight 0.1 (its hardest triplets pull the query/key
        projections towards zero, where the loss is the margin; at weight 1 that flattened the
        attention of a model trained from scratch; at 0.1 the inter stage still collapses, and the
        options ``triplet_similarity``, ``triplet_mining="semihard"``, ``mining_descriptor`` did not
        help reliably; ``triplet_mining="attention"`` does not collapse and lifted the confusable
        mAP over intra-video relations in 5 seeds of 5 with this mining, but not the accuracy in
        each, and not with ``mining_descriptor="object"``: docs/models.md, HVR-Net)."""
        return cls(feature_dim=32, dim=64, num_classes=35, window=6, positives=2, negatives=4, triplet_margin=1.0,
                   triplet_weight=0.1, init_std=None, max_per_frame=50, score_threshold=0.01)


class _Plain(nn.Module):
    """A stage without relation (the frame-only baseline): ``ReLU(fc(X))``, masked rows 0."""

    def __init__(self, in_dim: int, dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_dim, dim)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, None]:
        out = torch.relu(self.fc(x))
        return (out if mask is None else out * mask[..., None]), None


def encode_boxes(proposals: Tensor, targets: Tensor) -> Tensor:
    """Regression targets ``(..., 4)``: centre offsets in proposal sizes and log size ratios, / DELTA_STDS."""
    pw, ph = proposals[..., 2] - proposals[..., 0], proposals[..., 3] - proposals[..., 1]
    tw, th = targets[..., 2] - targets[..., 0], targets[..., 3] - targets[..., 1]
    d = torch.stack([(targets[..., 0] + targets[..., 2] - proposals[..., 0] - proposals[..., 2]) / (2 * pw),
                     (targets[..., 1] + targets[..., 3] - proposals[..., 1] - proposals[..., 3]) / (2 * ph),
                     torch.log(tw / pw), torch.log(th / ph)], -1)
    return d / d.new_tensor(DELTA_STDS)


def decode_boxes(proposals: Tensor, deltas: Tensor) -> Tensor:
    """The inverse of :func:`encode_boxes` (log ratios clamped at log(1000/16), as mmdetection)."""
    d = deltas * deltas.new_tensor(DELTA_STDS)
    pw, ph = proposals[..., 2] - proposals[..., 0], proposals[..., 3] - proposals[..., 1]
    cx = (proposals[..., 0] + proposals[..., 2]) / 2 + d[..., 0] * pw
    cy = (proposals[..., 1] + proposals[..., 3]) / 2 + d[..., 1] * ph
    limit = math.log(1000 / 16)
    w, h = pw * d[..., 2].clamp(max=limit).exp(), ph * d[..., 3].clamp(max=limit).exp()
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)


class HVRNet(nn.Module):
    """HVR-Net's head (module docstring).

    ``forward(features (B, N, D), mask (B, N)) -> (logits (B, N, C + 1), deltas (B, N, 4), refined (B, N, dim))``:
    one window of a video per row (its frames' proposals flattened), all stages within it (inference).
    In train mode, ``model(batch)`` is the training step (:meth:`training_loss`).
    """

    def __init__(self, cfg: HVRNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        dims = [cfg.feature_dim] + [cfg.dim] * (cfg.intra_stages + 1)
        self.stages = nn.ModuleList(_Plain(a, b) if cfg.relations == "none" else RelationStage(a, b, init_std=cfg.init_std)
                                    for a, b in zip(dims[:-1], dims[1:]))
        self.cls = nn.Linear(cfg.dim, cfg.num_classes + 1)
        self.reg = nn.Linear(cfg.dim, 4)
        nn.init.normal_(self.cls.weight, 0.0, 0.01)
        nn.init.normal_(self.reg.weight, 0.0, 0.001)
        nn.init.zeros_(self.cls.bias)
        nn.init.zeros_(self.reg.bias)

    def intra(self, x: Tensor, mask: Tensor) -> Tensor:
        """The intra-video stages: ``(B, N, D) -> (B, N, dim)``."""
        for stage in self.stages[:-1]:
            x = stage(x, mask)[0]
        return x

    def heads(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.cls(x), self.reg(x)

    def forward(self, features: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor] | dict[str, Tensor]:
        if isinstance(features, dict):
            return self.training_loss(features)
        if mask is None:
            mask = torch.ones(features.shape[:2], dtype=torch.bool, device=features.device)
        x = self.stages[-1](self.intra(features, mask), mask)[0]
        return (*self.heads(x), x)

    def training_loss(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """One step on video triplets. ``batch``: ``features (B, V, T, M, D)``, ``mask (B, V, T, M)``,
        ``labels (B, V, T, M)`` int64 (0 = background), ``targets (B, V, T, M, 4)`` regression
        targets, ``category (B,)`` the item's label, with ``V = 1 + positives + negatives`` videos per
        item: the target, its candidate positives, then its candidate negatives (windows of ``T``
        frames, ``M`` proposals each). The hard positive and negative are mined from descriptors of
        the RoI features (``mining_descriptor``); the losses cover the three chosen videos."""
        cfg = self.cfg
        feats, mask, labels, targets = batch["features"], batch["mask"], batch["labels"], batch["targets"]
        B, V, T, M, D = feats.shape
        chosen = []
        with torch.no_grad():
            if cfg.mining_descriptor == "video":
                desc = video_descriptor(feats.reshape(B * V, T, M, D), mask.reshape(B * V, T, M)).reshape(B, V, D)
            for b in range(B):
                if cfg.mining_descriptor == "video":
                    pos, neg = mine_hard_videos(desc[b, 0], desc[b, 1: 1 + cfg.positives], desc[b, 1 + cfg.positives:])
                else:
                    pos, neg = _mine_by_object(feats[b], mask[b], labels[b], int(batch["category"][b]), cfg.positives)
                chosen.append([0, 1 + pos, 1 + cfg.positives + neg])
        idx = torch.tensor(chosen, device=feats.device)
        pick = lambda t: t[torch.arange(B, device=t.device)[:, None], idx].reshape(B * 3, T * M, *t.shape[4:])  # noqa: E731
        x, m, y, tgt = pick(feats), pick(mask), pick(labels), pick(targets)
        h = self.intra(x, m)
        out: dict[str, Tensor] = {}
        if cfg.relations == "inter":  # the last stage relates the three videos' proposals
            last, h3 = self.stages[-1], h.reshape(B, 3 * T * M, -1)
            h, affinity = last(h3, m.reshape(B, -1))
            if cfg.triplet_similarity == "cosine":
                affinity = last.relation.cosine(last.fc(h3))
            y3, m3 = y.reshape(B, -1), m.reshape(B, -1)
            if cfg.triplet_mining == "attention":
                video = torch.arange(3, device=y.device).repeat_interleave(T * M)
                losses = [proposal_attention_loss(affinity[b], y3[b], video, m3[b]) for b in range(B)]
            else:
                losses = [proposal_triplet_loss(affinity[b], y3[b], m3[b], cfg.triplet_margin, cfg.triplet_mining)
                          for b in range(B)]
            out["loss_triplet"] = torch.stack(losses).mean()
            h = h.reshape(B * 3, T * M, -1)
        else:
            h = self.stages[-1](h, m)[0]
        logits, deltas = self.heads(h)
        valid = m.reshape(-1)
        out["loss_cls"] = F.cross_entropy(logits.reshape(-1, logits.shape[-1])[valid], y.reshape(-1)[valid])
        fg = valid & (y.reshape(-1) > 0)
        out["loss_bbox"] = F.smooth_l1_loss(deltas.reshape(-1, 4)[fg], tgt.reshape(-1, 4)[fg], beta=1.0,
                                            reduction="sum") / valid.sum().clamp(min=1)
        loss = out["loss_cls"] + out["loss_bbox"]
        if "loss_triplet" in out:
            loss = loss + cfg.triplet_weight * out["loss_triplet"]
        with torch.no_grad():
            out["acc"] = (logits.reshape(-1, logits.shape[-1])[valid].argmax(-1) == y.reshape(-1)[valid]).float().mean()
        return {"loss": loss, **out}


def _mine_by_object(feats: Tensor, mask: Tensor, labels: Tensor, category: int, positives: int) -> tuple[int, int]:
    """:func:`~pyvrel.nn.mine_hard_videos` on object descriptors (``mining_descriptor="object"``) of one
    item: ``feats (V, T, M, D)``, ``mask``, ``labels (V, T, M)``; the target and positives described by
    their ``category`` proposals, each negative window by each category in it (the negative of the
    most similar one is chosen). A negative window without any object: its video descriptor."""
    P = 1 + positives
    desc = video_descriptor(feats[:P], mask[:P] & (labels[:P] == category))
    Q, T, M, D = feats[P:].shape
    kinds = labels[P:].unique()
    kinds = kinds[kinds > 0]
    own = mask[P:, None] & (labels[P:, None] == kinds[None, :, None, None])  # (Q, K, T, M)
    owner, kind = torch.nonzero(own.flatten(2).any(-1), as_tuple=True)
    if len(owner):
        candidates = video_descriptor(feats[P:][owner], own[owner, kind])
    else:
        owner, candidates = torch.arange(Q, device=feats.device), video_descriptor(feats[P:], mask[P:])
    pos, neg = mine_hard_videos(desc[0], desc[1:], candidates)
    return pos, int(owner[neg])
