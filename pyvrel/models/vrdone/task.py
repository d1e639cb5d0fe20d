"""VrdONE as a :mod:`pyvrel.engine` task: ``pyvrel train --model vrdone --data DIR|synthetic``.

The ``model:`` section of a run's config holds ``preset`` (``"synthetic"``, ``"vidvrd"`` or
``"vidor"``, the :class:`VrdONEConfig` preset), ``world`` (``SynthConfig`` settings of the built-in
synthetic world over :data:`pyvrel.data.dataset.DEMO_WORLD`, used when ``data`` is
``"synthetic"``), ``sample_seed`` (seed of the crops/offsets redrawn every epoch; null: drawn from
the generators ``train.seed`` seeds), ``dtype``
(``"float32"`` or ``"float64"`` weights and inputs), ``eval_split`` (the videos the evaluation
hook detects on; ``"test"``, null: no hook), ``vocabulary`` (``{"objects": [...], "predicates":
[...]}``; default: the data's, see :meth:`pyvrel.data.dataset.Dataset.vocabulary`) and any
:class:`VrdONEConfig` field as an override. ``data`` is ``"synthetic"`` or a dataset folder
(:func:`pyvrel.data.dataset.open_dataset`). VrdONE-X: ``clip_dim > 0`` (e.g.
``--set model.clip_dim=16``) reads the extra per-entity stream ``tracklet_clip`` of every feature
file (an error names the file when it is missing or of another width); on the synthetic world
``world.clip_dim`` defaults to it, so the world writes that stream.

Evaluation hook: every ``train.eval_every`` epochs the task detects relations on the ``eval_split``
videos (each process a ``rank::world_size`` share, gathered on rank 0) and logs RelDet mAP / R@50 /
R@100 and RelTag P@1 / P@5 / P@10 (``RelDet_mAP`` ...); ``train.best_metric`` (default
``RelDet_mAP``) keeps ``checkpoints/best.pt``.

Registry entry (:data:`pyvrel.engine.registry.MODELS`): ``build_task`` trains, :func:`load` gives a
:class:`VrdONEDetector` for ``pyvrel detect``/``pyvrel demo``, :data:`DEMO` holds the demo's settings.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from pyvrel.data import Relation, VideoAnnotation
from pyvrel.data.dataset import Dataset, open_dataset, synthetic_world
from pyvrel.data.folder import CLIP_KEY, check_feature_files
from pyvrel.data.tracklets import Tracklet, detected_tracklets
from pyvrel.data.vocab import Vocabulary
from pyvrel.engine import distributed as dist
from pyvrel.engine.config import ConfigError, config_to_dict, preset_config
from pyvrel.engine.registry import TrainTask
from pyvrel.engine.trainer import EvalContext, EvalHook
from pyvrel.models.baselines import FrequencyPrior
from pyvrel.models.vrdone.config import VrdONEConfig
from pyvrel.models.vrdone.inference import entity_tracklets, predict_video
from pyvrel.models.vrdone.inputs import pad_batch
from pyvrel.models.vrdone.loss import SetCriterion, Target, targets_to_device
from pyvrel.models.vrdone.model import build_vrdone
from pyvrel.models.vrdone.samples import PairSamples, entity_features, pair_segments

__all__ = ["DEMO", "VrdONEDetector", "VrdONETrainModel", "build_task", "load", "resolve_config"]

log = logging.getLogger("pyvrel.models.vrdone")

#: VrdONEConfig overrides of the synthetic preset known to beat the frequency prior on the demo world.
SYNTHETIC_OVERRIDES: dict[str, Any] = {"max_seq_len": 64, "feat_stride": 4, "num_queries": 16, "max_preds": 16,
                                       "pred_min_frames": 4, "proposal_min_frames": 4}
#: ``pyvrel demo vrdone``: the run's config on the synthetic world, on top of :data:`TRAIN_DEFAULTS`
#: (full: 24 epochs of the 416 pairs of the demo world, about 3.5 minutes on one CPU thread;
#: quick: a tiny world and one short epoch, for tests).
_DEMO_TRAIN = {"epochs": 24, "warmup_epochs": 2.0, "ema_decay": 0.99, "log_every": 5, "device": "cpu",
               "checkpoint_every": 0, "eval_every": 0}
DEMO: dict[str, dict[str, dict[str, Any]]] = {
    "full": {"train": _DEMO_TRAIN},
    "quick": {"model": {"world": {"num_videos": 8, "frames": [60, 100]}},
              "train": {**_DEMO_TRAIN, "epochs": 1, "batch_size": 4, "log_every": 1, "warmup_epochs": 0.0}},
}
#: The official training recipe (``train.py``, ``configs/*.yaml``) as TrainConfig keys: AdamW lr 2e-4, wd 0.05,
#: 5 warm-up epochs then a 20-epoch cosine to 1e-8 stopped at epoch 12 (VidOR) / 15 (VidVRD), grad
#: clip 1, EMA 0.999, float32, seed 42 with deterministic algorithms. ``batch_size`` counts items
#: of ``pairs_per_item`` pairs: 3 x 16 = 48 pairs (VidOR), 6 x 4 = 24 (VidVRD).
_PAPER_TRAIN: dict[str, Any] = {"lr": 2e-4, "weight_decay": 0.05, "warmup_epochs": 5.0, "schedule_epochs": 20.0,
                                "min_lr_ratio": 1e-8 / 2e-4, "clip_grad_norm": 1.0, "ema_decay": 0.999,
                                "precision": "fp32", "seed": 42, "deterministic": True, "eval_every": 2,
                                "best_metric": "RelDet_mAP"}
#: VrdONE's own training settings per preset (TrainConfig keys), below a run's ``train:`` section
#: and ``--set``. The paper presets carry the official recipe; the synthetic preset has its own
#: short schedule for a small model on CPU (lr 1e-3, 1 warm-up epoch, cosine to 0 over 10 epochs,
#: 16 single pairs per batch) -- not the paper's.
TRAIN_DEFAULTS: dict[str, dict[str, Any]] = {
    "vidor": {**_PAPER_TRAIN, "epochs": 12, "batch_size": 3},
    "vidvrd": {**_PAPER_TRAIN, "epochs": 15, "batch_size": 6},
    "synthetic": {"lr": 1e-3, "weight_decay": 0.05, "warmup_epochs": 1, "clip_grad_norm": 1.0, "batch_size": 16,
                  "epochs": 10, "ema_decay": 0.999, "eval_every": 2, "best_metric": "RelDet_mAP"},
}
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


def _sample_seed(value: Any) -> int:
    """``model.sample_seed``; null draws one from numpy's global generator (seeded by ``train.seed``)."""
    if value is None:
        return int(np.random.randint(2**31))
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError("sample_seed", f"expected an integer or null, got {value!r}")
    return value


def resolve_config(model_config: Mapping[str, Any]) -> tuple[VrdONEConfig, dict[str, Any]]:
    """The :class:`VrdONEConfig` of a ``model:`` section and the section with defaults filled in.

    Raises :class:`ConfigError` naming the key for unknown keys, bad types or bad values.
    """
    section = dict(model_config)
    preset = section.get("preset", "synthetic")
    dtype = section.get("dtype", "float32")
    if dtype not in _DTYPES:
        raise ConfigError("dtype", f"expected one of {', '.join(map(repr, _DTYPES))}, got {dtype!r}")
    eval_split = section.get("eval_split", "test")
    if eval_split not in ("train", "test", None):
        raise ConfigError("eval_split", f"expected 'train', 'test' or null, got {eval_split!r}")
    overrides = {k: v for k, v in section.items() if k not in _TASK_KEYS}
    if preset == "synthetic":
        overrides = {**SYNTHETIC_OVERRIDES, **overrides}
    cfg = preset_config(VrdONEConfig, _PRESETS, preset, overrides)
    world = dict(section.get("world", {}))
    if cfg.clip_dim and "clip_dim" not in world:  # VrdONE-X on the synthetic world: it writes the stream
        world["clip_dim"] = cfg.clip_dim
    resolved = {"preset": preset, "world": synthetic_world(world),
                "sample_seed": _sample_seed(section.get("sample_seed")), "dtype": dtype, "eval_split": eval_split,
                "vocabulary": _check_vocabulary(section.get("vocabulary")),
                **{k: v for k, v in config_to_dict(cfg).items() if k in overrides}}
    return cfg, resolved


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
        targets = targets_to_device(targets, x.device)  # two copies for the batch
        return self.criterion(self.vrdone(x, mask), targets, mask)


def _collate(max_seq_len: int, div: int):
    """Concatenate the pairs of a batch's :class:`PairSamples` items into ``(x, mask, targets)``."""
    def collate(items: list[list[tuple[Tensor, Target]]]) -> tuple[Tensor, Tensor, list[Target]]:
        pairs = [pair for item in items for pair in item]
        x, mask = pad_batch([p[0] for p in pairs], max_seq_len, div)
        return x, mask, [p[1] for p in pairs]
    return collate


def _check_inputs(arrays: Mapping[str, np.ndarray], cfg: VrdONEConfig, data: str) -> None:
    """The feature width of the data must be the config's ``visual_dim`` (the clip stream's width is
    checked by :meth:`~pyvrel.data.dataset.Dataset.videos`)."""
    D = arrays["tracklet_features"].shape[-1]
    if D != cfg.visual_dim:
        raise ConfigError("visual_dim", f"{data}: tracklet_features have {D} values per frame; the config has "
                                        f"visual_dim={cfg.visual_dim} (set model.visual_dim={D})")


class VrdONEDetector:
    """A trained VrdONE ready for inference (what :func:`load` returns, the registry's detector).

    ``model`` is the network (in eval mode), ``cfg`` its config, ``vocabulary`` names the
    tracklet categories and the predicate classes.
    """

    def __init__(self, model: nn.Module, cfg: VrdONEConfig, vocabulary: Vocabulary) -> None:
        self.model, self.cfg, self.vocabulary = model, cfg, vocabulary

    def tracklets(self, arrays: Mapping[str, np.ndarray], width: float | None = None,
                  height: float | None = None) -> list[Tracklet]:
        """The detected tracklets of one video's arrays that VrdONE pairs up (score threshold, boxes
        clamped to the frame when its size is given, deduplicated: :func:`entity_tracklets`)."""
        return entity_tracklets(detected_tracklets(arrays, list(self.vocabulary.objects)), self.cfg, width, height)

    def baseline(self) -> FrequencyPrior:
        """The (unfitted) frequency prior with VrdONE's pairing and output settings, to compare on
        the same tracklets."""
        return FrequencyPrior(topk=self.cfg.topk, min_frames=self.cfg.proposal_min_frames, n_max=self.cfg.n_max_pair)

    def detect(self, dataset: Dataset, split: str = "test", shard: tuple[int, int] = (0, 1)
               ) -> dict[str, list[Relation]]:
        """Relations detected on the ``split`` videos of ``dataset`` from their detected tracklets
        (deduplicated), as ``{video_id: [Relation]}`` ready for :func:`pyvrel.data.write_predictions`;
        ``shard`` as in :meth:`~pyvrel.data.dataset.Dataset.videos`."""
        objects, predicates = list(self.vocabulary.objects), list(self.vocabulary.predicates)
        out = {}
        for anno, arrays in dataset.videos(split, len(objects), shard, self.cfg.clip_dim):
            _check_inputs(arrays, self.cfg, dataset.name)
            tracks = detected_tracklets(arrays, objects)
            out[anno.video_id] = predict_video(self.model, self.cfg, tracks, predicates, anno.width, anno.height)
        return out


def _evaluator(dataset: Dataset, split: str, vocab: Vocabulary,
               groundtruth: dict[str, list[Relation]] | None = None) -> EvalHook:
    """The evaluation hook: detection on the ``split`` videos, sharded over the processes, scored on rank 0
    against ``groundtruth`` (by default the ``split`` annotations, read at the first evaluation)."""
    from pyvrel.eval import evaluate_relations

    groundtruth = {} if groundtruth is None else groundtruth

    def evaluate(model: nn.Module, ctx: EvalContext) -> dict[str, float] | None:
        preds = VrdONEDetector(model.vrdone, model.cfg, vocab).detect(dataset, split, (ctx.rank, ctx.world_size))
        parts = dist.all_gather_objects(preds)
        if not ctx.is_main:
            return None
        if not groundtruth:
            groundtruth.update({v: a.relation_view() for v, a in dataset.annotations(split).items()})
        result = evaluate_relations(groundtruth, {k: v for part in parts for k, v in part.items()})
        return {name: result[section][key] for name, section, key in _METRICS}

    return evaluate


def _vocabulary(given: Mapping[str, list[str]] | None, dataset: Dataset | None = None,
                train_annotations: Mapping[str, VideoAnnotation] | None = None) -> Vocabulary:
    """The run's vocabulary: the ``model.vocabulary`` setting when given, else the dataset's."""
    if given is not None:
        return Vocabulary("run", tuple(given["objects"]), tuple(given["predicates"]))
    return dataset.vocabulary(train_annotations)


def build_task(model_config: Mapping[str, Any], data: str) -> TrainTask:
    """The VrdONE training task (see the module docstring for the ``model:`` keys).

    Training items are the ground-truth pair keys of the training videos packed as the preset says
    (:class:`~pyvrel.models.vrdone.samples.PairSamples`), with offsets and crops redrawn every epoch
    from ``sample_seed`` (default: drawn from the generators :func:`~pyvrel.engine.prepare_run`
    seeds with ``train.seed``); the features of each object are read from the detected tracklets
    that follow it (:func:`~pyvrel.models.vrdone.samples.entity_features`), and so is VrdONE-X's
    extra stream (``tracklet_clip``) when ``clip_dim > 0``.
    """
    cfg, resolved = resolve_config(model_config)
    dataset = open_dataset(data, resolved["world"])
    train_annotations = None if dataset.synthetic else dataset.annotations("train")  # read once: vocabulary, samples
    vocab = _vocabulary(resolved["vocabulary"], dataset, train_annotations)
    resolved["vocabulary"] = {"objects": list(vocab.objects), "predicates": list(vocab.predicates)}
    if cfg.num_classes != len(vocab.predicates):
        raise ConfigError("num_classes", f"the vocabulary has {len(vocab.predicates)} predicates, the config "
                                         f"{cfg.num_classes} (set model.num_classes={len(vocab.predicates)})")
    index = {p: i + 1 for i, p in enumerate(vocab.predicates)}
    videos, missing = [], 0
    for anno, arrays in dataset.videos("train", len(vocab.objects), clip_dim=cfg.clip_dim,
                                       annotations=train_annotations):
        _check_inputs(arrays, cfg, data)
        feats = entity_features(arrays, anno)
        clip = entity_features(arrays, anno, CLIP_KEY) if cfg.clip_dim else None
        missing += sum(1 for r in anno.relations if r.subject_tid not in feats or r.object_tid not in feats)
        videos.append(pair_segments(anno, feats, cfg, index, clip=clip))
    if missing and dist.env_rank() == 0:
        log.warning("%s: %d training relations have an object that no tracklet follows (vIoU < 0.5): skipped",
                    data, missing)
    items = PairSamples(videos, cfg, resolved["sample_seed"])
    if not len(items):
        raise ValueError(f"{data}: no training samples (no relations in the training videos)")
    evaluate = None
    split = resolved["eval_split"]
    if split is not None and dataset.has_split(split):
        groundtruth = None
        if not dataset.synthetic:  # a bad file of the split is found now, not at the first evaluation
            annotations = train_annotations if split == "train" else dataset.annotations(split)
            check_feature_files(dataset.name, annotations)
            groundtruth = {v: a.relation_view() for v, a in annotations.items()}
        evaluate = _evaluator(dataset, split, vocab, groundtruth)
    elif split is not None and dist.env_rank() == 0:
        log.warning("%s: no %s annotations, so no evaluation during training (set model.eval_split)", data, split)
    model = VrdONETrainModel(cfg).to(_DTYPES[resolved["dtype"]])
    return TrainTask(model, items, _collate(cfg.max_seq_len, cfg.max_div_factor), evaluate=evaluate,
                     train_defaults=TRAIN_DEFAULTS[resolved["preset"]], model_config=resolved,
                     eval_metrics=tuple(name for name, _, _ in _METRICS))


def load(checkpoint: Mapping[str, Any], ema: bool = True) -> VrdONEDetector:
    """The trained VrdONE of a ``pyvrel train --model vrdone`` checkpoint (EMA weights when present
    and ``ema``), with its config and vocabulary (the registry's loader)."""
    from pyvrel.engine.checkpoint import checkpoint_weights

    cfg, resolved = resolve_config(checkpoint["meta"]["model_config"])
    wrapper = VrdONETrainModel(cfg).to(_DTYPES[resolved["dtype"]])
    wrapper.load_state_dict(checkpoint_weights(dict(checkpoint), ema))
    return VrdONEDetector(wrapper.vrdone.eval(), cfg, _vocabulary(resolved["vocabulary"]))
