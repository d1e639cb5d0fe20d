"""Baselines for video relation detection.

:class:`FrequencyPrior`: predicate frequencies per (subject category, object category) counted on
the training split; every ordered tracklet pair that overlaps in time gets its top-k predicates,
the pair's overlap as span and the score ``mean(s_score, P(p | s_cat, o_cat), o_score)`` (VrdONE's
triplet score, so the two rank alike). Unseen category pairs fall back to the global predicate
frequencies.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import numpy as np

from pyvrel.data import Relation, VideoAnnotation
from pyvrel.data.tracklets import Tracklet, build_pairs

__all__ = ["FrequencyPrior"]


class FrequencyPrior:
    """Predicate prior ``P(p | s_cat, o_cat)`` from relation instance counts.

    Args:
        topk: predicates per pair. min_frames: shortest pair overlap. n_max: relations kept per video.
    """

    def __init__(self, topk: int = 6, min_frames: int = 5, n_max: int = 200) -> None:
        self.topk, self.min_frames, self.n_max = topk, min_frames, n_max
        self.pair_counts: dict[tuple[str, str], Counter[str]] = {}
        self.global_counts: Counter[str] = Counter()

    def fit(self, annotations: Iterable[VideoAnnotation]) -> "FrequencyPrior":
        """Count the relation instances of the training annotations."""
        for anno in annotations:
            cat = anno.category_of()
            for r in anno.relations:
                key = (cat[r.subject_tid], cat[r.object_tid])
                self.pair_counts.setdefault(key, Counter())[r.predicate] += 1
                self.global_counts[r.predicate] += 1
        if not self.global_counts:
            raise ValueError("FrequencyPrior.fit: the annotations hold no relation")
        return self

    def distribution(self, s_cat: str, o_cat: str) -> list[tuple[str, float]]:
        """``(predicate, probability)`` sorted by probability, ties by name."""
        counts = self.pair_counts.get((s_cat, o_cat)) or self.global_counts
        total = sum(counts.values())
        return sorted(((p, n / total) for p, n in counts.items()), key=lambda t: (-t[1], t[0]))

    def predict_video(self, tracklets: list[Tracklet]) -> list[Relation]:
        """Top ``n_max`` relations of one video (score-sorted)."""
        if not self.global_counts:
            raise RuntimeError("FrequencyPrior: call fit() first")
        cands = []
        for s, o, b, e in build_pairs(tracklets, self.min_frames, 1):
            ts, to = tracklets[s], tracklets[o]
            for pred, prob in self.distribution(ts.category, to.category)[: self.topk]:
                cands.append(((ts.score + prob + to.score) / 3, s, o, pred, b, e))
        cands.sort(key=lambda t: -t[0])
        out = []
        for score, s, o, pred, b, e in cands[: self.n_max]:
            ts, to = tracklets[s], tracklets[o]
            out.append(Relation((ts.category, pred, to.category), (b, e),
                                np.asarray(ts.boxes[b - ts.start: e - ts.start], np.float64),
                                np.asarray(to.boxes[b - to.start: e - to.start], np.float64), float(score)))
        return out
