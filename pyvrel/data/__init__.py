"""Data: the official VidVRD/VidOR annotation and prediction formats, vocabularies, feature
stores, dataset folders (:mod:`pyvrel.data.folder`) and the synthetic video-relation world
(:mod:`pyvrel.data.synthetic`)."""

from pyvrel.data._json import fast_parser
from pyvrel.data.annotations import (
    FrameBox,
    ObjectInfo,
    RelationInstance,
    VideoAnnotation,
    iter_annotation_files,
    load_groundtruth,
    read_annotation,
    read_annotations,
    write_annotations,
)
from pyvrel.data.errors import FormatError
from pyvrel.data.features import FeatureStore
from pyvrel.data.relations import (
    PredictionFile,
    Relation,
    Triplet,
    parse_predictions,
    read_predictions,
    relations_to_tubes,
    write_predictions,
)
from pyvrel.data.table import RelationTable, read_groundtruth_table, read_prediction_table
from pyvrel.data.vocab import Vocabulary, load_vocabulary

__all__ = [
    "FeatureStore",
    "FormatError",
    "FrameBox",
    "ObjectInfo",
    "PredictionFile",
    "Relation",
    "RelationInstance",
    "RelationTable",
    "Triplet",
    "VideoAnnotation",
    "Vocabulary",
    "fast_parser",
    "iter_annotation_files",
    "load_groundtruth",
    "load_vocabulary",
    "parse_predictions",
    "read_annotation",
    "read_annotations",
    "read_groundtruth_table",
    "read_prediction_table",
    "read_predictions",
    "relations_to_tubes",
    "write_annotations",
    "write_predictions",
]
