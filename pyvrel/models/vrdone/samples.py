"""Training samples of VrdONE from annotations, with each object's features read from the
detected tracklets (:mod:`pyvrel.data.folder`) that follow it.

A training sample is one ordered ground-truth pair segment with at least one relation: its input
``(C, L)`` over the frames both objects share and a :class:`Target` whose masks span
``max_seq_len`` steps. There are no negative pairs (background comes from unmatched queries).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor

from pyvrel.data import VideoAnnotation
from pyvrel.models.vrdone.config import VrdONEConfig
from pyvrel.models.vrdone.inputs import fuzzy_mask, pair_tensor, segment_mask, segment_to_grid, truncate
from pyvrel.models.vrdone.loss import Target
from pyvrel.ops import Tubes, tube_iou

__all__ = ["assign_tracklets", "entity_features", "object_segments", "pair_samples"]


def object_segments(annotation: VideoAnnotation) -> dict[int, list[tuple[int, np.ndarray]]]:
    """tid -> contiguous runs ``(start_frame, boxes (L, 4))`` of its ground-truth trajectory."""
    out: dict[int, list[tuple[int, np.ndarray]]] = {}
    for tid, frames in annotation.boxes_by_tid().items():
        fs = sorted(frames)
        runs, begin = [], 0
        for k in range(1, len(fs) + 1):
            if k == len(fs) or fs[k] != fs[k - 1] + 1:
                runs.append((fs[begin], np.array([frames[f] for f in fs[begin:k]], dtype=np.float64)))
                begin = k
        out[tid] = runs
    return out


def pair_samples(annotation: VideoAnnotation, features: Mapping[int, np.ndarray], cfg: VrdONEConfig,
                 predicate_index: Mapping[str, int], rng: np.random.Generator | None = None, *,
                 clip: Mapping[int, np.ndarray] | None = None) -> list[tuple[Tensor, Target]]:
    """Training samples of one video.

    Args:
        features: tid -> ``(frame_count, D)`` per-frame visual features (rows outside the
            object's frames are ignored); pairs of an object missing here are skipped.
        predicate_index: predicate -> class in ``[1, num_classes]``.
        rng: random frame offset in ``[0, stride)`` and random crops of long pairs; ``None``:
            offset 0 and the first window (deterministic).
        clip: tid -> ``(frame_count, clip_dim)`` extra stream (VrdONE-X), required exactly when
            ``cfg.clip_dim > 0``; same objects as ``features``.
    Pairs with more than ``max_preds`` relations, fewer than 2 steps, or no relation left after
    cropping are dropped, as in the official loader.
    """
    if (clip is not None) != (cfg.clip_dim > 0):
        raise ValueError(f"pair_samples: clip features are {'given' if clip is not None else 'missing'} but "
                         f"cfg.clip_dim={cfg.clip_dim}")
    segs = object_segments(annotation)
    stride, T = cfg.feat_stride, cfg.max_seq_len
    by_pair: dict[tuple[int, int], list] = {}
    for r in annotation.relations:
        by_pair.setdefault((r.subject_tid, r.object_tid), []).append(r)
    out = []
    for (s, o), rels in sorted(by_pair.items()):
        if s not in features or o not in features:
            continue
        for s0, sb in segs[s]:
            for o0, ob in segs[o]:
                lo, hi = max(s0, o0), min(s0 + len(sb), o0 + len(ob))
                inside = [r for r in rels if lo <= r.begin_fid and r.end_fid <= hi]
                if hi <= lo or not inside or len(inside) > cfg.max_preds:
                    continue
                offset = int(rng.integers(0, stride)) if rng is not None and stride > 1 else 0
                x = pair_tensor(features[s][lo:hi], features[o][lo:hi], sb[lo - s0: hi - s0], ob[lo - o0: hi - o0],
                                annotation.width, annotation.height, stride=stride, offset=offset,
                                sub_clip=None if clip is None else clip[s][lo:hi],
                                obj_clip=None if clip is None else clip[o][lo:hi])
                L = x.shape[1]
                if L < 2:
                    continue
                grid = [segment_to_grid(r.begin_fid, r.end_fid, lo, offset, stride) for r in inside]
                keep = [i for i, (l, r) in enumerate(grid) if l < r]
                crop = truncate(L, [grid[i] for i in keep], T, rng or np.random.default_rng(0))
                if crop is None or not keep:
                    continue
                start, kept = crop
                keep = [keep[i] for i in kept]
                x = x[:, start: start + T]
                L = x.shape[1]
                labels, masks = [], []
                for i in keep:
                    l, r = max(grid[i][0] - start, 0), min(grid[i][1] - start, L)
                    labels.append(predicate_index[inside[i].predicate])
                    masks.append(fuzzy_mask(l, r, L, T, cfg.fuzzy_scale) if cfg.with_fuzzy else segment_mask(l, r, T))
                out.append((x, Target(torch.tensor(labels, dtype=torch.long), torch.stack(masks))))
    return out


def assign_tracklets(arrays: Mapping[str, np.ndarray], annotation: VideoAnnotation,
                     threshold: float = 0.5) -> np.ndarray:
    """The ground-truth object each detected tracklet follows: ``(N,)`` int64 tids, -1 for none.

    A tracklet goes to the object with the highest volumetric vIoU (official VidVRD, +1 pixel
    areas; each contiguous run of an object's trajectory compared separately) when it is at least
    ``threshold``.
    """
    runs = [(tid, s, b) for tid, rs in object_segments(annotation).items() for s, b in rs]
    N = len(arrays["tracklet_start"])
    if not runs or N == 0:
        return np.full(N, -1, np.int64)
    gt_boxes = np.zeros((len(runs), max(len(b) for _, _, b in runs), 4))
    for i, (_, _, b) in enumerate(runs):
        gt_boxes[i, : len(b)] = b
    gt = Tubes(torch.from_numpy(gt_boxes), torch.tensor([s for _, s, _ in runs]),
               torch.tensor([len(b) for _, _, b in runs]))
    tracks = Tubes(torch.from_numpy(np.asarray(arrays["tracklet_boxes"], np.float64)),
                   torch.from_numpy(np.asarray(arrays["tracklet_start"], np.int64)),
                   torch.from_numpy(np.asarray(arrays["tracklet_length"], np.int64)))
    iou = tube_iou(tracks, gt, pixel_offset=1).numpy()
    best = iou.argmax(1)
    tids = np.array([runs[j][0] for j in best], np.int64)
    return np.where(iou[np.arange(N), best] >= threshold, tids, -1)


def entity_features(arrays: Mapping[str, np.ndarray], annotation: VideoAnnotation,
                    key: str = "tracklet_features") -> dict[int, np.ndarray]:
    """Per-frame features ``(frame_count, D)`` of the ground-truth objects (appearance, or
    ``key="tracklet_clip"``: VrdONE-X's extra stream), read from the tracklets that follow them
    (``tracklet_tid``, else :func:`assign_tracklets`); frames no such tracklet covers take the
    nearest covered frame's feature. Objects no tracklet follows are left out (their pairs give no
    training sample)."""
    n, D = annotation.frame_count, arrays[key].shape[-1]
    tid_of = arrays["tracklet_tid"] if "tracklet_tid" in arrays else assign_tracklets(arrays, annotation)
    out = {}
    for obj in annotation.objects:
        feat, covered = np.zeros((n, D), np.float32), np.zeros(n, bool)
        for k in np.flatnonzero(tid_of == obj.tid):
            s, L = int(arrays["tracklet_start"][k]), int(arrays["tracklet_length"][k])
            feat[s: s + L], covered[s: s + L] = arrays[key][k, :L], True
        idx = np.flatnonzero(covered)
        if len(idx) == 0:
            continue
        nearest = idx[np.clip(np.searchsorted(idx, np.arange(n)), 0, len(idx) - 1)]
        left = idx[np.clip(np.searchsorted(idx, np.arange(n)) - 1, 0, len(idx) - 1)]
        pick = np.where(np.abs(left - np.arange(n)) <= np.abs(nearest - np.arange(n)), left, nearest)
        out[obj.tid] = feat[pick]
    return out
