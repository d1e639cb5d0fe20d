"""VrdONE as a :mod:`pyvrel.engine` task: ``pyvrel train --model vrdone --data DIR|synthetic``.

The ``model:`` section of a run's config holds ``preset`` (``"synthetic"``, ``"vidvrd"`` or
``"vidor"``, the :class:`VrdONEConfig` preset), ``world`` (the :class:`SynthConfig` of the built-in
synthetic world, used when ``data`` is ``"synthetic"``), ``sample_seed`` (crop/offset randomness of
the training samples), ``dtype`` (``"float32"`` or ``"float64"`` weights and inputs),
``eval_split`` (the videos the evaluation hook detects on; ``"test"``, null: no hook),
``vocabulary`` (``{"objects": [...], "predicates": [...]}``; default: the data folder's, see
:mod:`pyvrel.data.folder`) and any :class:`VrdONEConfig` field as an override. ``data`` is
``"synthetic"`` or a dataset folder (:mod:`pyvrel.data.folder`: official annotation JSON and
per-video ``.npz`` tracklet files; ``pyvrel synth`` writes one). VrdONE-X: ``clip_dim > 0`` (e.g.
``--set model.clip_dim=16``) reads the extra per-entity stream ``tracklet_clip`` of every feature
file (an error names the file when it is missing or of another width); on the synthetic world
``world.clip_dim`` defaults to it, so the world writes that stream.

Evaluation hook: every ``train.eval_every`` epochs the task detects relations on the ``eval_split``
videos (each process a ``rank::world_size`` share, gathered on rank 0) and logs RelDet mAP / R@50 /
R@100 and RelTag P@1 / P@5 / P@10 (``RelDet_mAP`` ...); ``train.best_metric`` (default
``RelDet_mAP``) keeps ``checkpoints/best.pt``.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from pyvrel.data import FormatError, Relation, VideoAnnotation
from pyvrel.data.features import FeatureStore
from pyvrel.data.folder import (CLIP_KEY, check_feature_files, check_tracklets, feature_path, folder_vocabulary,
                                has_split, split_annotations)
from pyvrel.data.synthetic import SynthConfig, generate
from pyvrel.data.vocab import Vocabulary, load_vocabulary
from pyvrel.engine import distributed as dist
from pyvrel.engine.config import ConfigError, config_from_dict, config_to_dict
from pyvrel.engine.registry import TrainTask
from pyvrel.engine.trainer import EvalContext, EvalHook
from pyvrel.models.vrdone.config import VrdONEConfig
from pyvrel.models.vrdone.inference import predict_video
from pyvrel.models.vrdone.inputs import pad_batch
from pyvrel.models.vrdone.loss import SetCriterion, Target
from pyvrel.models.vrdone.model import build_vrdone
from pyvrel.models.vrdone.samples import detected_tracklets, entity_features, pair_samples

__all__ = ["DEMO_WORLD", "VrdONETrainModel", "build_task", "detect", "load_videos", "model_from_checkpoint",
           "resolve_config", "task_vocabulary"]

log = logging.getLogger("pyvrel.models.vrdone")

#: The small world ``pyvrel train --data synthetic`` uses by default (as scripts/train_vrdone_synthetic.py).
DEMO_WORLD: dict[str, Any] = {"seed": 0, "num_videos": 150, "frames": [60, 240], "entities": [2, 4], "min_run": 16}
#: VrdONEConfig overrides of the synthetic preset known to beat the frequency prior on DEMO_WORLD.
SYNTHETIC_OVERRIDES: dict[str, Any] = {"max_seq_len": 64, "feat_stride": 4, "num_queries": 16, "max_preds": 16,
                                       "pred_min_frames": 4, "proposal_min_frames": 4}
_PRESETS = {"synthetic": VrdONEConfig.synthetic, "vidvrd": VrdONEConfig.vidvrd, "vidor": VrdONEConfig.vidor}
_TASK_KEYS = ("preset", "world", "sample_seed", "dtype", "eval_split", "vocabulary")
_DTYPES = {"float32": torch.float32, "float64": torch.float64}
#: Evaluation metrics of the hook: (flat name, section, key) of :func:`pyvrel.eval.evaluate_relations`.
_METRICS = [(f"{s}_{k}", s, k) for s, ks in (("RelDet", ("mAP", "R@50", "R@100")), ("RelTag", ("P@1", "P@5", "P@10")))
            for k in ks]


def _check_vocabulary(value: Any) -> dict[str, list[str]] | None:
    if value is None:
        return None
    if not (isinstance(value, Mapping) and set(value) == {"objects", "predicates"}
            and all(isinstance(v, list) and v and all(isinstance(n, str) for n in v) for v in value.values())):
        raise ConfigError("vocabulary", f"expected {{'objects': [names], 'predicates': [names]}}, got {value!r}")
    return {"objects": list(value["objects"]), "predicates": list(value["predicates"])}


def resolve_config(model_config: Mapping[str, Any]) -> tuple[VrdONEConfig, dict[str, Any]]:
    """The :class:`VrdONEConfig` of a ``model:`` section and the section with defaults filled in.

    Raises :class:`ConfigError` naming the key for unknown keys, bad types or bad values.
    """
    section = dict(model_config)
    preset = section.get("preset", "synthetic")
    if preset not in _PRESETS:
        raise ConfigError("preset", f"expected one of {', '.join(map(repr, _PRESETS))}, got {preset!r}")
    dtype = section.get("dtype", "float32")
    if dtype not in _DTYPES:
        raise ConfigError("dtype", f"expected one of {', '.join(map(repr, _DTYPES))}, got {dtype!r}")
    eval_split = section.get("eval_split", "test")
    if eval_split not in ("train", "test", None):
        raise ConfigError("eval_split", f"expected 'train', 'test' or null, got {eval_split!r}")
    overrides = {k: v for k, v in section.items() if k not in _TASK_KEYS}
    if preset == "synthetic":
        overrides = {**SYNTHETIC_OVERRIDES, **overrides}
    base = _PRESETS[preset]()
    try:
        cfg = config_from_dict(VrdONEConfig, {**config_to_dict(base), **overrides})
    except ValueError as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(next(iter(overrides), "preset"), str(e)) from None
    world = {**DEMO_WORLD, **section.get("world", {})}
    if cfg.clip_dim and "clip_dim" not in world:  # VrdONE-X on the synthetic world: it writes the stream
        world["clip_dim"] = cfg.clip_dim
    config_from_dict(SynthConfig, world, prefix="world.")  # check now, naming the key
    resolved = {"preset": preset, "world": world, "sample_seed": int(section.get("sample_seed", 0)), "dtype": dtype,
                "eval_split": eval_split, "vocabulary": _check_vocabulary(section.get("vocabulary")),
                **{k: v for k, v in config_to_dict(cfg).items() if k in overrides}}
    return cfg, resolved


def _annotations(data: str, world: Mapping[str, Any], split: str) -> dict[str, VideoAnnotation]:
    if data == "synthetic":
        synth = config_from_dict(SynthConfig, world, prefix="world.")
        return {v.annotation.video_id: v.annotation for v in generate(synth) if v.split == split}
    return split_annotations(data, split)


def task_vocabulary(data: str, model_config: Mapping[str, Any],
                    train_annotations: Mapping[str, VideoAnnotation] | None = None) -> Vocabulary:
    """The vocabulary of a run: ``model_config["vocabulary"]`` when set, VidVRD's for the synthetic
    world, else the data folder's (:func:`pyvrel.data.folder.folder_vocabulary`, over
    ``train_annotations`` when given, else over the folder's training annotations)."""
    given = model_config.get("vocabulary")
    if given is not None:
        return Vocabulary("run", tuple(given["objects"]), tuple(given["predicates"]))
    if data == "synthetic":
        return load_vocabulary("vidvrd")
    if train_annotations is None:
        train_annotations = split_annotations(data, "train")
    return folder_vocabulary(data, train_annotations.values())


def load_videos(data: str, world: Mapping[str, Any], split: str, num_objects: int, shard: tuple[int, int] = (0, 1),
                clip_dim: int = 0, annotations: Mapping[str, VideoAnnotation] | None = None
                ) -> Iterator[tuple[VideoAnnotation, dict[str, np.ndarray]]]:
    """``(annotation, tracklet arrays)`` of the ``split`` videos of ``data`` ("synthetic" or a
    dataset folder), by video id, read one at a time; ``shard=(r, n)``: only every ``n``-th video
    from the ``r``-th. Arrays are checked (:func:`pyvrel.data.folder.check_tracklets`, scores over
    ``num_objects`` categories, ``tracklet_clip`` of width ``clip_dim`` when it is > 0); errors
    name the file and key. ``annotations``: the folder's ``split`` annotations when already read
    (by video id), so they are not read again."""
    rank, n = shard
    if data == "synthetic":
        synth = config_from_dict(SynthConfig, world, prefix="world.")
        videos = [v for v in generate(synth) if v.split == split]
        for v in videos[rank::n]:
            anno = v.annotation
            yield anno, check_tracklets(v.features, num_objects, file="synthetic world", video=anno.video_id,
                                        frame_count=anno.frame_count, clip_dim=clip_dim)
        return
    store = FeatureStore(Path(data) / "features")
    if annotations is None:
        annotations = split_annotations(data, split)
    for vid, anno in list(annotations.items())[rank::n]:
        path = feature_path(data, vid)
        archive = store[vid]
        try:
            with archive:
                arrays = {k: archive[k] for k in archive.files
                          if k.startswith("tracklet_") and (clip_dim > 0 or k != CLIP_KEY)}  # unused: not read
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:  # a damaged array in the archive
            raise FormatError(f"not a readable .npz file ({e})", file=str(path)) from None
        yield anno, check_tracklets(arrays, num_objects, file=str(path), video=vid, frame_count=anno.frame_count,
                                    clip_dim=clip_dim)


class VrdONETrainModel(nn.Module):
    """VrdONE and its set criterion: ``forward((x, mask, targets))`` -> losses with ``"loss"``."""

    def __init__(self, cfg: VrdONEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.vrdone = build_vrdone(cfg)
        self.criterion = SetCriterion(cfg)

    def no_weight_decay(self) -> set[str]:
        return {n for n, _ in self.named_parameters() if "query_embed" in n}

    def forward(self, batch: tuple[Tensor, Tensor, list[Target]]) -> dict[str, Tensor]:
        x, mask, targets = batch
        x = x.to(next(self.parameters()).dtype)  # float64 weights take float64 inputs
        targets = [Target(t.labels.to(x.device), t.masks.to(x.device)) for t in targets]
        return self.criterion(self.vrdone(x, mask), targets, mask)


class _Samples(torch.utils.data.Dataset):
    def __init__(self, items: list[tuple[Tensor, Target]]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[Tensor, Target]:
        return self.items[i]


def _collate(max_seq_len: int, div: int):
    def collate(items: list[tuple[Tensor, Target]]) -> tuple[Tensor, Tensor, list[Target]]:
        x, mask = pad_batch([it[0] for it in items], max_seq_len, div)
        return x, mask, [it[1] for it in items]
    return collate


def _check_inputs(arrays: Mapping[str, np.ndarray], cfg: VrdONEConfig, data: str) -> None:
    """The feature width of the data must be the config's ``visual_dim`` (the clip stream's width is
    checked by :func:`load_videos`)."""
    D = arrays["tracklet_features"].shape[-1]
    if D != cfg.visual_dim:
        raise ConfigError("visual_dim", f"{data}: tracklet_features have {D} values per frame; the config has "
                                        f"visual_dim={cfg.visual_dim} (set model.visual_dim={D})")


def _evaluator(data: str, world: Mapping[str, Any], split: str, vocab: Vocabulary,
               groundtruth: dict[str, list[Relation]] | None = None) -> EvalHook:
    """The evaluation hook: detection on the ``split`` videos, sharded over the processes, scored on rank 0
    against ``groundtruth`` (by default the ``split`` annotations, read at the first evaluation)."""
    from pyvrel.eval import evaluate_relations

    groundtruth = {} if groundtruth is None else groundtruth

    def evaluate(model: nn.Module, ctx: EvalContext) -> dict[str, float] | None:
        preds = detect(model.vrdone, model.cfg, data, world, split, vocab, shard=(ctx.rank, ctx.world_size))
        parts = dist.all_gather_objects(preds)
        if not ctx.is_main:
            return None
        if not groundtruth:
            groundtruth.update({v: a.relation_view() for v, a in _annotations(data, world, split).items()})
        result = evaluate_relations(groundtruth, {k: v for part in parts for k, v in part.items()})
        return {name: result[section][key] for name, section, key in _METRICS}

    return evaluate


def build_task(model_config: Mapping[str, Any], data: str) -> TrainTask:
    """The VrdONE training task (see the module docstring for the ``model:`` keys).

    Training samples are the ground-truth pair segments of the training videos (``pair_samples``
    with a generator seeded by ``sample_seed``), made once; the features of each object are read
    from the detected tracklets that follow it (:func:`~pyvrel.models.vrdone.samples.entity_features`),
    and so is VrdONE-X's extra stream (``tracklet_clip``) when ``clip_dim > 0``.
    """
    cfg, resolved = resolve_config(model_config)
    train_annotations = None if data == "synthetic" else split_annotations(data, "train")  # read once
    vocab = task_vocabulary(data, resolved, train_annotations)
    resolved["vocabulary"] = {"objects": list(vocab.objects), "predicates": list(vocab.predicates)}
    if cfg.num_classes != len(vocab.predicates):
        raise ConfigError("num_classes", f"the vocabulary has {len(vocab.predicates)} predicates, the config "
                                         f"{cfg.num_classes} (set model.num_classes={len(vocab.predicates)})")
    index = {p: i + 1 for i, p in enumerate(vocab.predicates)}
    rng = np.random.default_rng(resolved["sample_seed"])
    items, missing = [], 0
    for anno, arrays in load_videos(data, resolved["world"], "train", len(vocab.objects), clip_dim=cfg.clip_dim,
                                    annotations=train_annotations):
        _check_inputs(arrays, cfg, data)
        feats = entity_features(arrays, anno)
        clip = entity_features(arrays, anno, CLIP_KEY) if cfg.clip_dim else None
        missing += sum(1 for r in anno.relations if r.subject_tid not in feats or r.object_tid not in feats)
        items.extend(pair_samples(anno, feats, cfg, index, rng, clip=clip))
    if missing and dist.env_rank() == 0:
        log.warning("%s: %d training relations have an object that no tracklet follows (vIoU < 0.5): skipped",
                    data, missing)
    if not items:
        raise ValueError(f"{data}: no training samples (no relations in the training videos)")
    evaluate = None
    split = resolved["eval_split"]
    if split is not None and (data == "synthetic" or has_split(data, split)):
        groundtruth = None
        if data != "synthetic":  # a bad file of the split is found now, not at the first evaluation
            annotations = train_annotations if split == "train" else split_annotations(data, split)
            check_feature_files(data, annotations)
            groundtruth = {v: a.relation_view() for v, a in annotations.items()}
        evaluate = _evaluator(data, resolved["world"], split, vocab, groundtruth)
    elif split is not None and dist.env_rank() == 0:
        log.warning("%s: no %s annotations, so no evaluation during training (set model.eval_split)", data, split)
    train_defaults = {"lr": 1e-3, "weight_decay": 0.05, "warmup_epochs": 1, "clip_grad_norm": 1.0,
                      "batch_size": 16, "epochs": 10, "ema_decay": 0.999, "eval_every": 2,
                      "best_metric": "RelDet_mAP"}
    model = VrdONETrainModel(cfg).to(_DTYPES[resolved["dtype"]])
    return TrainTask(model, _Samples(items), _collate(cfg.max_seq_len, cfg.max_div_factor), evaluate=evaluate,
                     train_defaults=train_defaults, model_config=resolved,
                     eval_metrics=tuple(name for name, _, _ in _METRICS))


def detect(model: nn.Module, cfg: VrdONEConfig, data: str, world: Mapping[str, Any], split: str = "test",
           vocabulary: Vocabulary | None = None, shard: tuple[int, int] = (0, 1)) -> dict[str, list[Relation]]:
    """Relations VrdONE detects on the ``split`` videos of ``data`` from their detected tracklets
    (deduplicated), as ``{video_id: [Relation]}`` ready for :func:`pyvrel.data.write_predictions`.
    ``vocabulary`` (default VidVRD's) names the tracklet categories and predicates; ``shard`` as in
    :func:`load_videos`."""
    vocab = vocabulary or load_vocabulary("vidvrd")
    objects, predicates = list(vocab.objects), list(vocab.predicates)
    out = {}
    for anno, arrays in load_videos(data, world, split, len(objects), shard, cfg.clip_dim):
        _check_inputs(arrays, cfg, data)
        tracks = detected_tracklets(arrays, objects)
        out[anno.video_id] = predict_video(model, cfg, tracks, predicates, anno.width, anno.height)
    return out


def model_from_checkpoint(checkpoint: Mapping[str, Any], ema: bool = True
                          ) -> tuple[nn.Module, VrdONEConfig, Vocabulary]:
    """The VrdONE network of a ``pyvrel train --model vrdone`` checkpoint (EMA weights when present),
    its config and its vocabulary."""
    from pyvrel.engine.checkpoint import checkpoint_weights

    model_config = checkpoint["meta"]["model_config"]
    cfg, resolved = resolve_config(model_config)
    wrapper = VrdONETrainModel(cfg).to(_DTYPES[resolved["dtype"]])
    wrapper.load_state_dict(checkpoint_weights(dict(checkpoint), ema))
    return wrapper.vrdone.eval(), cfg, task_vocabulary("synthetic", resolved)
