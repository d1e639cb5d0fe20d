"""VidVRD-II's training segments: tracklets per segment, labels by vIoU, pairs sampled per epoch.

For each training video: the ground-truth objects as tracklets (:func:`pyvrel.data.tracklets.oracle_tracklets`,
features read from the detected tracklets that follow them) and the detected tracklets, both cut
to each 30-frame segment (stride 15). A segment trains when a ground-truth relation shares at
least ``min_overlap`` frames with it. Each segment tracklet is matched to the segment's
ground-truth objects by vIoU: ``> positive_viou`` (0.9) gives it the object's category, a best
vIoU ``< negative_viou`` (0.5) makes it background, anything between is ambiguous. An ordered
pair of two different tracklets is

* positive or "no relation" when both match (different) objects: the predicates of the
  relations of that object pair overlapping the segment by ``>= min_overlap`` frames (possibly none);
* negative when at least one is background (no predicate; its class is background);
* left out otherwise (an ambiguous tracklet, or both following the same object).

Every epoch draws at most ``pairs_per_segment`` (64) pairs per segment, positives first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from pyvrel.data import VideoAnnotation
from pyvrel.data.segments import cut_tracklets, ordered_pairs, relative_position, segment_spans, tracklet_viou
from pyvrel.data.tracklets import Tracklet
from pyvrel.models.vidvrd2.config import VidVRD2Config
from pyvrel.models.vidvrd2.model import PairBatch

__all__ = ["SegmentSample", "SegmentSamples", "collate_segments", "mean_features", "segment_samples"]


def mean_features(tracklets: Sequence[Tracklet], dim: int) -> np.ndarray:
    """``(N, dim)`` float32: each tracklet's feature, the mean of its per-frame features."""
    if not tracklets:
        return np.zeros((0, dim), np.float32)
    return np.stack([t.features.mean(0) for t in tracklets]).astype(np.float32)


@dataclass
class SegmentSample:
    """One training segment: tracklet ``features (N, D)``, candidate ``pairs (K, 2)`` with their
    ``position (K, 12)``, ``subject_labels``/``object_labels (K,)`` in ``[0, O]`` and
    ``predicates (K, P)`` bool; ``positive (K,)`` marks pairs with at least one predicate."""

    features: np.ndarray
    pairs: np.ndarray
    position: np.ndarray
    subject_labels: np.ndarray
    object_labels: np.ndarray
    predicates: np.ndarray

    @property
    def positive(self) -> np.ndarray:
        return self.predicates.any(1)


def segment_samples(annotation: VideoAnnotation, gt_tracklets: Sequence[Tracklet], detected: Sequence[Tracklet],
                    cfg: VidVRD2Config, object_index: Mapping[str, int], predicate_index: Mapping[str, int]
                    ) -> list[SegmentSample]:
    """The training segments of one video (module docstring). ``gt_tracklets`` carry the ground-truth
    ``tid`` and category; ``detected`` the feature file's tracklets (their own category is not used)."""
    O, P = cfg.num_objects, cfg.num_predicates
    out = []
    for begin, end in segment_spans(annotation.frame_count, cfg.segment_length, cfg.segment_stride):
        rels: dict[tuple[int, int], set[int]] = {}
        for r in annotation.relations:
            if min(end, r.end_fid) - max(begin, r.begin_fid) >= max(cfg.min_overlap, 1):
                rels.setdefault((r.subject_tid, r.object_tid), set()).add(predicate_index[r.predicate])
        if not rels:
            continue
        gts = cut_tracklets(gt_tracklets, begin, end)
        tracks = gts + cut_tracklets(detected, begin, end)
        if not gts or len(tracks) < 2:
            continue
        viou = tracklet_viou(tracks, gts)
        best, best_viou = viou.argmax(1), viou.max(1)
        matched, background = best_viou > cfg.positive_viou, best_viou < cfg.negative_viou
        ambiguous = ~matched & ~background
        tid = np.where(matched, [gts[j].tid for j in best], -1)
        label = np.where(matched, [object_index[gts[j].category] for j in best], O)
        pairs = ordered_pairs(len(tracks))
        s, o = pairs[:, 0], pairs[:, 1]
        keep = ~ambiguous[s] & ~ambiguous[o] & (background[s] | background[o] | (tid[s] != tid[o]))
        pairs = pairs[keep]
        if not len(pairs):
            continue
        predicates = np.zeros((len(pairs), P), bool)
        for k, (i, j) in enumerate(pairs.tolist()):
            if matched[i] and matched[j]:
                predicates[k, sorted(rels.get((int(tid[i]), int(tid[j])), ()))] = True
        out.append(SegmentSample(mean_features(tracks, cfg.feature_dim), pairs,
                                 relative_position(tracks, pairs, annotation.width, annotation.height,
                                                   cfg.segment_length),
                                 label[pairs[:, 0]].astype(np.int64), label[pairs[:, 1]].astype(np.int64), predicates))
    return out


class SegmentSamples(torch.utils.data.Dataset):
    """The training set: one item per :class:`SegmentSample`, at most ``pairs_per_segment`` of its pairs
    drawn every epoch (positives first, each group shuffled) with a generator seeded by
    ``(seed, epoch, index)``; :meth:`set_epoch` is called by the trainer."""

    def __init__(self, segments: list[SegmentSample], pairs_per_segment: int, seed: int = 0) -> None:
        self.segments, self.limit, self.seed, self.epoch = segments, pairs_per_segment, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.segments)

    def __getitem__(self, i: int) -> tuple[SegmentSample, np.ndarray]:
        seg = self.segments[i]
        rng = np.random.default_rng([self.seed, self.epoch, i])
        pos = seg.positive
        order = np.concatenate([rng.permutation(np.flatnonzero(pos)), rng.permutation(np.flatnonzero(~pos))])
        return seg, order[: self.limit]


def collate_segments(items: list[tuple[SegmentSample, np.ndarray]]) -> PairBatch:
    """The chosen pairs of a batch of segments as one :class:`PairBatch`."""
    sub, obj, pos, sl, ol, pred = [], [], [], [], [], []
    for seg, rows in items:
        pairs = seg.pairs[rows]
        sub.append(seg.features[pairs[:, 0]])
        obj.append(seg.features[pairs[:, 1]])
        pos.append(seg.position[rows])
        sl.append(seg.subject_labels[rows])
        ol.append(seg.object_labels[rows])
        pred.append(seg.predicates[rows])

    def cat(parts: list[np.ndarray], dtype: torch.dtype) -> torch.Tensor:
        return torch.from_numpy(np.concatenate(parts)).to(dtype)

    return PairBatch(cat(sub, torch.float32), cat(obj, torch.float32), cat(pos, torch.float32),
                     cat(sl, torch.int64), cat(ol, torch.int64), cat(pred, torch.float32))
