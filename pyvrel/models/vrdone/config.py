"""VrdONE configuration: one dataclass, presets for VidOR, ImageNet-VidVRD and the synthetic world.

Values follow the official configs (``configs/vidor.yaml``, ``configs/vidvrd.yaml`` of the public
VrdONE code). Two quirks of the public code are reproduced by default and can be
corrected:

* ``sos_double_residual``: the SOS layer returns ``tgt + Δ`` and the backbone adds ``s``
  again, so ``s_new = 2·s + Δ``. ``False`` gives ``s_new = s + Δ``.
* ``mask_focal_over_padding``: the mask focal loss is averaged over all ``T`` positions,
  padding included. ``False`` averages over the valid positions only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from pyvrel.engine.config import ConfigError

__all__ = ["VrdONEConfig"]


@dataclass(frozen=True)
class VrdONEConfig:
    """Hyper-parameters of VrdONE (model, targets, losses and inference).

    Attributes (model):
        visual_dim: per-entity visual feature size (MEGA RoI features: 1024).
        clip_dim: extra per-entity feature stream fused by an MLP before BSA (VrdONE-X: 512); 0 = none.
        entity_box_dim, pair_box_dim: θ_a (8) and θ_r (5) sizes.
        embd_dim: backbone width. arch: (#visual embedding convs, #stem (SOS) blocks, #branch blocks).
        embd_kernel_size: kernel of the embedding convs. scale_factor: downsampling per branch block.
        max_seq_len: training length (and the short-pair batch length at test).
        window: local attention window ``k_w`` of the backbone blocks. n_head: backbone heads.
        path_pdrop: stochastic depth of all residual branches.
        sos_window: ``None`` = global SOS attention (official default), else a local window.
        fpn_dim: FPN / mask-feature width. dec_dim, dec_heads, dec_hidden, dec_layers: decoder.
        num_queries: ``N_q``. num_classes: predicates, background excluded (logits have +1).
        dec_cross_window: ``None`` = global decoder cross-attention (official), else a local
            window around each query's centre on the memory.
        cls_prior_prob: initial foreground probability of the classifier bias.
    Attributes (training): cost_*/loss_* weights, eos_coef, deep_supervision, with_fuzzy,
        fuzzy_scale, max_preds (drop pairs with more relations), feat_stride.
    Attributes (inference): topk predicates per query, pred_min_frames, n_max_pair (per video),
        proposal_min_frames, max_so_pair (pairs per batch), dedup_threshold.
    """

    visual_dim: int = 1024
    clip_dim: int = 0
    entity_box_dim: int = 8
    pair_box_dim: int = 5
    embd_dim: int = 512
    arch: tuple[int, int, int] = (2, 2, 3)
    embd_kernel_size: int = 3
    scale_factor: int = 2
    max_seq_len: int = 512
    window: int = 9
    n_head: int = 8
    path_pdrop: float = 0.1
    sos_window: int | None = None
    sos_double_residual: bool = True
    fpn_dim: int = 256
    dec_dim: int = 256
    dec_heads: int = 8
    dec_hidden: int = 1024
    dec_layers: int = 4
    num_queries: int = 9
    num_classes: int = 50
    dec_cross_window: int | None = None
    cls_prior_prob: float = 0.01
    # training
    deep_supervision: bool = True
    cost_class: float = 2.0
    cost_mask: float = 2.0
    cost_dice: float = 5.0
    loss_class: float = 2.0
    loss_mask: float = 2.0
    loss_dice: float = 5.0
    eos_coef: float = 0.1
    mask_focal_over_padding: bool = True
    with_fuzzy: bool = False
    fuzzy_scale: float = 0.85
    max_preds: int = 9
    feat_stride: int = 4
    # inference
    topk: int = 6
    pred_min_frames: int = 5
    n_max_pair: int = 200
    proposal_min_frames: int = 5
    max_so_pair: int = 200
    dedup_threshold: float = 0.9

    def __post_init__(self) -> None:
        for heads, dim in (("n_head", "embd_dim"), ("dec_heads", "dec_dim")):
            if getattr(self, heads) < 1 or getattr(self, dim) < 1:
                raise ConfigError(heads if getattr(self, heads) < 1 else dim, "must be >= 1")
            if getattr(self, dim) % getattr(self, heads):
                raise ConfigError(heads, f"{dim}={getattr(self, dim)} must be divisible by {heads}="
                                         f"{getattr(self, heads)}")
        if self.max_seq_len % self.max_div_factor:
            raise ValueError(f"VrdONEConfig: max_seq_len {self.max_seq_len} must be a multiple of the pyramid's "
                             f"division factor {self.max_div_factor}")
        if self.window < 1 or self.num_queries < 1 or self.num_classes < 1 or self.feat_stride < 1:
            raise ValueError("VrdONEConfig: window, num_queries, num_classes and feat_stride must be >= 1")

    @property
    def in_channels(self) -> int:
        """Channels of the input tensor: ``2·visual (+ 2·clip) + 5 + 2·8`` (2069 for VidOR)."""
        return 2 * (self.visual_dim + self.clip_dim) + self.pair_box_dim + 2 * self.entity_box_dim

    @property
    def num_levels(self) -> int:
        return self.arch[2] + 1

    @property
    def max_div_factor(self) -> int:
        """``max_l scale^l · (w // 2) · 2`` over the pyramid levels (64 for w=9, 48 for w=7): test
        sequences longer than ``max_seq_len`` are padded to a multiple of it."""
        return self.scale_factor ** self.arch[2] * max(1, (self.window // 2) * 2)

    @classmethod
    def vidor(cls, **overrides) -> "VrdONEConfig":
        """VidOR (``configs/vidor.yaml``); ``clip_dim=512, num_queries=10, max_preds=10`` is VrdONE-X."""
        return replace(cls(), **overrides)

    @classmethod
    def vidvrd(cls, **overrides) -> "VrdONEConfig":
        """ImageNet-VidVRD (``configs/vidvrd.yaml``)."""
        base = cls(num_classes=132, max_seq_len=96, window=7, n_head=4, dec_heads=4, cost_class=1.0, cost_mask=5.0,
                   cost_dice=5.0, loss_class=1.0, loss_mask=5.0, loss_dice=5.0, with_fuzzy=True, feat_stride=1,
                   topk=8, pred_min_frames=2, proposal_min_frames=2)
        return replace(base, **overrides)

    @classmethod
    def synthetic(cls, **overrides) -> "VrdONEConfig":
        """A small model for the synthetic world (32-d appearance features, VidVRD predicates):
        CPU-trainable in minutes. Stride 2 over videos of up to 256 frames."""
        base = cls(visual_dim=32, embd_dim=64, n_head=4, window=5, max_seq_len=128, fpn_dim=64, dec_dim=64,
                   dec_heads=4, dec_hidden=128, num_queries=12, max_preds=12, num_classes=132, feat_stride=2,
                   cost_class=2.0, cost_mask=2.0, cost_dice=5.0, topk=6, pred_min_frames=5, proposal_min_frames=5,
                   path_pdrop=0.0)
        return replace(base, **overrides)
