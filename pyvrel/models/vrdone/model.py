"""VrdONE network: BSA + SOS stem, multiscale local-attention encoder, FPN fuse, query decoder.

Layout: every feature map is channels-first ``(B, C, T)`` with a ``(B, 1, T)`` bool prefix mask,
as in ActionFormer/VrdONE. Shapes quoted for the VidOR preset.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pyvrel.models.vrdone.config import VrdONEConfig
from pyvrel.nn import AffineDropPath, ChannelLayerNorm, MaskedConv1D, TransformerBlock, mask_lengths
from pyvrel.ops import local_attention

__all__ = ["ConvMLP", "ConvQKVAttention", "SOSLayer", "VrdONEBackbone", "FPNFuse", "VrdONEDecoder", "VrdONE",
           "build_vrdone"]


class ConvMLP(nn.Module):
    """``num_layers`` 1-D convs (kernel ``k``) with GELU between them; biases start at 0."""

    def __init__(self, n_in: int, n_hidden: int, n_out: int, num_layers: int = 2, kernel_size: int = 1) -> None:
        super().__init__()
        dims = [n_in] + [n_hidden] * (num_layers - 1) + [n_out]
        self.layers = nn.ModuleList(nn.Conv1d(a, b, kernel_size, padding=kernel_size // 2)
                                    for a, b in zip(dims, dims[1:]))
        for conv in self.layers:
            nn.init.zeros_(conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        for i, conv in enumerate(self.layers):
            x = conv(x)
            if i < len(self.layers) - 1:
                x = F.gelu(x)
        return x


class ConvQKVAttention(nn.Module):
    """Multi-head attention with separate q, k, v inputs (VrdONE's ``MaskedMHCA_QKV`` /
    ``MaskedMHA_QKV``), global or local.

    With ``conv=True`` each of q, k, v first goes through a depthwise conv (q kernel
    ``q_kernel``, k/v kernel 3) and a channel LayerNorm; then 1×1 projections, attention over the
    valid keys, a 1×1 output projection, × query mask. ``window=None`` is global attention
    (fully masked rows give 0); otherwise each query attends to ``window`` keys around its centre:
    its own position when ``Tq == Tk``, else ``floor((i + 0.5) · valid_k / Tq)`` (queries spread
    over the valid memory).

    ``forward(q (B, C, Tq), k (B, C, Tk), v (B, C, Tk), q_mask (B, 1, Tq), kv_mask (B, 1, Tk)) -> (B, C, Tq)``.
    """

    def __init__(self, n_embd: int, n_head: int, *, conv: bool = True, q_kernel: int = 3,
                 window: int | None = None) -> None:
        super().__init__()
        self.n_head, self.window, self.conv = n_head, window, conv
        if conv:
            self.q_conv = MaskedConv1D(n_embd, n_embd, q_kernel, padding=q_kernel // 2, groups=n_embd, bias=False)
            self.k_conv = MaskedConv1D(n_embd, n_embd, 3, padding=1, groups=n_embd, bias=False)
            self.v_conv = MaskedConv1D(n_embd, n_embd, 3, padding=1, groups=n_embd, bias=False)
            self.q_norm, self.k_norm, self.v_norm = (ChannelLayerNorm(n_embd) for _ in range(3))
        self.query, self.key, self.value, self.proj = (nn.Conv1d(n_embd, n_embd, 1) for _ in range(4))
        for c in (self.query, self.key, self.value, self.proj):
            nn.init.zeros_(c.bias)

    def forward(self, q: Tensor, k: Tensor, v: Tensor, q_mask: Tensor, kv_mask: Tensor) -> Tensor:
        if self.conv:
            q = self.q_norm(self.q_conv(q, q_mask)[0])
            k = self.k_norm(self.k_conv(k, kv_mask)[0])
            v = self.v_norm(self.v_conv(v, kv_mask)[0])
        q, k, v = self.query(q), self.key(k), self.value(v)
        B, C, Tq = q.shape
        Tk, H = k.shape[-1], self.n_head
        q, k, v = (t.reshape(B, H, C // H, t.shape[-1]).transpose(2, 3) for t in (q, k, v))
        if self.window is None:
            scores = (q @ k.transpose(2, 3)) * (C // H) ** -0.5
            valid = kv_mask[:, :, None, :]  # (B, 1, 1, Tk)
            scores = scores.masked_fill(~valid, float("-inf"))
            attn = torch.softmax(scores, dim=-1).nan_to_num(0.0)  # rows without a valid key -> 0
            out = attn @ v
        else:
            kv_len = mask_lengths(kv_mask)
            centers = None
            if Tq != Tk:
                i = torch.arange(Tq, device=q.device, dtype=torch.float64)
                centers = torch.floor((i[None] + 0.5) * kv_len[:, None].double() / Tq).long()
                centers = centers.clamp(max=Tk - 1)
            out = local_attention(q, k, v, self.window, q_lengths=mask_lengths(q_mask), kv_lengths=kv_len, centers=centers)
        out = out.transpose(2, 3).reshape(B, C, Tq)
        return self.proj(out) * q_mask.to(out.dtype)


class SOSLayer(nn.Module):
    """Subject–object synergy layer (VrdONE's ``MaskedConvTransformerDecoderLayer`` without FFN)::

        t2 = LN1(tgt); tgt = tgt + DP(SelfAttn(q=t2, k=t2, v=tgt))     # v un-normalised (code)
        tgt = tgt + DP(CrossAttn(q=LN2(tgt), k=memory, v=memory))

    Returns ``tgt`` *including* its residual (the backbone adds the input again: the quirk).
    """

    def __init__(self, n_embd: int, n_head: int, path_pdrop: float, window: int | None) -> None:
        super().__init__()
        self.ln1, self.ln2 = ChannelLayerNorm(n_embd), ChannelLayerNorm(n_embd)
        self.self_attn = ConvQKVAttention(n_embd, n_head, q_kernel=3, window=window)
        self.cross_attn = ConvQKVAttention(n_embd, n_head, q_kernel=3, window=window)
        self.dp1 = AffineDropPath(n_embd, path_pdrop) if path_pdrop > 0 else nn.Identity()
        self.dp2 = AffineDropPath(n_embd, path_pdrop) if path_pdrop > 0 else nn.Identity()

    def forward(self, tgt: Tensor, memory: Tensor, mask: Tensor) -> Tensor:
        t2 = self.ln1(tgt)
        tgt = tgt + self.dp1(self.self_attn(t2, t2, tgt, mask, mask))
        return tgt + self.dp2(self.cross_attn(self.ln2(tgt), memory, memory, mask, mask))


class _Embed(nn.Module):
    """``n`` × (MaskedConv1D(k) → LN → ReLU); the first conv maps ``n_in`` to ``n_out``."""

    def __init__(self, n_in: int, n_out: int, n: int, kernel_size: int, bias: bool) -> None:
        super().__init__()
        self.convs = nn.ModuleList(MaskedConv1D(n_in if i == 0 else n_out, n_out, kernel_size,
                                                padding=kernel_size // 2, bias=bias) for i in range(n))
        self.norms = nn.ModuleList(ChannelLayerNorm(n_out) for _ in range(n))

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        for conv, norm in zip(self.convs, self.norms):
            x = F.relu(norm(conv(x, mask)[0]))
        return x


class VrdONEBackbone(nn.Module):
    """BSA + SOS stem + multiscale branch (``MaskConvTransformerBackbone[WithCLIP]``).

    ``forward(x (B, in_channels, T), mask (B, 1, T)) -> (feats, masks)``: ``num_levels`` maps
    ``(B, embd_dim, T / 2^l)`` and their masks. T must be a multiple of ``scale_factor^arch[2]``.
    """

    def __init__(self, cfg: VrdONEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        D, k = cfg.embd_dim, cfg.embd_kernel_size
        self.vis_embd = _Embed(cfg.visual_dim, D, cfg.arch[0], k, bias=False)
        if cfg.clip_dim:
            self.clip_embd = _Embed(cfg.clip_dim, D, 2, k, bias=False)
            self.visual_clip_fuse = ConvMLP(2 * D, D, D)
        self.box_embd = _Embed(cfg.entity_box_dim, D, 1, k, bias=True)
        self.visual_bbox_fuse = ConvMLP(2 * D, D, D)
        self.stem = nn.ModuleList(TransformerBlock(D, cfg.n_head, (1, 1), mha_win_size=cfg.window,
                                                   path_pdrop=cfg.path_pdrop) for _ in range(cfg.arch[1]))
        self.s_attn = nn.ModuleList(SOSLayer(D, cfg.n_head, cfg.path_pdrop, cfg.sos_window) for _ in range(cfg.arch[1]))
        self.o_attn = nn.ModuleList(SOSLayer(D, cfg.n_head, cfg.path_pdrop, cfg.sos_window) for _ in range(cfg.arch[1]))
        self.s_norm, self.o_norm = ChannelLayerNorm(D), ChannelLayerNorm(D)
        self.so_fuse = ConvMLP(2 * D, D, D)
        self.rel_box_embd = MaskedConv1D(cfg.pair_box_dim, D, k, padding=k // 2, bias=True)
        self.so_box_fuse = ConvMLP(2 * D, D, D)
        s = cfg.scale_factor
        self.branch = nn.ModuleList(TransformerBlock(D, cfg.n_head, (s, s), mha_win_size=cfg.window,
                                                     path_pdrop=cfg.path_pdrop) for _ in range(cfg.arch[2]))

    def split(self, x: Tensor) -> dict[str, Tensor]:
        """The input's channel slices, in the official order."""
        c = self.cfg
        sizes = [c.visual_dim, c.visual_dim] + ([c.clip_dim, c.clip_dim] if c.clip_dim else []) + \
            [c.pair_box_dim, c.entity_box_dim, c.entity_box_dim]
        if x.shape[1] != sum(sizes):
            raise ValueError(f"VrdONE: input has {x.shape[1]} channels, the config expects {sum(sizes)}")
        names = ["s_vis", "o_vis"] + (["s_clip", "o_clip"] if c.clip_dim else []) + ["rel", "s_box", "o_box"]
        return dict(zip(names, torch.split(x, sizes, dim=1)))

    def entity(self, vis: Tensor, clip: Tensor | None, box: Tensor, mask: Tensor) -> Tensor:
        m = mask.to(vis.dtype)
        f = self.vis_embd(vis, mask)
        if clip is not None:
            f = self.visual_clip_fuse(torch.cat([f, self.clip_embd(clip, mask)], 1)) * m
        return self.visual_bbox_fuse(torch.cat([f, self.box_embd(box, mask)], 1)) * m

    def forward(self, x: Tensor, mask: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        p = self.split(x)
        m = mask.to(x.dtype)
        s = self.entity(p["s_vis"], p.get("s_clip"), p["s_box"], mask)
        o = self.entity(p["o_vis"], p.get("o_clip"), p["o_box"], mask)
        for blk, sa, oa in zip(self.stem, self.s_attn, self.o_attn):
            s, o = blk(s, mask)[0], blk(o, mask)[0]
            s_mut, o_mut = sa(s, o, mask), oa(o, s, mask)  # both from the pre-update features
            if self.cfg.sos_double_residual:
                s, o = s + s_mut, o + o_mut  # s_mut already holds s: 2s + Δ (official)
            else:
                s, o = s_mut, o_mut
        s, o = self.s_norm(s), self.o_norm(o)
        so = self.so_fuse(torch.cat([s, o], 1)) * m
        rel = self.rel_box_embd(p["rel"], mask)[0]
        so = self.so_box_fuse(torch.cat([so, rel], 1)) * m
        feats, masks = [so], [mask]
        for blk in self.branch:
            so, mask = blk(so, mask)
            feats.append(so)
            masks.append(mask)
        return feats, masks


class FPNFuse(nn.Module):
    """``FPN1D_Fuse``: top-down fusion of the pyramid into one ``(B, fpn_dim, T)`` mask-feature map."""

    def __init__(self, in_dim: int, dim: int, levels: int, scale: int) -> None:
        super().__init__()
        self.scale = scale
        self.in_norms = nn.ModuleList(ChannelLayerNorm(in_dim) for _ in range(levels))
        self.lateral = nn.ModuleList(
            MaskedConv1D(in_dim, dim, 3 if i == levels - 1 else 1, padding=1 if i == levels - 1 else 0,
                         groups=dim if i == levels - 1 else 1, bias=False) for i in range(levels))
        self.lateral_norms = nn.ModuleList(ChannelLayerNorm(dim) for _ in range(levels))
        self.fuse = nn.ModuleList(MaskedConv1D(dim, dim, 3, padding=1, groups=dim, bias=False)
                                  for _ in range(levels - 1))
        self.fuse_norms = nn.ModuleList(ChannelLayerNorm(dim) for _ in range(levels - 1))
        self.out = MaskedConv1D(dim, dim, 3, padding=1, groups=dim, bias=True)

    def forward(self, feats: list[Tensor], masks: list[Tensor]) -> Tensor:
        top = len(feats) - 1
        y = self.lateral_norms[top](self.lateral[top](self.in_norms[top](feats[top]), masks[top])[0])
        for i in range(top - 1, -1, -1):
            cur = self.lateral_norms[i](self.lateral[i](self.in_norms[i](feats[i]), masks[i])[0])
            y = cur + F.interpolate(y, scale_factor=self.scale, mode="nearest")
            y = self.fuse_norms[i](self.fuse[i](y, masks[i])[0])
        return self.out(y, masks[0])[0]


class _DecoderLayer(nn.Module):
    """Decoder layer: global self-attention among the queries, cross-attention to the memory
    (query conv kernel 1, k/v kernel 3), FFN; pre-LN with stochastic depth."""

    def __init__(self, cfg: VrdONEConfig) -> None:
        super().__init__()
        D, p = cfg.dec_dim, cfg.path_pdrop
        self.ln1, self.ln2, self.ln3 = (ChannelLayerNorm(D) for _ in range(3))
        self.self_attn = ConvQKVAttention(D, cfg.dec_heads, conv=False)
        self.cross_attn = ConvQKVAttention(D, cfg.dec_heads, q_kernel=1, window=cfg.dec_cross_window)
        self.ffn = ConvMLP(D, cfg.dec_hidden, D)
        self.dps = nn.ModuleList(AffineDropPath(D, p) if p > 0 else nn.Identity() for _ in range(3))

    def forward(self, tgt: Tensor, pos: Tensor, memory: Tensor, mem_mask: Tensor, q_mask: Tensor) -> Tensor:
        t2 = self.ln1(tgt) + pos
        tgt = tgt + self.dps[0](self.self_attn(t2, t2, tgt, q_mask, q_mask))
        tgt = tgt + self.dps[1](self.cross_attn(self.ln2(tgt) + pos, memory, memory, q_mask, mem_mask))
        return tgt + self.dps[2](self.ffn(self.ln3(tgt)))


class VrdONEDecoder(nn.Module):
    """``MaskedTransformerPredictor``: queries attend to the coarsest level; per layer a class
    logit ``(B, Nq, C + 1)`` (index 0 = background) and a mask ``(B, Nq, T)`` from the FPN map."""

    def __init__(self, cfg: VrdONEConfig) -> None:
        super().__init__()
        D = cfg.dec_dim
        self.mem_norm = ChannelLayerNorm(cfg.embd_dim)
        self.mem_proj = nn.Conv1d(cfg.embd_dim, D, 1)
        nn.init.zeros_(self.mem_proj.bias)
        self.query_embed = nn.Embedding(cfg.num_queries, D)
        self.layers = nn.ModuleList(_DecoderLayer(cfg) for _ in range(cfg.dec_layers))
        self.norm = ChannelLayerNorm(D)
        self.class_embed = nn.Conv1d(D, cfg.num_classes + 1, 1)
        nn.init.constant_(self.class_embed.bias, -math.log((1 - cfg.cls_prior_prob) / cfg.cls_prior_prob))
        self.mask_embed = ConvMLP(D, D, cfg.fpn_dim, num_layers=3)

    def forward(self, memory: Tensor, mem_mask: Tensor, mask_features: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Returns ``logits (L, B, Nq, C + 1)`` and ``masks (L, B, Nq, T)`` (padding = -10) for
        every decoder layer ``L``."""
        B = memory.shape[0]
        src = self.mem_proj(self.mem_norm(memory)) * mem_mask.to(memory.dtype)
        pos = self.query_embed.weight.t().unsqueeze(0).expand(B, -1, -1)  # (B, D, Nq)
        tgt = torch.zeros_like(pos)
        q_mask = torch.ones(B, 1, pos.shape[-1], dtype=torch.bool, device=pos.device)
        hs = []
        for layer in self.layers:
            tgt = layer(tgt, pos, src, mem_mask, q_mask)
            hs.append(self.norm(tgt))
        h = torch.stack(hs)  # (L, B, D, Nq)
        L = h.shape[0]
        flat = h.flatten(0, 1)
        logits = self.class_embed(flat).transpose(1, 2).reshape(L, B, -1, self.class_embed.out_channels)
        emb = self.mask_embed(flat).reshape(L, B, -1, h.shape[-1])
        masks = torch.einsum("lbcq,bct->lbqt", emb, mask_features)
        masks = masks.masked_fill(~mask[None], -10.0)
        return logits, masks


class VrdONE(nn.Module):
    """The full model. ``forward(x (B, in_channels, T), mask (B, 1, T) bool) -> dict`` with
    ``pred_logits (B, Nq, C + 1)``, ``pred_masks (B, Nq, T)`` (last layer) and ``aux_outputs``
    (list of the same for the earlier layers, when ``deep_supervision``)."""

    def __init__(self, cfg: VrdONEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = VrdONEBackbone(cfg)
        self.neck = FPNFuse(cfg.embd_dim, cfg.fpn_dim, cfg.num_levels, cfg.scale_factor)
        self.decoder = VrdONEDecoder(cfg)

    def forward(self, x: Tensor, mask: Tensor) -> dict:
        if x.dim() != 3 or mask.shape != (x.shape[0], 1, x.shape[2]) or mask.dtype != torch.bool:
            raise ValueError(f"VrdONE: expected x (B, C, T) and a bool mask (B, 1, T), got {tuple(x.shape)} and "
                             f"{tuple(mask.shape)} {mask.dtype}")
        div = self.cfg.scale_factor ** self.cfg.arch[2]
        if x.shape[2] % div:
            raise ValueError(f"VrdONE: length {x.shape[2]} must be a multiple of {div} (pad with pad_batch)")
        x = x * mask.to(x.dtype)  # the official collator zero-pads; make that so for any input
        feats, masks = self.backbone(x, mask)
        mask_features = self.neck(feats, masks)
        logits, pmasks = self.decoder(feats[-1], masks[-1], mask_features, mask)
        out = {"pred_logits": logits[-1], "pred_masks": pmasks[-1]}
        if self.cfg.deep_supervision:
            out["aux_outputs"] = [{"pred_logits": a, "pred_masks": b} for a, b in zip(logits[:-1], pmasks[:-1])]
        return out


def build_vrdone(config: VrdONEConfig) -> VrdONE:
    """Build VrdONE; every Linear/Conv1d bias starts at 0 except the classifier's prior bias."""
    return VrdONE(config)
