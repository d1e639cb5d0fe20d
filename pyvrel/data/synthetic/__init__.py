"""The synthetic video-relation world: deterministic from a seed, written in the official formats.

Every video is a few entities of ImageNet-VidVRD categories moving on a 1280x720 canvas. Their
ground-truth boxes come from motion models; the relations are *computed* from those boxes, so a
model that reads the geometry, motion and categories can learn them exactly, and the metrics mean
something. ``pyvrel synth OUT_DIR`` writes a world; :func:`generate_video` makes one video in
memory.

=====================  ======================================================================
module                 what
=====================  ======================================================================
:mod:`.rules`          categories, motion models, entity geometry and actions, the predicate
                       rules (the world's documentation)
:mod:`.world`          :class:`SynthConfig`, :class:`World` (seed-level constants),
                       :func:`generate_video`, :func:`generate`
:mod:`.detector`       the detector-like arrays of a feature file: appearance features,
                       noisy tracklets, per-frame detections, region proposals
:mod:`.streams`        extra streams a config switches on, one module each:
                       :mod:`.streams.clip` (VrdONE-X's ``tracklet_clip``),
                       :mod:`.streams.grounding` (vRGV's proposals with distractors),
                       :mod:`.streams.openvocab` (UASAN's base/novel names, concept
                       features, union regions),
                       :mod:`.streams.hvrnet` (HVR-Net's RoI proposals, confusable
                       categories, features of the per-frame detections)
:mod:`.longtail`       ``predicate_tail``: long-tailed training labels over predicates that
                       share patterns (for DLL)
:mod:`.writer`         :func:`write_world`: ``annotations/{train,test}/``, ``features/``,
                       ``world.json``
=====================  ======================================================================

A new stream (e.g. a model's extra inputs) is one module under :mod:`.streams`, one entry of
:data:`~pyvrel.data.synthetic.streams.STREAMS` and its option in :class:`SynthConfig`; worlds
written without it stay byte-identical (``tests/test_synthetic.py`` checks a checksum).
"""

from pyvrel.data.synthetic.rules import CATEGORIES, entity_actions, entity_geometry, pair_predicates
from pyvrel.data.synthetic.world import SynthConfig, SyntheticVideo, World, generate, generate_video
from pyvrel.data.synthetic.writer import write_world

__all__ = [
    "CATEGORIES",
    "SynthConfig",
    "SyntheticVideo",
    "World",
    "entity_geometry",
    "entity_actions",
    "pair_predicates",
    "generate_video",
    "generate",
    "write_world",
]
