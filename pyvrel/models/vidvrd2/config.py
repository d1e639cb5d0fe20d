"""VidVRD-II's settings (:class:`VidVRD2Config`) and its presets."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["VidVRD2Config"]


@dataclass
class VidVRD2Config:
    """Every setting of VidVRD-II (ImageNet-VidVRD values of the code's
    ``imagenet_vidvrd_3step_prop_wd0.01.json``; the ``synthetic`` preset is a small model for CPU).

    Model: ``feature_dim`` (D, a tracklet's feature), ``num_objects`` (O; the background class is index O),
    ``num_predicates`` (P), ``hidden`` (768), ``dropout`` (0.2). Training: ``focal_gamma`` (2),
    ``preference_weight_decay`` (the preference tables' own weight decay: 0.01 VidVRD, 1 VidOR),
    ``pairs_per_segment`` (at most 64 sampled pairs per training segment), ``positive_viou`` (0.9:
    both tracklets of a pair must match a ground-truth pair this well to take its predicates),
    ``negative_viou`` (0.5: a tracklet below it with every ground-truth object is background),
    ``min_overlap`` (frames a ground-truth relation must share with a segment for the segment to
    train: 20 VidVRD, 3 VidOR). Segments: ``segment_length`` (30), ``segment_stride`` (15).
    Inference: ``inference_steps`` (3), ``propagation_viou`` (0.7, cubic IoU linking tracklets
    of consecutive segments), ``score_threshold`` (0.2 on subject, predicate and object),
    ``segment_topk`` (100), ``relation_nms`` (0.9), ``linkage_threshold`` (0.5) and
    ``association_topk`` (200) of the greedy association.
    """

    feature_dim: int = 1536
    num_objects: int = 35
    num_predicates: int = 132
    hidden: int = 768
    dropout: float = 0.2
    focal_gamma: float = 2.0
    preference_weight_decay: float = 0.01
    pairs_per_segment: int = 64
    positive_viou: float = 0.9
    negative_viou: float = 0.5
    min_overlap: int = 20
    segment_length: int = 30
    segment_stride: int = 15
    inference_steps: int = 3
    propagation_viou: float = 0.7
    score_threshold: float = 0.2
    segment_topk: int = 100
    relation_nms: float = 0.9
    linkage_threshold: float = 0.5
    association_topk: int = 200

    def __post_init__(self) -> None:
        for key in ("feature_dim", "num_objects", "num_predicates", "hidden", "pairs_per_segment", "segment_length",
                    "segment_stride", "segment_topk", "association_topk"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key}: expected a positive integer, got {value!r}")
        for key in ("min_overlap", "inference_steps"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{key}: expected an integer >= 0, got {value!r}")
        for key in ("dropout", "positive_viou", "negative_viou", "propagation_viou", "score_threshold",
                    "relation_nms", "linkage_threshold"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{key}: expected a number in [0, 1], got {value!r}")
        for key in ("focal_gamma", "preference_weight_decay"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < float("inf"):
                raise ValueError(f"{key}: expected a finite number >= 0, got {value!r}")

    @classmethod
    def vidvrd(cls) -> VidVRD2Config:
        return cls()

    @classmethod
    def vidor(cls) -> VidVRD2Config:
        return cls(num_objects=80, num_predicates=50, preference_weight_decay=1.0, min_overlap=3)

    @classmethod
    def synthetic(cls) -> VidVRD2Config:
        """The synthetic world's: 32-d features, VidVRD's vocabulary, a 128-wide model."""
        return cls(feature_dim=32, hidden=128, min_overlap=10)
