"""VidVRD-II as a :mod:`pyvrel.engine` task: ``pyvrel train --model vidvrd2 --data DIR|synthetic``.

The ``model:`` section holds ``preset`` (``"synthetic"``, ``"vidvrd"`` or ``"vidor"``: a
:class:`VidVRD2Config` preset), ``world`` (``SynthConfig`` settings of the synthetic world),
``sample_seed`` (seed of the pairs drawn per segment and epoch; null: drawn from the generators
``train.seed`` seeds), ``eval_split`` (``"test"``, ``"train"`` or null: no evaluation hook),
``tracklets`` (where inference takes its tracklets: ``"detected"``, the feature file's
``tracklet_*``; ``"oracle"``, the ground-truth trajectories; ``"seqnms"``, Seq-NMS with gap
filling over the per-frame detections ``det_*`` of each segment, which needs their features
``det_features``: :mod:`pyvrel.models.vidvrd2.tracklets`) and any :class:`VidVRD2Config` field.
``num_objects``/``num_predicates`` default to the vocabulary's sizes.

Training: ground-truth and detected tracklets per segment, labelled by vIoU
(:mod:`pyvrel.models.vidvrd2.samples`); AdamW lr 1e-3, weight decay 5e-4 (the preference
tables: ``preference_weight_decay``), batches of 12 segments. Evaluation hook: RelDet mAP,
R@50/100, mR@50/100 and Mean, RelTag P@1/5/10 (``RelDet_mAP`` ...).

Registry entry: :func:`build_task` trains, :func:`load` returns a :class:`VidVRD2Detector` for
``pyvrel detect``. Another predicate head (DLL's, :mod:`pyvrel.models.dll.task`) is swapped into the
task's :class:`IterativeClassifier` (``model.predicate_head``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
from torch import nn

from pyvrel.data import Relation
from pyvrel.data.dataset import Dataset, open_dataset, synthetic_world
from pyvrel.data.tracklets import detected_tracklets, entity_features, oracle_tracklets
from pyvrel.data.vocab import Vocabulary
from pyvrel.engine import distributed as dist
from pyvrel.engine.config import ConfigError, config_to_dict, preset_config
from pyvrel.engine.registry import TrainTask
from pyvrel.engine.trainer import EvalContext, EvalHook
from pyvrel.models.vidvrd2.config import VidVRD2Config
from pyvrel.models.vidvrd2.inference import predict_video, video_segments
from pyvrel.models.vidvrd2.model import IterativeClassifier
from pyvrel.models.vidvrd2.samples import SegmentSamples, collate_segments, segment_samples
from pyvrel.models.vidvrd2.tracklets import TRACKLET_SOURCES, seqnms_segments

__all__ = ["TRAIN_DEFAULTS", "VidVRD2Detector", "build_task", "load", "resolve_config"]

log = logging.getLogger("pyvrel.models.vidvrd2")

_PAPER_TRAIN: dict[str, Any] = {"lr": 1e-3, "weight_decay": 5e-4, "batch_size": 12, "eval_every": 10,
                                "best_metric": "RelDet_mAP"}
#: VidVRD-II's training settings per preset (TrainConfig keys): the code's AdamW lr 1e-3 / wd 5e-4,
#: 12 segments per batch, 50 epochs (VidVRD); VidOR lr 1e-4, 5 epochs, 24 segments. The synthetic
#: preset trains 30 epochs (about 2 minutes on one CPU thread).
TRAIN_DEFAULTS: dict[str, dict[str, Any]] = {
    "vidvrd": {**_PAPER_TRAIN, "epochs": 50},
    "vidor": {**_PAPER_TRAIN, "lr": 1e-4, "epochs": 5, "batch_size": 24, "eval_every": 1},
    "synthetic": {**_PAPER_TRAIN, "epochs": 30, "eval_every": 10, "device": "cpu"},
}
_PRESETS = {"synthetic": VidVRD2Config.synthetic, "vidvrd": VidVRD2Config.vidvrd, "vidor": VidVRD2Config.vidor}
_TASK_KEYS = ("preset", "world", "sample_seed", "eval_split", "tracklets", "vocabulary")
#: Evaluation metrics of the hook: (flat name, section, key) of :func:`pyvrel.eval.evaluate_relations`.
_METRICS = [(f"{s}_{k}", s, k) for s, ks in (("RelDet", ("mAP", "R@50", "R@100", "mR@50", "mR@100", "Mean")),
                                              ("RelTag", ("P@1", "P@5", "P@10"))) for k in ks]


def resolve_config(model_config: Mapping[str, Any], vocabulary: Vocabulary | None = None
                   ) -> tuple[VidVRD2Config, dict[str, Any]]:
    """The :class:`VidVRD2Config` of a ``model:`` section and the section with defaults filled in;
    ``num_objects``/``num_predicates`` from ``vocabulary`` unless set. :class:`ConfigError` names the key."""
    section = dict(model_config)
    preset = section.get("preset", "synthetic")
    eval_split = section.get("eval_split", "test")
    if eval_split not in ("train", "test", None):
        raise ConfigError("eval_split", f"expected 'train', 'test' or null, got {eval_split!r}")
    source = section.get("tracklets", "detected")
    if source not in TRACKLET_SOURCES:
        raise ConfigError("tracklets", f"expected one of {', '.join(map(repr, TRACKLET_SOURCES))}, got {source!r}")
    seed = section.get("sample_seed")
    if seed is None:
        seed = int(np.random.randint(2**31))
    elif isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError("sample_seed", f"expected an integer or null, got {seed!r}")
    overrides = {k: v for k, v in section.items() if k not in _TASK_KEYS}
    if vocabulary is not None:
        for key, size in (("num_objects", len(vocabulary.objects)), ("num_predicates", len(vocabulary.predicates))):
            if overrides.setdefault(key, size) != size:
                raise ConfigError(key, f"the vocabulary has {size}, the config {overrides[key]}")
    cfg = preset_config(VidVRD2Config, _PRESETS, preset, overrides)
    vocab = section.get("vocabulary")
    if vocabulary is not None:
        vocab = {"objects": list(vocabulary.objects), "predicates": list(vocabulary.predicates)}
    resolved = {"preset": preset, "world": synthetic_world(section.get("world", {})), "sample_seed": seed,
                "eval_split": eval_split, "tracklets": source, "vocabulary": vocab,
                **{k: v for k, v in config_to_dict(cfg).items() if k in overrides}}
    return cfg, resolved


def _check_width(arrays: Mapping[str, np.ndarray], cfg: VidVRD2Config, where: str) -> None:
    D = arrays["tracklet_features"].shape[-1]
    if D != cfg.feature_dim:
        raise ConfigError("feature_dim", f"{where}: tracklet_features have {D} values per frame; the config has "
                                         f"feature_dim={cfg.feature_dim} (set model.feature_dim={D})")


class VidVRD2Detector:
    """A trained VidVRD-II ready for inference (the registry's detector): ``model`` (eval mode), its
    ``vocabulary`` and the ``tracklets`` source (module docstring)."""

    def __init__(self, model: IterativeClassifier, vocabulary: Vocabulary, tracklets: str = "detected") -> None:
        self.model, self.vocabulary, self.source = model, vocabulary, tracklets

    def detect(self, dataset: Dataset, split: str = "test", shard: tuple[int, int] = (0, 1)
               ) -> dict[str, list[Relation]]:
        """Relations of the ``split`` videos of ``dataset`` as ``{video_id: [Relation]}`` (official JSON
        records); ``shard`` as in :meth:`~pyvrel.data.dataset.Dataset.videos`."""
        cfg, objects = self.model.cfg, list(self.vocabulary.objects)
        length, stride = cfg.segment_length, cfg.segment_stride
        out = {}
        if self.source == "seqnms":
            videos = ((anno, seqnms_segments(arrays, anno, objects, cfg.feature_dim, length, stride, file))
                      for anno, arrays, file in dataset.arrays(split, lambda k: k.startswith("det_"), shard))
        else:
            def segments(anno, arrays):
                _check_width(arrays, cfg, dataset.name)
                tracks = (oracle_tracklets(anno, entity_features(arrays, anno)) if self.source == "oracle"
                          else detected_tracklets(arrays, objects))
                return video_segments(tracks, anno.frame_count, length, stride)

            videos = ((anno, segments(anno, arrays)) for anno, arrays in dataset.videos(split, len(objects), shard))
        for anno, segs in videos:
            out[anno.video_id] = predict_video(self.model, segs, objects, list(self.vocabulary.predicates),
                                               anno.width, anno.height)
        return out


def _evaluator(dataset: Dataset, split: str, vocab: Vocabulary, source: str) -> EvalHook:
    """The evaluation hook: detection on the ``split`` videos (sharded), scored on rank 0 with mR@K."""
    from pyvrel.eval import evaluate_relations

    groundtruth: dict[str, list[Relation]] = {}

    def evaluate(model: nn.Module, ctx: EvalContext) -> dict[str, float] | None:
        preds = VidVRD2Detector(model, vocab, source).detect(dataset, split, (ctx.rank, ctx.world_size))
        parts = dist.all_gather_objects(preds)
        if not ctx.is_main:
            return None
        if not groundtruth:
            groundtruth.update({v: a.relation_view() for v, a in dataset.annotations(split).items()})
        result = evaluate_relations(groundtruth, {k: v for part in parts for k, v in part.items()}, mean_recall=True)
        return {name: result[section][key] for name, section, key in _METRICS}

    return evaluate


def _vocabulary(given: Mapping[str, list[str]] | None, dataset: Dataset | None = None) -> Vocabulary:
    if given is not None:
        return Vocabulary("run", tuple(given["objects"]), tuple(given["predicates"]))
    return dataset.vocabulary()


def build_task(model_config: Mapping[str, Any], data: str) -> TrainTask:
    """The VidVRD-II training task (module docstring for the ``model:`` keys)."""
    _, first = resolve_config(model_config)
    dataset = open_dataset(data, first["world"])
    vocab = _vocabulary(first["vocabulary"], dataset)
    cfg, resolved = resolve_config({**model_config, "sample_seed": first["sample_seed"]}, vocab)
    objects = list(vocab.objects)
    object_index = {c: i for i, c in enumerate(objects)}
    predicate_index = {p: i for i, p in enumerate(vocab.predicates)}
    segments = []
    for anno, arrays in dataset.videos("train", len(objects)):
        _check_width(arrays, cfg, data)
        unknown = {o.category for o in anno.objects} - set(object_index)
        unknown |= {r.predicate for r in anno.relations} - set(predicate_index)
        if unknown:
            raise ConfigError("vocabulary", f"{data}: video {anno.video_id} uses {sorted(unknown)}, not in the vocabulary")
        gts = oracle_tracklets(anno, entity_features(arrays, anno))
        segments += segment_samples(anno, gts, detected_tracklets(arrays, objects), cfg, object_index, predicate_index)
    if not segments:
        raise ValueError(f"{data}: no training segments (no relation shares {cfg.min_overlap} frames with a segment)")
    evaluate = None
    split = resolved["eval_split"]
    if split is not None and dataset.has_split(split):
        evaluate = _evaluator(dataset, split, vocab, resolved["tracklets"])
    elif split is not None and dist.env_rank() == 0:
        log.warning("%s: no %s annotations, so no evaluation during training (set model.eval_split)", data, split)
    model = IterativeClassifier(cfg)
    return TrainTask(model, SegmentSamples(segments, cfg.pairs_per_segment, resolved["sample_seed"]),
                     collate_segments, evaluate=evaluate, train_defaults=TRAIN_DEFAULTS[resolved["preset"]],
                     model_config=resolved, eval_metrics=tuple(name for name, _, _ in _METRICS))


def load(checkpoint: Mapping[str, Any], ema: bool = True) -> VidVRD2Detector:
    """The trained VidVRD-II of a ``pyvrel train --model vidvrd2`` checkpoint (the registry's loader)."""
    from pyvrel.engine.checkpoint import checkpoint_weights

    section = checkpoint["meta"]["model_config"]
    vocab = _vocabulary(section["vocabulary"])
    cfg, resolved = resolve_config(section, vocab)
    model = IterativeClassifier(cfg)
    model.load_state_dict(checkpoint_weights(dict(checkpoint), ema))
    return VidVRD2Detector(model.eval(), vocab, resolved["tracklets"])
