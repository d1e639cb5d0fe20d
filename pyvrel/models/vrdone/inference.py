"""VrdONE inference to the official prediction JSON (the official ``MaskVRD.forward_test``).

Per video: de-duplicate tracklets, build every ordered pair that overlaps in time, run the model in
batches (short pairs padded to ``max_seq_len``, longer ones to a multiple of the division factor),
take the top-k predicates of every query, read a span from its mask, score the triplet with the
mean of the two detection scores and the predicate probability, keep the best ``n_max_pair``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from pyvrel.data import Relation
from pyvrel.data.tracklets import Tracklet, build_pairs, deduplicate
from pyvrel.models.vrdone.config import VrdONEConfig
from pyvrel.models.vrdone.inputs import pad_batch, pair_tensor

__all__ = ["mask_spans", "predict_video"]


def mask_spans(mask_logits: Tensor, valid: int, stride: int, offset: int = 0) -> list[tuple[int, int] | None]:
    """Frame span ``[start, end)`` (relative to the pair's first frame) of each query's mask
    ``(Nq, T)``: foreground ``sigmoid > 0.5`` on the first ``valid`` steps; ``start = first·stride +
    offset``, ``end = last·stride + offset + 1`` (holes filled); ``None`` without foreground."""
    fg = (torch.sigmoid(mask_logits[:, :valid]) > 0.5).cpu().numpy()
    out: list[tuple[int, int] | None] = []
    for row in fg:
        idx = np.flatnonzero(row)
        out.append(None if len(idx) == 0 else (int(idx[0]) * stride + offset, int(idx[-1]) * stride + offset + 1))
    return out


@torch.no_grad()
def predict_video(model: torch.nn.Module, cfg: VrdONEConfig, tracklets: list[Tracklet], predicates: list[str],
                  width: float, height: float, *, dedup: bool = True) -> list[Relation]:
    """Predicted relations of one video (``score``-sorted, at most ``n_max_pair``).

    ``predicates[c - 1]`` names class ``c`` (class 0 is background). The model runs in eval mode
    on the device and in the dtype of its parameters.
    """
    if len(predicates) != cfg.num_classes:
        raise ValueError(f"predict_video: {len(predicates)} predicate names for {cfg.num_classes} classes")
    was_training = model.training
    model.eval()
    param = next(model.parameters())
    tracks = deduplicate(tracklets, cfg.dedup_threshold) if dedup else list(tracklets)
    pairs = build_pairs(tracks, cfg.proposal_min_frames, cfg.feat_stride)
    cands: list[tuple[float, int, int, int, int]] = []  # score, pair, class, start, end (absolute frames)
    stride = cfg.feat_stride
    steps = [-(-(e - b) // stride) for _, _, b, e in pairs]
    short = [i for i, n in enumerate(steps) if n <= cfg.max_seq_len]
    long = [i for i, n in enumerate(steps) if n > cfg.max_seq_len]
    groups = [short[i: i + cfg.max_so_pair] for i in range(0, len(short), cfg.max_so_pair)]
    groups += [long[i: i + cfg.max_so_pair] for i in range(0, len(long), cfg.max_so_pair)]
    for group in groups:
        feats = []
        for i in group:
            s, o, b, e = pairs[i]
            ts, to = tracks[s], tracks[o]
            cs, co = slice(b - ts.start, e - ts.start), slice(b - to.start, e - to.start)
            feats.append(pair_tensor(ts.features[cs], to.features[co], ts.boxes[cs], to.boxes[co], width, height,
                                     stride=stride, sub_clip=None if ts.clip is None else ts.clip[cs],
                                     obj_clip=None if to.clip is None else to.clip[co]))
        x, mask = pad_batch(feats, cfg.max_seq_len, cfg.max_div_factor)
        out = model(x.to(param.device, param.dtype), mask.to(param.device))
        probs = torch.softmax(out["pred_logits"].float(), -1)[..., 1:]  # (B, Nq, C)
        top_p, top_c = probs.topk(min(cfg.topk, cfg.num_classes), dim=-1)
        for k, i in enumerate(group):
            s, o, b, e = pairs[i]
            spans = mask_spans(out["pred_masks"][k], feats[k].shape[1], stride)
            for q, span in enumerate(spans):
                if span is None or span[1] - span[0] < cfg.pred_min_frames:
                    continue
                for p, c in zip(top_p[k, q].tolist(), top_c[k, q].tolist()):
                    score = (tracks[s].score + p + tracks[o].score) / 3
                    cands.append((score, i, c + 1, b + span[0], min(b + span[1], e)))
    cands.sort(key=lambda t: -t[0])
    rels = []
    for score, i, c, start, end in cands[: cfg.n_max_pair]:
        s, o, _, _ = pairs[i]
        ts, to = tracks[s], tracks[o]
        rels.append(Relation((ts.category, predicates[c - 1], to.category), (start, end),
                             ts.boxes[start - ts.start: end - ts.start].astype(np.float64),
                             to.boxes[start - to.start: end - to.start].astype(np.float64), float(score)))
    model.train(was_training)
    return rels
