"""VrdONE as a :mod:`pyvrel.engine` task: ``pyvrel train --model vrdone --data DIR|synthetic``.

The ``model:`` section of a run's config holds ``preset`` (``"synthetic"``, ``"vidvrd"`` or
``"vidor"``, the :class:`VrdONEConfig` preset), ``world`` (the :class:`SynthConfig` of the built-in
synthetic world, used when ``data`` is ``"synthetic"``), ``sample_seed`` (crop/offset randomness of
the training samples) and any :class:`VrdONEConfig` field as an override. ``data`` is
``"synthetic"`` or a folder in the layout ``pyvrel synth`` writes: ``annotations/train/*.json``
(official VidVRD format) and ``features/<vid>.npz`` (the synthetic world's tracklet arrays,
:mod:`pyvrel.data.features`). Predicates are the VidVRD vocabulary (132 classes).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from pyvrel.data import Relation, VideoAnnotation, read_annotations
from pyvrel.data.features import FeatureStore
from pyvrel.data.synthetic import SynthConfig, World, generate
from pyvrel.data.vocab import load_vocabulary
from pyvrel.engine.config import ConfigError, config_from_dict, config_to_dict
from pyvrel.engine.registry import TrainTask
from pyvrel.models.vrdone.config import VrdONEConfig
from pyvrel.models.vrdone.inference import predict_video
from pyvrel.models.vrdone.inputs import pad_batch
from pyvrel.models.vrdone.loss import SetCriterion, Target
from pyvrel.models.vrdone.model import build_vrdone
from pyvrel.models.vrdone.samples import pair_samples, synthetic_entity_features, synthetic_tracklets

__all__ = ["DEMO_WORLD", "VrdONETrainModel", "build_task", "detect", "load_videos", "model_from_checkpoint", "resolve_config"]

#: The small world ``pyvrel train --data synthetic`` uses by default (as scripts/train_vrdone_synthetic.py).
DEMO_WORLD: dict[str, Any] = {"seed": 0, "num_videos": 150, "frames": [60, 240], "entities": [2, 4], "min_run": 16}
#: VrdONEConfig overrides of the synthetic preset known to beat the frequency prior on DEMO_WORLD.
SYNTHETIC_OVERRIDES: dict[str, Any] = {"max_seq_len": 64, "feat_stride": 4, "num_queries": 16, "max_preds": 16,
                                       "pred_min_frames": 4, "proposal_min_frames": 4}
_PRESETS = {"synthetic": VrdONEConfig.synthetic, "vidvrd": VrdONEConfig.vidvrd, "vidor": VrdONEConfig.vidor}
_TASK_KEYS = ("preset", "world", "sample_seed")


def resolve_config(model_config: Mapping[str, Any]) -> tuple[VrdONEConfig, dict[str, Any]]:
    """The :class:`VrdONEConfig` of a ``model:`` section and the section with defaults filled in.

    Raises :class:`ConfigError` naming the key for unknown keys, bad types or bad values.
    """
    section = dict(model_config)
    preset = section.get("preset", "synthetic")
    if preset not in _PRESETS:
        raise ConfigError("preset", f"expected one of {', '.join(map(repr, _PRESETS))}, got {preset!r}")
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
    config_from_dict(SynthConfig, world, prefix="world.")  # check now, naming the key
    resolved = {"preset": preset, "world": world, "sample_seed": int(section.get("sample_seed", 0)),
                **{k: v for k, v in config_to_dict(cfg).items() if k in overrides}}
    return cfg, resolved


def load_videos(data: str, world: Mapping[str, Any], split: str
                ) -> list[tuple[VideoAnnotation, Mapping[str, np.ndarray]]]:
    """``(annotation, feature arrays)`` of the ``split`` videos of ``data`` ("synthetic" or a folder)."""
    if data == "synthetic":
        synth = config_from_dict(SynthConfig, world, prefix="world.")
        return [(v.annotation, v.features) for v in generate(synth) if v.split == split]
    root = Path(data)
    folder = root / "annotations" / split
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: annotation folder not found (expected DIR/annotations/{split}/*.json)")
    store = FeatureStore(root / "features")
    out = []
    for vid, anno in sorted(read_annotations(folder).items()):
        if vid not in store:
            raise FileNotFoundError(f"{store.path(vid)}: feature file of video {vid!r} not found")
        out.append((anno, dict(store[vid])))
    return out


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


def build_task(model_config: Mapping[str, Any], data: str) -> TrainTask:
    """The VrdONE training task (see the module docstring for the ``model:`` keys).

    Training samples are the ground-truth pair segments of the training videos (``pair_samples``
    with a generator seeded by ``sample_seed``), made once; the features of each object are read
    from its detected tracklets.
    """
    cfg, resolved = resolve_config(model_config)
    predicates = list(load_vocabulary("vidvrd").predicates)
    if cfg.num_classes != len(predicates):
        raise ConfigError("num_classes", f"the data has {len(predicates)} predicates, got {cfg.num_classes}")
    index = {p: i + 1 for i, p in enumerate(predicates)}
    rng = np.random.default_rng(resolved["sample_seed"])
    items = []
    for anno, arrays in load_videos(data, resolved["world"], "train"):
        feats = synthetic_entity_features(arrays, anno)
        items.extend(pair_samples(anno, feats, cfg, index, rng))
    if not items:
        raise ValueError(f"{data}: no training samples (no relations in the training videos)")
    train_defaults = {"lr": 1e-3, "weight_decay": 0.05, "warmup_epochs": 1, "clip_grad_norm": 1.0,
                      "batch_size": 16, "epochs": 10, "ema_decay": 0.999}
    return TrainTask(VrdONETrainModel(cfg), _Samples(items), _collate(cfg.max_seq_len, cfg.max_div_factor),
                     train_defaults=train_defaults, model_config=resolved)


def detect(model: nn.Module, cfg: VrdONEConfig, data: str, world: Mapping[str, Any], split: str = "test"
           ) -> dict[str, list[Relation]]:
    """Relations VrdONE detects on the ``split`` videos of ``data`` from their detected tracklets
    (deduplicated), as ``{video_id: [Relation]}`` ready for :func:`pyvrel.data.write_predictions`."""
    vocab = load_vocabulary("vidvrd")
    objects, predicates = list(vocab.objects), list(vocab.predicates)
    out = {}
    for anno, arrays in load_videos(data, world, split):
        tracks = synthetic_tracklets(arrays, objects)
        out[anno.video_id] = predict_video(model, cfg, tracks, predicates, anno.width, anno.height)
    return out


def model_from_checkpoint(checkpoint: Mapping[str, Any], ema: bool = True) -> tuple[nn.Module, VrdONEConfig]:
    """The VrdONE network of a ``pyvrel train --model vrdone`` checkpoint (EMA weights when present)."""
    from pyvrel.engine.checkpoint import checkpoint_weights

    cfg, _ = resolve_config(checkpoint["meta"]["model_config"])
    wrapper = VrdONETrainModel(cfg)
    wrapper.load_state_dict(checkpoint_weights(dict(checkpoint), ema))
    return wrapper.vrdone.eval(), cfg

