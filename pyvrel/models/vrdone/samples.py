"""Training samples of VrdONE from annotations, with each object's features read from the
detected tracklets (:mod:`pyvrel.data.folder`) that follow it.

A training sample is one ordered ground-truth pair segment with at least one relation
(:class:`PairSegment`): its input ``(C, L)`` over the frames both objects share and a
:class:`Target` whose masks span ``max_seq_len`` steps. There are no negative pairs (background
comes from unmatched queries). :class:`PairSamples` is the training set: pair keys packed into
items and sampled anew every epoch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

from pyvrel.data import VideoAnnotation
from pyvrel.data.annotations import RelationInstance
from pyvrel.data.tracklets import assign_tracklets, entity_features, object_segments  # re-exported (shared)
from pyvrel.models.vrdone.config import VrdONEConfig
from pyvrel.models.vrdone.inputs import fuzzy_mask, pair_tensor, segment_mask, segment_to_grid, truncate
from pyvrel.models.vrdone.loss import Target

__all__ = ["PairSamples", "PairSegment", "assign_tracklets", "entity_features", "merge_relations", "object_segments",
           "pair_samples", "pair_segments"]


def merge_relations(relations: list[RelationInstance]) -> list[RelationInstance]:
    """Instances of one subject–predicate–object that overlap or touch in time (the next begins at
    or before the current end) merged into one spanning both, as the official VidVRD loader does
    before building targets; returned sorted by ``begin_fid`` (stable)."""
    out: list[RelationInstance] = []
    last: dict[tuple[int, int, str], int] = {}
    for r in sorted(relations, key=lambda r: r.begin_fid):
        key = (r.subject_tid, r.object_tid, r.predicate)
        k = last.get(key)
        if k is not None and r.begin_fid <= out[k].end_fid:
            out[k] = replace(out[k], end_fid=max(out[k].end_fid, r.end_fid))
        else:
            last[key] = len(out)
            out.append(r)
    return out


@dataclass
class PairSegment:
    """One training pair key (an entry of the official loader's ``relation_keys``): an ordered pair
    of ground-truth objects over the frames ``[start, start + L)`` of one contiguous run of each,
    with the relations inside them.

    Attributes:
        sub_vis, obj_vis (ndarray[L, D]): per-frame visual features. sub_boxes, obj_boxes
        (ndarray[L, 4]): pixel boxes. sub_clip, obj_clip: VrdONE-X's stream or None.
        relations: ``(class, begin_fid, end_fid)`` in absolute frames. width, height: the frame.
    """

    start: int
    sub_vis: np.ndarray
    obj_vis: np.ndarray
    sub_boxes: np.ndarray
    obj_boxes: np.ndarray
    relations: list[tuple[int, int, int]]
    width: float
    height: float
    sub_clip: np.ndarray | None = None
    obj_clip: np.ndarray | None = None

    def sample(self, cfg: VrdONEConfig, rng: np.random.Generator | None = None) -> tuple[Tensor, Target] | None:
        """The input ``(C, L')`` and target of this pair: a random frame offset in ``[0, stride)``
        and a random crop of a long pair drawn from ``rng`` (``None``: offset 0 and the first
        window). ``None`` when the official loader drops the pair: more than ``max_preds``
        relations, fewer than 2 steps, or no relation left after cropping."""
        stride, T = cfg.feat_stride, cfg.max_seq_len
        if len(self.relations) > cfg.max_preds:
            return None
        offset = int(rng.integers(0, stride)) if rng is not None and stride > 1 else 0
        x = pair_tensor(self.sub_vis, self.obj_vis, self.sub_boxes, self.obj_boxes, self.width, self.height,
                        stride=stride, offset=offset, sub_clip=self.sub_clip, obj_clip=self.obj_clip)
        L = x.shape[1]
        if L < 2:
            return None
        grid = [segment_to_grid(b, e, self.start, offset, stride) for _, b, e in self.relations]
        keep = [i for i, (l, r) in enumerate(grid) if l < r]
        crop = truncate(L, [grid[i] for i in keep], T, rng or np.random.default_rng(0))
        if crop is None or not keep:
            return None
        begin, kept = crop
        keep = [keep[i] for i in kept]
        x = x[:, begin: begin + T]
        L = x.shape[1]
        labels, masks = [], []
        for i in keep:
            l, r = max(grid[i][0] - begin, 0), min(grid[i][1] - begin, L)
            labels.append(self.relations[i][0])
            masks.append(fuzzy_mask(l, r, L, T, cfg.fuzzy_scale) if cfg.with_fuzzy else segment_mask(l, r, T))
        return x, Target(torch.tensor(labels, dtype=torch.long), torch.stack(masks))


def pair_segments(annotation: VideoAnnotation, features: Mapping[int, np.ndarray], cfg: VrdONEConfig,
                  predicate_index: Mapping[str, int], *,
                  clip: Mapping[int, np.ndarray] | None = None) -> list[PairSegment]:
    """The pair keys of one video: every ordered pair of contiguous object runs sharing frames
    with at least one relation inside them (relations merged first when ``cfg.merge_relations``).

    Args:
        features: tid -> ``(frame_count, D)`` per-frame visual features (rows outside the
            object's frames are ignored); pairs of an object missing here are skipped.
        predicate_index: predicate -> class in ``[1, num_classes]``.
        clip: tid -> ``(frame_count, clip_dim)`` extra stream (VrdONE-X), required exactly when
            ``cfg.clip_dim > 0``; same objects as ``features``.
    """
    if (clip is not None) != (cfg.clip_dim > 0):
        raise ValueError(f"pair_samples: clip features are {'given' if clip is not None else 'missing'} but "
                         f"cfg.clip_dim={cfg.clip_dim}")
    segs = object_segments(annotation)
    relations = merge_relations(annotation.relations) if cfg.merge_relations else annotation.relations
    by_pair: dict[tuple[int, int], list[RelationInstance]] = {}
    for r in relations:
        by_pair.setdefault((r.subject_tid, r.object_tid), []).append(r)
    out = []
    for (s, o), rels in sorted(by_pair.items()):
        if s not in features or o not in features:
            continue
        for s0, sb in segs[s]:
            for o0, ob in segs[o]:
                lo, hi = max(s0, o0), min(s0 + len(sb), o0 + len(ob))
                inside = [(predicate_index[r.predicate], r.begin_fid, r.end_fid) for r in rels
                          if lo <= r.begin_fid and r.end_fid <= hi]
                if hi <= lo or not inside:
                    continue
                out.append(PairSegment(lo, features[s][lo:hi], features[o][lo:hi], sb[lo - s0: hi - s0],
                                       ob[lo - o0: hi - o0], inside, annotation.width, annotation.height,
                                       None if clip is None else clip[s][lo:hi],
                                       None if clip is None else clip[o][lo:hi]))
    return out


def pair_samples(annotation: VideoAnnotation, features: Mapping[int, np.ndarray], cfg: VrdONEConfig,
                 predicate_index: Mapping[str, int], rng: np.random.Generator | None = None, *,
                 clip: Mapping[int, np.ndarray] | None = None) -> list[tuple[Tensor, Target]]:
    """Training samples of one video, drawn once: :meth:`PairSegment.sample` of each of its
    :func:`pair_segments` (same arguments), the pairs the official loader drops left out."""
    out = [seg.sample(cfg, rng) for seg in pair_segments(annotation, features, cfg, predicate_index, clip=clip)]
    return [o for o in out if o is not None]


class PairSamples(torch.utils.data.Dataset):
    """VrdONE's training set: items of pair keys whose augmentation is redrawn every epoch.

    Item ``i`` is a list of :class:`PairSegment`; ``__getitem__`` samples each with a generator
    seeded by ``(seed, epoch, i)``, so an epoch's crops and offsets differ from the last one's and
    are the same after a resume. :meth:`set_epoch` is called by the trainer before each epoch. A
    draw the official loader would drop falls back to the pair's deterministic sample (offset 0,
    first window), so every item keeps its pairs.

    ``pairs_per_item`` > 0 packs the pair keys of consecutive videos into items of that many keys
    (the official batch policy; the last item may be shorter), else one key per item. Keys whose
    deterministic sample is dropped (too many relations, too short) are removed after packing, as
    the official loader removes them when loading; empty items are dropped.
    """

    def __init__(self, videos: list[list[PairSegment]], cfg: VrdONEConfig, seed: int = 0) -> None:
        keys = [seg for segs in videos for seg in segs]
        n = cfg.pairs_per_item
        chunks = [keys[i: i + n] for i in range(0, len(keys), n)] if n > 0 else [[k] for k in keys]
        self.cfg, self.seed, self.epoch = cfg, seed, 0
        self.items = [kept for kept in ([k for k in c if k.sample(cfg) is not None] for c in chunks) if kept]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    @property
    def num_pairs(self) -> int:
        return sum(len(item) for item in self.items)

    def __getitem__(self, i: int) -> list[tuple[Tensor, Target]]:
        rng = np.random.default_rng([self.seed, self.epoch, i])
        return [seg.sample(self.cfg, rng) or seg.sample(self.cfg) for seg in self.items[i]]
