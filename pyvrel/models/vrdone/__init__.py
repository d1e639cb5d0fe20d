"""VrdONE (ACM MM 2024): one-stage video relation detection per subject–object pair.

``build_vrdone(VrdONEConfig.vidor())`` builds the model; :mod:`.inputs` makes its inputs and
targets, :mod:`.loss` the matching and losses, :mod:`.inference` the official prediction JSON.
Quirks of the official code are reproduced by default (:class:`VrdONEConfig`).
"""

from pyvrel.models.vrdone.config import VrdONEConfig
from pyvrel.models.vrdone.inference import mask_spans, predict_video
from pyvrel.models.vrdone.inputs import (
    absolute_position,
    fuzzy_mask,
    pad_batch,
    pair_tensor,
    relative_position,
    segment_mask,
    segment_to_grid,
    truncate,
)
from pyvrel.models.vrdone.loss import SetCriterion, Target, hungarian_match, match_costs, sigmoid_focal
from pyvrel.models.vrdone.model import VrdONE, build_vrdone
from pyvrel.models.vrdone.samples import (
    assign_tracklets,
    entity_features,
    object_segments,
    pair_samples,
)

__all__ = [
    "SetCriterion",
    "Target",
    "VrdONE",
    "VrdONEConfig",
    "absolute_position",
    "assign_tracklets",
    "build_vrdone",
    "entity_features",
    "fuzzy_mask",
    "hungarian_match",
    "mask_spans",
    "object_segments",
    "pair_samples",
    "match_costs",
    "pad_batch",
    "pair_tensor",
    "predict_video",
    "relative_position",
    "segment_mask",
    "segment_to_grid",
    "sigmoid_focal",
    "truncate",
]
