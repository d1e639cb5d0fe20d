"""UASAN (ACM MM 2024): open-vocabulary video relation detection through union-aware semantic alignment.

:mod:`.model` holds the network (eq. 1-12) and Model A, :mod:`.features` the segment inputs
(trajectory, union-region and motion features), :mod:`.task` the engine task, the detector and the
base/novel evaluation. The public release is evaluation-only; this version trains.
"""

from pyvrel.models.uasan.features import Segment, motion_features, segment_inputs, union_features
from pyvrel.models.uasan.model import (PromptEncoder, QueryEncoder, SACEncoder, UASAN, UASANConfig, URADecoder,
                                       distillation_loss, focal_relation_loss)

__all__ = ["PromptEncoder", "QueryEncoder", "SACEncoder", "Segment", "UASAN", "UASANConfig", "URADecoder",
           "distillation_loss", "focal_relation_loss", "motion_features", "segment_inputs", "union_features"]
