"""vRGV (Xiao et al., ECCV 2020): weakly supervised relation grounding in videos.

Given a video and a query ``subject-predicate-object``, return the subject and object trajectories,
trained only on video-level relation labels (the query is reconstructed from attended regions).
:mod:`.config` holds :class:`VRGVConfig` and the caption vocabulary, :mod:`.model` the networks
(SAU, attention shifting, hierarchical LSTMs, decoder), :mod:`.grounding` the grounding's linking on
:func:`pyvrel.ops.viterbi_link`, :mod:`.task` training with :mod:`pyvrel.engine`, grounding of
whole datasets and the AccS/AccO/AccR evaluation.
"""

from pyvrel.data.queries import parse_query
from pyvrel.models.vrgv.config import CaptionVocabulary, VRGVConfig
from pyvrel.models.vrgv.grounding import GroundedPair, ground_pair, link_segments, temporal_segments
from pyvrel.models.vrgv.model import (
    SAU,
    VRGV,
    BasicGrounder,
    CaptionDecoder,
    GroundingOutput,
    TemporalHierarchy,
    VRGVTrainModel,
    box_term,
    caption_loss,
)

__all__ = ["SAU", "VRGV", "BasicGrounder", "CaptionDecoder", "CaptionVocabulary", "GroundedPair", "GroundingOutput",
           "TemporalHierarchy", "VRGVConfig", "VRGVTrainModel", "box_term", "caption_loss", "ground_pair",
           "link_segments", "parse_query", "temporal_segments"]
