"""vRGV as a :mod:`pyvrel.engine` task (``pyvrel train --model vrgv --data DIR|synthetic``) and grounding.

Data (one ``.npz`` per video, ``DIR/features/<video_id>.npz``; :mod:`pyvrel.data.features`):
``proposal_frames (T,)`` the video frame of each sampled frame (non-decreasing; vRGV samples
``round(linspace(0, frame_count - 1, T))``), ``proposal_boxes (T, M, 4)`` pixel boxes,
``proposal_features (T, M, D)`` appearance; ``T = num_frames``, ``M = num_proposals``,
``D = feature_dim``. Training reads only the relation *triplets* of the training annotations
(video-level labels, no boxes); the synthetic world writes these arrays with its grounding stream
(``world.grounding``).

The ``model:`` section holds ``preset`` (``"synthetic"`` or ``"vidvrd"``: the code's sizes),
``world`` (:class:`~pyvrel.data.synthetic.SynthConfig` overrides of the built-in world, on top of
:data:`~pyvrel.data.dataset.DEMO_WORLD` with the grounding stream at the model's sizes), ``stage`` (1: the
stage-1 model without relation attention, 2: vRGV), ``init`` (stage 2: a stage-1 checkpoint whose
*decoder* is loaded, §2.3), ``glove`` (a GloVe text file of your own; default the offline hashed
vectors, :mod:`pyvrel.data.text`), ``compound`` (``"mean"`` or the code's ``"zeros"``),
``eval_split``, ``objects`` (the categories of the word table; default the data's), ``captions``
(the caption words, built from the training triplets) and any :class:`VRGVConfig` field.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from pyvrel.data import FormatError, Relation, VideoAnnotation
from pyvrel.data.dataset import Dataset, open_dataset, synthetic_world
from pyvrel.data.text import word_vectors
from pyvrel.engine.config import ConfigError, config_to_dict, preset_config
from pyvrel.engine.registry import TrainTask
from pyvrel.engine.trainer import EvalContext, EvalHook
from pyvrel.models.vrgv.config import CaptionVocabulary, VRGVConfig
from pyvrel.models.vrgv.grounding import ground_pair, temporal_score
from pyvrel.models.vrgv.model import VRGV, VRGVTrainModel, box_term

__all__ = ["REGION_KEYS", "THRESHOLD_FRACTIONS", "VideoRegions", "build_task", "check_regions", "evaluate_grounding",
           "ground", "load_grounder", "load_regions", "model_from_checkpoint", "resolve_config", "select_threshold"]

log = logging.getLogger("pyvrel.models.vrgv")

REGION_KEYS = ("proposal_frames", "proposal_boxes", "proposal_features")
_PRESETS = {"synthetic": VRGVConfig.synthetic, "vidvrd": VRGVConfig}
_TASK_KEYS = ("preset", "world", "stage", "init", "glove", "compound", "eval_split", "objects", "captions")
#: Spatial IoU thresholds of the paper's Table 2 columns; "avg" is the code's tIoU over all three.
SPATIAL_THRESHOLDS = {"0.3": (0.3,), "0.5": (0.5,), "0.7": (0.7,), "avg": (0.3, 0.5, 0.7)}


def resolve_config(model_config: Mapping[str, Any]) -> tuple[VRGVConfig, dict[str, Any]]:
    """The :class:`VRGVConfig` of a ``model:`` section and the section with defaults filled in
    (:class:`ConfigError` naming the key on a bad value)."""
    section = dict(model_config)
    preset = section.get("preset", "synthetic")
    stage = section.get("stage", 2)
    if stage not in (1, 2):
        raise ConfigError("stage", f"expected 1 or 2, got {stage!r}")
    compound = section.get("compound", "mean")
    if compound not in ("mean", "zeros"):
        raise ConfigError("compound", f"expected 'mean' or 'zeros', got {compound!r}")
    eval_split = section.get("eval_split", "test")
    if eval_split not in ("train", "test", None):
        raise ConfigError("eval_split", f"expected 'train', 'test' or null, got {eval_split!r}")
    overrides = {k: v for k, v in section.items() if k not in _TASK_KEYS}
    cfg = preset_config(VRGVConfig, _PRESETS, preset, overrides)
    world = synthetic_world({"feature_dim": cfg.feature_dim, "proposals": cfg.num_proposals,
                             "sampled_frames": cfg.num_frames, "grounding": True, **section.get("world", {})})
    resolved = {"preset": preset, "world": world, "stage": stage, "init": section.get("init"),
                "glove": section.get("glove"), "compound": compound, "eval_split": eval_split,
                "objects": section.get("objects"), "captions": section.get("captions"),
                **config_to_dict(cfg)}  # every field: a checkpoint does not depend on later preset changes
    return cfg, resolved


# ---- data ---------------------------------------------------------------------------------------


@dataclass
class VideoRegions:
    """The grounding inputs of one video: ``frames (T,)`` int64, ``boxes (T, M, 4)`` pixels,
    ``regions (T, M, D + 5)`` float32 (appearance, then :func:`~pyvrel.models.vrgv.model.box_term`)."""

    video_id: str
    frame_count: int
    frames: Tensor
    boxes: Tensor
    regions: Tensor


def check_regions(arrays: Mapping[str, np.ndarray], cfg: VRGVConfig, anno: VideoAnnotation, file: str
                  ) -> VideoRegions:
    """Validate one video's ``proposal_*`` arrays (:class:`FormatError` naming file, video and key)."""
    def fail(key: str, message: str) -> FormatError:
        return FormatError(message, file=file, video=anno.video_id, field=key)

    for key in REGION_KEYS:
        if key not in arrays:
            raise fail(key, f"missing (has {', '.join(sorted(arrays))}); vRGV needs {', '.join(REGION_KEYS)}")
    frames, boxes, feats = (np.asarray(arrays[k]) for k in REGION_KEYS)
    T, M, D = cfg.num_frames, cfg.num_proposals, cfg.feature_dim
    for key, a, shape in (("proposal_frames", frames, (T,)), ("proposal_boxes", boxes, (T, M, 4)),
                          ("proposal_features", feats, (T, M, D))):
        if a.shape != shape:
            raise fail(key, f"expected shape {shape} (num_frames={T}, num_proposals={M}, feature_dim={D}), "
                            f"got {a.shape}")
    if not np.issubdtype(frames.dtype, np.integer):
        raise fail("proposal_frames", f"expected integers, got {frames.dtype}")
    if (np.diff(frames) < 0).any() or frames[0] < 0 or frames[-1] >= anno.frame_count:
        raise fail("proposal_frames", f"expected non-decreasing frames in [0, {anno.frame_count})")
    if not (np.isfinite(boxes).all() and np.isfinite(feats).all()):
        raise fail("proposal_boxes" if not np.isfinite(boxes).all() else "proposal_features", "NaN or infinite values")
    b = torch.from_numpy(boxes.astype(np.float32))
    regions = torch.cat([torch.from_numpy(feats.astype(np.float32)), box_term(b, anno.width, anno.height)], -1)
    return VideoRegions(anno.video_id, anno.frame_count, torch.from_numpy(frames.astype(np.int64)), b, regions)


def load_regions(dataset: Dataset, split: str, cfg: VRGVConfig, shard: tuple[int, int] = (0, 1),
                 annotations: Mapping[str, VideoAnnotation] | None = None
                 ) -> Iterator[tuple[VideoAnnotation, VideoRegions]]:
    """``(annotation, regions)`` of the ``split`` videos of a dataset, checked by :func:`check_regions`."""
    for anno, arrays, file in dataset.arrays(split, lambda k: k.startswith("proposal_"), shard, annotations):
        yield anno, check_regions(arrays, cfg, anno, file)


class _Samples(torch.utils.data.Dataset):
    """One item per (training video, distinct relation triplet), as vRGV's ``vrelation_train.json``."""

    def __init__(self, videos: list[Tensor], items: list[tuple[int, int, int, list[int]]]) -> None:
        self.videos, self.items = videos, items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[Tensor, int, int, list[int]]:
        v, s, o, tokens = self.items[i]
        return self.videos[v], s, o, tokens


def collate(items: Sequence[tuple[Tensor, int, int, list[int]]]) -> dict[str, Tensor]:
    """Stack regions; pad captions with ``<pad>`` (0) -> the batch of :class:`VRGVTrainModel`."""
    lengths = torch.tensor([len(it[3]) for it in items])
    tokens = torch.zeros(len(items), int(lengths.max()), dtype=torch.int64)
    for i, it in enumerate(items):
        tokens[i, : len(it[3])] = torch.tensor(it[3])
    return {"regions": torch.stack([it[0] for it in items]), "subject": torch.tensor([it[1] for it in items]),
            "object": torch.tensor([it[2] for it in items]), "tokens": tokens, "lengths": lengths}


def _category_ids(objects: Sequence[str], triplet: Sequence[str], where: str) -> tuple[int, int]:
    index = {c: i for i, c in enumerate(objects)}
    for name in (triplet[0], triplet[2]):
        if name not in index:
            raise ValueError(f"{where}: unknown category {name!r} in {'-'.join(triplet)!r} "
                             f"(known: {', '.join(objects[:8])}{', ...' if len(objects) > 8 else ''})")
    return index[triplet[0]], index[triplet[2]]


# ---- task ---------------------------------------------------------------------------------------


def _load_decoder(model: VRGVTrainModel, path: str) -> None:
    """Stage 2 starts from the stage-1 decoder only (§2.3, the code's ``resume()``)."""
    from pyvrel.engine.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    weights = {k[len("decoder."):]: v for k, v in ckpt["model"].items() if k.startswith("decoder.")}
    try:
        model.decoder.load_state_dict(weights)
    except RuntimeError as e:
        raise ConfigError("init", f"{path}: its decoder does not fit this run's ({e}); train stage 1 on the same "
                                  "data and config") from None


def build_task(model_config: Mapping[str, Any], data: str) -> TrainTask:
    """The vRGV training task (module docstring for the ``model:`` keys)."""
    cfg, resolved = resolve_config(model_config)
    dataset = open_dataset(data, resolved["world"])
    train_annotations = dataset.annotations("train")
    if resolved["objects"] is None:
        resolved["objects"] = list(dataset.vocabulary(train_annotations).objects)
    objects = resolved["objects"]
    videos, triplets, ids = [], [], []
    for anno, regions in load_regions(dataset, "train", cfg, annotations=train_annotations):
        videos.append(regions.regions)
        triplets.append(sorted(anno.triplets()))
        ids.append(anno.video_id)
    if not any(triplets):
        raise ValueError(f"{data}: no training samples (no relations in the training videos)")
    if resolved["captions"] is None:
        resolved["captions"] = CaptionVocabulary.build((t for ts in triplets for t in ts), cfg.cooccurrence).words[4:]
    captions = CaptionVocabulary(resolved["captions"])
    items = [(v, *_category_ids(objects, t, f"{data}: training video {ids[v]}"), captions.encode(t, cfg.cooccurrence))
             for v, ts in enumerate(triplets) for t in ts]
    table = torch.from_numpy(word_vectors(objects, cfg.word_dim, resolved["glove"], compound=resolved["compound"]))
    model = VRGVTrainModel(cfg, len(captions), table, resolved["stage"])
    if resolved["init"] is not None:
        if resolved["stage"] != 2:
            raise ConfigError("init", "only stage 2 loads a stage-1 decoder")
        _load_decoder(model, resolved["init"])
    evaluate = None
    split = resolved["eval_split"]
    if resolved["stage"] == 2 and split is not None and dataset.has_split(split):
        evaluate = _evaluator(dataset, resolved, cfg, split)
    train_defaults = {"optimizer": "adamw", "lr": 1e-4, "weight_decay": 0.0, "batch_size": 32, "epochs": 10,
                      "seed": 666, "eval_every": 1, "best_metric": "AccR" if evaluate else None}
    return TrainTask(model, _Samples(videos, items), collate, evaluate=evaluate, train_defaults=train_defaults,
                     model_config=resolved)


def model_from_checkpoint(checkpoint: Mapping[str, Any], ema: bool = True) -> tuple[VRGV, VRGVConfig, dict[str, Any]]:
    """The stage-2 grounder of a ``pyvrel train --model vrgv`` checkpoint, its config and its resolved
    ``model:`` section (``objects``, ``world``, ...)."""
    from pyvrel.engine.checkpoint import checkpoint_weights

    cfg, resolved = resolve_config(checkpoint["meta"]["model_config"])
    if resolved["stage"] != 2:
        raise ValueError("a stage-1 vRGV checkpoint has no spatial attention and cannot ground; train stage 2 "
                         "(model.stage=2, model.init=<stage-1 checkpoint>)")
    table = torch.zeros(len(resolved["objects"]), cfg.word_dim)
    model = VRGVTrainModel(cfg, len(resolved["captions"]) + 4, table, 2)
    model.load_state_dict(checkpoint_weights(dict(checkpoint), ema))
    return model.grounder.eval(), cfg, resolved


# ---- grounding and evaluation -----------------------------------------------------------------------


@dataclass
class VRGVGrounder:
    """A trained vRGV grounder (:class:`pyvrel.engine.Grounder`): the stage-2 network, its config and
    its resolved ``model:`` section (``objects``: the word table's categories)."""

    model: VRGV
    cfg: VRGVConfig
    resolved: dict[str, Any]

    def ground(self, dataset: Dataset, split: str = "test",
               queries: Mapping[str, Sequence[tuple[str, str, str]]] | None = None, *, legacy: bool = False,
               greedy: bool = False, temporal_threshold: float | None = None) -> dict[str, list[Relation]]:
        """:func:`ground` with this model; ``greedy``: vRGV* (``pairwise_weight=0``); ``temporal_threshold``:
        σ instead of the config's (e.g. from :func:`select_threshold`)."""
        cfg = self.cfg if temporal_threshold is None else replace(self.cfg, temporal_threshold=temporal_threshold)
        return ground(self.model, cfg, self.resolved["objects"], dataset, split, queries, legacy=legacy,
                      pairwise_weight=0.0 if greedy else None)

    @torch.no_grad()
    def temporal_attention(self, dataset: Dataset, split: str, video_id: str, triplet: Sequence[str]
                           ) -> tuple[np.ndarray, np.ndarray, float]:
        """The sampled video frames ``(T,)`` of a video, the temporal score ``β2[clip(t)] + β1[t]``
        of the query ``triplet`` on them ``(T,)`` and the threshold the grounding applies to it."""
        annotations = dataset.annotations(split)
        if video_id not in annotations:
            raise ValueError(f"video {video_id!r} is not in the {split} split of {dataset.name}")
        s, o = _category_ids(self.resolved["objects"], triplet, f"video {video_id}: query")
        device = next(self.model.parameters()).device
        for anno, video in load_regions(dataset, split, self.cfg, annotations={video_id: annotations[video_id]}):
            if anno.video_id == video_id:
                res = self.model(video.regions[None].to(device), torch.tensor([s], device=device),
                                 torch.tensor([o], device=device))
                beta_clip = res.beta_clip[0] if self.cfg.temporal_score == "clip_frame" else None
                return video.frames.numpy(), temporal_score(res.beta_frame[0], beta_clip), self.cfg.temporal_threshold
        raise ValueError(f"video {video_id!r}: no regions in the {split} split of {dataset.name}")


def load_grounder(checkpoint: Mapping[str, Any], ema: bool = True) -> VRGVGrounder:
    """The registry's ``ground`` of ``vrgv``: :func:`model_from_checkpoint` as a :class:`VRGVGrounder`."""
    return VRGVGrounder(*model_from_checkpoint(checkpoint, ema))


@torch.no_grad()
def ground(model: VRGV, cfg: VRGVConfig, objects: Sequence[str], dataset: Dataset, split: str = "test",
           queries: Mapping[str, Sequence[tuple[str, str, str]]] | None = None, *, legacy: bool = False,
           pairwise_weight: float | None = None, shard: tuple[int, int] = (0, 1)) -> dict[str, list[Relation]]:
    """Ground queries in the ``split`` videos of a dataset (:func:`pyvrel.data.dataset.open_dataset`) -> ``{video_id: [Relation]}`` (official format,
    one relation per query, ``score`` = subject + object tube score).

    ``queries``: triplets per video (default: each video's ground-truth triplets); a video of the
    queries that the split lacks is an error. ``legacy``/``pairwise_weight`` as in
    :func:`~pyvrel.models.vrgv.grounding.ground_pair` (default ``cfg.pairwise_weight``; 0: vRGV*).
    The model runs once per distinct (subject, object) pair: vRGV's grounding reads no predicate.
    """
    annotations = dataset.annotations(split)
    if queries is not None:
        unknown = sorted(set(queries) - set(annotations))
        if unknown:
            raise ValueError(f"queries name videos that the {split} split of {dataset.name} lacks: "
                             f"{', '.join(unknown[:5])}")
        annotations = {v: a for v, a in annotations.items() if v in queries}
    lam = cfg.pairwise_weight if pairwise_weight is None else pairwise_weight
    clip_score = cfg.temporal_score == "clip_frame"
    device = next(model.parameters()).device
    out: dict[str, list[Relation]] = {}
    for anno, video in load_regions(dataset, split, cfg, shard, annotations):
        if anno.video_id not in annotations:  # the synthetic world walks every video of the split
            continue
        wanted = sorted(anno.triplets()) if queries is None else list(queries[anno.video_id])
        pairs = sorted({_category_ids(objects, t, f"video {anno.video_id}: query") for t in wanted})
        if not pairs:
            continue
        s, o = (torch.tensor(x, device=device) for x in zip(*pairs))
        res = model(video.regions[None].expand(len(pairs), -1, -1, -1).to(device), s, o)
        grounded = {}
        for i, pair in enumerate(pairs):
            grounded[pair] = ground_pair(video.boxes, video.frames, anno.frame_count, res.alpha_s[i], res.alpha_o[i],
                                         res.beta_frame[i], res.beta_clip[i] if clip_score else None,
                                         temporal_threshold=cfg.temporal_threshold,
                                         min_segment=cfg.min_segment, pairwise_weight=lam, legacy=legacy)
        rels = []
        for t in wanted:
            g = grounded[_category_ids(objects, t, "")]
            rels.append(Relation(tuple(t), g.duration, g.sub_traj, g.obj_traj, g.score))
        out[anno.video_id] = rels
    return out


#: :func:`select_threshold`'s candidates, as fractions of the score of uniform attention
#: (:meth:`VRGVConfig.uniform_score`; the code's 0.04 is 0.37 of it; 1.0: the frames above the mean score).
THRESHOLD_FRACTIONS = (0.35, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1)


def select_threshold(model: VRGV, cfg: VRGVConfig, objects: Sequence[str], dataset: Dataset, split: str = "train",
                     fractions: Sequence[float] = THRESHOLD_FRACTIONS, pairwise_weight: float | None = None
                     ) -> tuple[float, dict[float, float]]:
    """The temporal threshold σ that grounds the ground-truth triplets of the ``split`` videos best (AccR, the
    code's tIoU over the three spatial thresholds), as the paper chose its 0.04 on a validation split of the
    training data: each ``fraction`` of the uniform score (:meth:`VRGVConfig.uniform_score`) is tried (the first
    best wins a tie). Needs the split's ground-truth boxes, so the selection is not weakly supervised.
    Returns ``(σ, {σ: AccR})``."""
    groundtruth = {v: a.relation_view() for v, a in dataset.annotations(split).items()}
    uniform = cfg.uniform_score()
    scores = {}
    for f in fractions:
        sigma = f * uniform
        grounded = ground(model, replace(cfg, temporal_threshold=sigma), objects, dataset, split,
                          pairwise_weight=pairwise_weight)
        scores[sigma] = evaluate_grounding(groundtruth, grounded)["avg"]["AccR"]
    return max(scores, key=scores.__getitem__), scores


def evaluate_grounding(groundtruth: Mapping[str, Sequence[Relation]], groundings: Mapping[str, Sequence[Relation]],
                       per_video: bool = False) -> dict[str, dict[str, Any]]:
    """AccS / AccO / AccR (per video, then averaged) at each spatial threshold of the paper's Table 2
    (``"0.3"``, ``"0.5"``, ``"0.7"``) and the code's tIoU over all three (``"avg"``); with ``per_video``,
    each also has ``"per_video"`` (:func:`pyvrel.eval.grounding_accuracy`)."""
    from pyvrel.eval import grounding_accuracy

    return {name: grounding_accuracy(groundtruth, groundings, iou_thresholds=ts, per_video=per_video)
            for name, ts in SPATIAL_THRESHOLDS.items()}


def _evaluator(dataset: Dataset, resolved: Mapping[str, Any], cfg: VRGVConfig, split: str) -> EvalHook:
    """Grounds every ground-truth triplet of the ``split`` videos; logs ``AccS``/``AccO``/``AccR`` (the
    code's tIoU over the three thresholds) and ``AccR@0.5``."""
    from pyvrel.engine import distributed as dist

    groundtruth: dict[str, list[Relation]] = {}

    def evaluate(model: nn.Module, ctx: EvalContext) -> dict[str, float] | None:
        parts = dist.all_gather_objects(ground(model.grounder, cfg, resolved["objects"], dataset, split,
                                               shard=(ctx.rank, ctx.world_size)))
        if not ctx.is_main:
            return None
        if not groundtruth:
            groundtruth.update({v: a.relation_view() for v, a in dataset.annotations(split).items()})
        res = evaluate_grounding(groundtruth, {k: v for part in parts for k, v in part.items()})
        return {**{k: res["avg"][k] for k in ("AccS", "AccO", "AccR")}, "AccR@0.5": res["0.5"]["AccR"]}

    return evaluate
