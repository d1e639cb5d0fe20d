"""VrdONE inputs: positions θ_r / θ_a, the per-pair feature tensor, padding, targets.

One ordered subject–object pair is one sequence over the frames both tracklets share, sampled
with ``x[offset::stride]``. Its tensor is ``cat([s_vis, o_vis, (s_clip, o_clip), θ_r, θ_a(s),
θ_a(o)], -1).T`` of shape ``(C, L)``, as in the official code.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "relative_position",
    "absolute_position",
    "pair_tensor",
    "pad_batch",
    "segment_to_grid",
    "segment_mask",
    "fuzzy_mask",
    "truncate",
]


def _clamp(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float64).copy()
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"boxes must have shape (L, 4), got {b.shape}")
    b[:, 0:2] = np.maximum(b[:, 0:2], 0.0)
    b[:, 2] = np.minimum(b[:, 2], width - 1)
    b[:, 3] = np.minimum(b[:, 3], height - 1)
    return b


def relative_position(sub_boxes: np.ndarray, obj_boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    """θ_r ``(L, 5)`` float32 of VrdONE (``bbox_to_spatial_features``), pixel boxes ``(L, 4)``.

    After clamping to the image: ``[(s_cx - o_cx) / o_cx, (s_cy - o_cy) / o_cy, log(s_w / o_w),
    log(s_h / o_h), log(s_w s_h / (o_w o_h))]`` with ``w = x2 - x1``. The offsets are divided by the
    object's *centre coordinates* (the official code; VidVRD-II divides by w/h).
    """
    s, o = _clamp(sub_boxes, width, height), _clamp(obj_boxes, width, height)
    if s.shape != o.shape:
        raise ValueError(f"sub_boxes and obj_boxes must have the same shape, got {s.shape} and {o.shape}")
    scx, scy, sw, sh = (s[:, 0] + s[:, 2]) / 2, (s[:, 1] + s[:, 3]) / 2, s[:, 2] - s[:, 0], s[:, 3] - s[:, 1]
    ocx, ocy, ow, oh = (o[:, 0] + o[:, 2]) / 2, (o[:, 1] + o[:, 3]) / 2, o[:, 2] - o[:, 0], o[:, 3] - o[:, 1]
    out = np.stack([(scx - ocx) / ocx, (scy - ocy) / ocy, np.log(sw / ow), np.log(sh / oh),
                    np.log(sw * sh / (ow * oh))], 1)
    return out.astype(np.float32)


def absolute_position(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    """θ_a ``(L, 8)`` float32 of one entity (``entity_bbox_to_spatial_features``).

    Boxes are normalised by ``width``/``height``; columns ``[cx, dcx, cy, dcy, w, dw, h, dh]`` with
    ``d*[t] = *[t] - *[t-1]`` for ``t >= 1`` and ``d*[0] = d*[1] - (d*[2] - d*[1])`` when ``L > 2``
    (linear extrapolation), ``d*[0] = d*[1]`` when ``L == 2`` and 0 when ``L == 1``.
    """
    b = np.asarray(boxes, dtype=np.float64)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"boxes must have shape (L, 4), got {b.shape}")
    x1, y1, x2, y2 = b[:, 0] / width, b[:, 1] / height, b[:, 2] / width, b[:, 3] / height
    cols = []
    for v in ((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1):
        d = np.zeros_like(v)
        if len(v) > 1:
            d[1:] = v[1:] - v[:-1]
            d[0] = d[1] - (d[2] - d[1]) if len(v) > 2 else d[1]
        cols += [v, d]
    return np.stack(cols, 1).astype(np.float32)


def pair_tensor(sub_vis: np.ndarray, obj_vis: np.ndarray, sub_boxes: np.ndarray, obj_boxes: np.ndarray,
                width: float, height: float, *, stride: int = 1, offset: int = 0,
                sub_clip: np.ndarray | None = None, obj_clip: np.ndarray | None = None) -> Tensor:
    """The ``(C, L')`` float32 input of one pair over its shared frames.

    Args:
        sub_vis, obj_vis (ndarray[L, D]): per-frame visual features of the shared frames.
        sub_boxes, obj_boxes (ndarray[L, 4]): pixel boxes of the same frames.
        stride, offset: frames ``offset, offset + stride, ...`` are kept (``L' = ceil((L - offset) / stride)``).
        sub_clip, obj_clip (ndarray[L, Dc], optional): the extra stream (VrdONE-X).
    θ_a is computed on the *sampled* boxes, as the official code does.
    """
    n = len(sub_boxes)
    for name, a in (("sub_vis", sub_vis), ("obj_vis", obj_vis), ("obj_boxes", obj_boxes)):
        if len(a) != n:
            raise ValueError(f"pair_tensor: {name} has {len(a)} frames, sub_boxes has {n}")
    if (sub_clip is None) != (obj_clip is None):
        raise ValueError("pair_tensor: give both sub_clip and obj_clip or neither")
    sl = slice(offset, None, stride)
    sb, ob = np.asarray(sub_boxes)[sl], np.asarray(obj_boxes)[sl]
    parts = [np.asarray(sub_vis)[sl], np.asarray(obj_vis)[sl]]
    if sub_clip is not None:
        parts += [np.asarray(sub_clip)[sl], np.asarray(obj_clip)[sl]]
    parts += [relative_position(sb, ob, width, height), absolute_position(sb, width, height),
              absolute_position(ob, width, height)]
    return torch.from_numpy(np.concatenate([p.astype(np.float32) for p in parts], 1).T.copy())


def pad_batch(feats: list[Tensor], max_seq_len: int, div_factor: int) -> tuple[Tensor, Tensor]:
    """Stack ``(C, L_i)`` tensors into ``x (B, C, T)`` and a prefix mask ``(B, 1, T)`` bool.

    ``T = max_seq_len`` when every ``L_i <= max_seq_len``, else the longest length rounded up to a
    multiple of ``div_factor`` (the official test-time rule for long pairs).
    """
    if not feats:
        raise ValueError("pad_batch: feats is empty")
    longest = max(f.shape[1] for f in feats)
    T = max_seq_len if longest <= max_seq_len else -(-longest // div_factor) * div_factor
    x = feats[0].new_zeros(len(feats), feats[0].shape[0], T)
    mask = torch.zeros(len(feats), 1, T, dtype=torch.bool)
    for i, f in enumerate(feats):
        x[i, :, : f.shape[1]] = f
        mask[i, 0, : f.shape[1]] = True
    return x, mask


def segment_to_grid(begin: int, end: int, so_start: int, offset: int, stride: int) -> tuple[int, int]:
    """Frames ``[begin, end)`` on the feature grid of a pair starting at ``so_start``:
    ``l = ceil((begin - so_start - offset) / stride)``, ``r = ceil((end - so_start - offset) / stride)``."""
    return (math.ceil((begin - so_start - offset) / stride), math.ceil((end - so_start - offset) / stride))


def segment_mask(l: int, r: int, length: int) -> Tensor:
    """Hard target ``(length,)``: ones on ``[l, r)``."""
    m = torch.zeros(length)
    m[max(l, 0): max(min(r, length), 0)] = 1.0
    return m


def fuzzy_mask(l: int, r: int, valid: int, length: int, scale: float = 0.85) -> Tensor:
    """Soft target of VidVRD (``with_fuzzy``). With ``c = (l + r - 1) / 2`` and ``n = r - l``:
    1 where ``|t - c| < n/2·scale``; ``sqrt(max(cos(π (t - c) / (n / scale)), 0))`` up to
    ``n/2/scale`` (inside the valid range); 0 elsewhere."""
    t = torch.arange(length, dtype=torch.float64)
    c, n = (l + r - 1) / 2, r - l
    d = (t - c).abs()
    soft = torch.sqrt(torch.clamp(torch.cos(math.pi * (t - c) / (n / scale)), min=0.0))
    out = torch.where(d < n / 2 * scale, torch.ones_like(t), torch.where(d < n / 2 / scale, soft, torch.zeros_like(t)))
    out[valid:] = 0.0
    return out.float()


def truncate(length: int, segments: list[tuple[int, int]], max_seq_len: int, rng: np.random.Generator,
             *, tries: int = 10, min_keep: float = 0.5) -> tuple[int, list[int]] | None:
    """Random crop of a pair longer than ``max_seq_len`` (ActionFormer ``truncate_feats``).

    Returns ``(start, kept)``: the window ``[start, start + max_seq_len)`` and the indices of the
    segments keeping at least ``min_keep`` of their length (at least one), or ``None`` when no
    such window was found in ``tries`` draws.
    """
    if length <= max_seq_len:
        return 0, list(range(len(segments)))
    for _ in range(tries):
        start = int(rng.integers(0, length - max_seq_len + 1))
        stop = start + max_seq_len
        kept = [i for i, (l, r) in enumerate(segments)
                if r > l and (min(r, stop) - max(l, start)) >= min_keep * (r - l)]
        if kept:
            return start, kept
    return None
