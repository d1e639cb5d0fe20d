"""Metrics matching the official VidVRD/VidOR evaluation (:mod:`pyvrel.eval.relation`), relation
grounding accuracy (:mod:`pyvrel.eval.grounding`), trajectory classification recall
(:mod:`pyvrel.eval.trajectory`), greedy relation association (:mod:`pyvrel.eval.association`) and
checks that predictions and ground truth belong together (:mod:`pyvrel.eval.checks`)."""

from pyvrel.eval.association import (
    SegmentRelation,
    Track,
    associate,
    cubic_iou,
    cubic_iou_matrix,
    cut_relations,
    segment_spans,
)
from pyvrel.eval.checks import input_warnings
from pyvrel.eval.grounding import frame_tiou, grounding_accuracy
from pyvrel.eval.relation import (
    VARIANTS,
    VideoMatch,
    evaluate_predicate_split,
    evaluate_relations,
    evaluate_zero_shot,
    filter_groundtruth,
    filter_predictions,
    match_video,
    viou_official,
    voc_ap,
    zero_shot_triplets,
)
from pyvrel.eval.trajectory import trajectory_recall

__all__ = [
    "SegmentRelation",
    "Track",
    "associate",
    "cubic_iou",
    "cubic_iou_matrix",
    "cut_relations",
    "segment_spans",
    "VARIANTS",
    "VideoMatch",
    "evaluate_predicate_split",
    "evaluate_relations",
    "evaluate_zero_shot",
    "filter_groundtruth",
    "filter_predictions",
    "frame_tiou",
    "input_warnings",
    "grounding_accuracy",
    "match_video",
    "viou_official",
    "voc_ap",
    "trajectory_recall",
    "zero_shot_triplets",
]
