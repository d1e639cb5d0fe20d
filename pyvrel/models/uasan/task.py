"""UASAN as a :mod:`pyvrel.engine` task: ``pyvrel train --model uasan --data synthetic|DIR``.

The ``model:`` section holds:

* ``world``: ``SynthConfig`` settings over :data:`WORLD` (the open-vocabulary synthetic world:
  ``open_vocab=16``, its concept features and base/novel split);
* ``text``: the text encoder (:func:`pyvrel.data.text.text_encoder`: ``"hashed"`` (default, offline),
  ``"minilm"``, ``"words"``, ``"glove:PATH"``) and ``text_dim`` (width of the hashed encoders);
* ``split``: ``{"objects": {"base": [...], "novel": [...]}, "predicates": {...}}``; null: the
  synthetic world's (a dataset folder must give one: VidVRD's published lists are not shipped);
* ``union``: ``"box"`` (per-frame union box, the paper's, default) or ``"segment"`` (the code's
  segment mean); ``min_frames``: shared frames for a pair in a segment (15);
* ``eval_setting`` (``"sgdet"`` | ``"sgcls"`` | ``"predcls"``) and ``eval_predicates``
  (``"all"`` | ``"novel"`` | ``"base"``): what ``pyvrel detect`` and the training hook predict;
  ``eval_split``: the hook's videos (``"test"``; null: no hook);
* any :class:`~pyvrel.models.uasan.model.UASANConfig` field (``variant: "A"`` is Table 4's Model A).

Training uses base labels only (asserted in :func:`training_items`): ground-truth tracklets of base
categories, their segments' pairs, labels restricted to base predicates (pairs whose labels are all
novel are left out), base class names only in the classifier. Inference (:class:`UASANDetector`)
pairs up detected tracklets (SGDet) or ground-truth ones (SGCls, PredCls), classifies the
trajectories over all categories (PredCls: the true ones, score 1), scores the chosen predicate
split, keeps the top 10 predicates per pair and 200 triplets (``p * s * o``) per segment, and
associates segments with VidVRD-II's greedy association (linkage 0.8, top 200: the code's settings).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from pyvrel.data import Relation, VideoAnnotation
from pyvrel.data.dataset import Dataset, open_dataset, synthetic_world
from pyvrel.data.synthetic import World
from pyvrel.data.synthetic.world import SynthConfig
from pyvrel.data.text import TextEncoder, text_encoder
from pyvrel.data.tracklets import Tracklet, detected_tracklets
from pyvrel.data.vocab import Vocabulary
from pyvrel.engine.config import ConfigError, config_from_dict, config_to_dict
from pyvrel.engine.registry import TrainTask
from pyvrel.engine.trainer import EvalContext, EvalHook
from pyvrel.eval.association import SegmentRelation, Track, associate
from pyvrel.models.uasan.features import CONCEPT_KEY, GRID_KEY, Segment, gt_tracklets, segment_inputs
from pyvrel.models.uasan.model import UASAN, UASANConfig

__all__ = ["TRAIN_DEFAULTS", "WORLD", "UASANDetector", "UASANTrainModel", "build_task", "collate",
           "evaluate_open_vocab", "load", "resolve_config", "training_items"]


#: The open-vocabulary synthetic world UASAN trains on by default (over ``DEMO_WORLD``).
WORLD: dict[str, Any] = {"open_vocab": 16, "num_videos": 120, "frames": [60, 150]}
#: Training settings (TrainConfig keys): Adam-like AdamW lr 1e-3 (the paper: Adam 1e-4, 50 epochs,
#: batch 8 segments on VidVRD), a short CPU schedule.
TRAIN_DEFAULTS: dict[str, Any] = {"lr": 1e-3, "weight_decay": 1e-4, "batch_size": 16, "epochs": 12,
                                  "warmup_epochs": 1.0, "clip_grad_norm": 1.0, "eval_every": 0, "log_every": 20,
                                  "checkpoint_every": 0, "device": "cpu"}
_TASK_KEYS = {"world": None, "text": "hashed", "text_dim": 64, "split": None, "union": "box", "min_frames": 15,
              "eval_setting": "sgdet", "eval_predicates": "all", "eval_split": "test"}
_CHOICES = {"union": ("box", "segment"), "eval_setting": ("sgdet", "sgcls", "predcls"),
            "eval_predicates": ("all", "novel", "base"), "eval_split": ("train", "test", None)}
TOPK_PREDICATES, TOPK_SEGMENT = 10, 200
_METRICS = ("RelDet_mAP", "RelDet_R@50", "RelDet_R@100")


def _check_split(value: Any) -> dict[str, dict[str, list[str]]] | None:
    if value is None:
        return None
    ok = (isinstance(value, Mapping) and set(value) == {"objects", "predicates"}
          and all(isinstance(v, Mapping) and set(v) == {"base", "novel"} and all(
              isinstance(x, list) and all(isinstance(n, str) for n in x) for x in v.values()) for v in value.values()))
    if not ok:
        raise ConfigError("split", "expected {'objects': {'base': [...], 'novel': [...]}, 'predicates': {...}}, "
                                   f"got {value!r}")
    for kind, parts in value.items():
        both = set(parts["base"]) & set(parts["novel"])
        if both:
            raise ConfigError("split", f"{kind} both base and novel: {sorted(both)}")
    return {k: {p: list(v[p]) for p in ("base", "novel")} for k, v in value.items()}


def resolve_config(model_config: Mapping[str, Any]) -> tuple[UASANConfig, dict[str, Any]]:
    """The :class:`UASANConfig` of a ``model:`` section and the section with defaults filled in
    (the network's ``visual_dim``/``text_dim`` follow the world and the text encoder)."""
    section = dict(model_config)
    resolved = {k: section.get(k, v) for k, v in _TASK_KEYS.items()}
    for key, choices in _CHOICES.items():
        if resolved[key] not in choices:
            raise ConfigError(key, f"expected one of {', '.join(map(repr, choices))}, got {resolved[key]!r}")
    if not isinstance(resolved["text"], str):
        raise ConfigError("text", f"expected an encoder name ('hashed', 'minilm', 'words', 'glove:PATH'), "
                                  f"got {resolved['text']!r}")
    for key in ("text_dim", "min_frames"):
        if isinstance(resolved[key], bool) or not isinstance(resolved[key], int) or resolved[key] < 1:
            raise ConfigError(key, f"expected a positive integer, got {resolved[key]!r}")
    resolved["world"] = synthetic_world({**WORLD, **dict(resolved["world"] or {})})
    resolved["split"] = _check_split(resolved["split"])
    overrides = {k: v for k, v in section.items() if k not in _TASK_KEYS}
    cfg = config_from_dict(UASANConfig, overrides)
    resolved.update({k: v for k, v in config_to_dict(cfg).items() if k in overrides})
    return cfg, resolved


def _world_split(world: Mapping[str, Any]) -> dict[str, dict[str, list[str]]]:
    synth = config_from_dict(SynthConfig, world, prefix="world.")
    if not synth.open_vocab:
        raise ConfigError("world.open_vocab", "UASAN reads the open-vocabulary stream: set it > 0 (e.g. 16)")
    return World(synth).split


def _encoded(encoder: TextEncoder, names: Sequence[str]) -> Tensor:
    return encoder.encode(list(names))


def training_items(segments: Sequence[Segment], split: Mapping[str, Mapping[str, list[str]]]
                   ) -> list[dict[str, Tensor]]:
    """Training items of segments of ground-truth tracklets: only base categories and base
    predicates reach them (tracklets of novel categories and their pairs are dropped, novel labels
    removed, pairs left with only novel labels dropped). Raises RuntimeError if anything novel is left."""
    objects = {n: i for i, n in enumerate(split["objects"]["base"])}
    predicates = {n: i for i, n in enumerate(split["predicates"]["base"])}
    novel_objects, novel_predicates = set(split["objects"]["novel"]), set(split["predicates"]["novel"])
    items = []
    for seg in segments:
        keep_t = [i for i, t in enumerate(seg.tracklets) if t.category in objects]
        where = {i: k for k, i in enumerate(keep_t)}
        rows, pairs, labels = [], [], []
        for p, (i, j) in enumerate(seg.pairs.tolist()):
            names = seg.labels[p]
            base = sorted(n for n in names if n in predicates)
            if i in where and j in where and (base or not names):
                rows.append(p)
                pairs.append((where[i], where[j]))
                labels.append(base)
        if not rows:
            continue
        cats = [seg.tracklets[i].category for i in keep_t]
        if novel_objects & set(cats) or novel_predicates & {n for ls in labels for n in ls}:
            raise RuntimeError("training_items: a novel category or predicate reached the training data")
        target = torch.zeros(len(rows), len(predicates))
        for r, ls in enumerate(labels):
            target[r, [predicates[n] for n in ls]] = 1.0
        items.append({"traj": torch.from_numpy(seg.traj[keep_t]),
                      "traj_label": torch.tensor([objects[c] for c in cats]),
                      "pairs": torch.tensor(pairs, dtype=torch.int64).reshape(-1, 2),
                      "union": torch.from_numpy(seg.union[rows]), "motion": torch.from_numpy(seg.motion[rows]),
                      "labels": target})
    return items


def collate(items: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """Concatenate segment items (pair indices offset into the concatenated trajectories)."""
    offsets = np.cumsum([0] + [len(it["traj"]) for it in items[:-1]])
    out = {k: torch.cat([it[k] for it in items]) for k in ("traj", "traj_label", "union", "motion", "labels")}
    out["pairs"] = torch.cat([it["pairs"] + int(o) for it, o in zip(items, offsets)])
    return out


class UASANTrainModel(nn.Module):
    """The network with the base classes' text vectors: ``forward(batch)`` -> eq. 12's losses."""

    def __init__(self, cfg: UASANConfig, object_text: Tensor, predicate_text: Tensor) -> None:
        super().__init__()
        self.cfg, self.net = cfg, UASAN(cfg)
        self.register_buffer("object_text", object_text, persistent=False)
        self.register_buffer("predicate_text", predicate_text, persistent=False)

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        dev = self.object_text.device
        return self.net({k: v.to(dev) for k, v in batch.items()}, self.object_text, self.predicate_text)


def _concept_tracklets(arrays: Mapping[str, np.ndarray], objects: list[str]) -> list[Tracklet]:
    """Detected tracklets whose per-frame features are their concept features (class-agnostic: the
    category is classified later)."""
    tracks = detected_tracklets(arrays, objects)
    for k, t in enumerate(tracks):
        t.features = arrays[CONCEPT_KEY][k, :len(t.boxes)]
    return tracks


class UASANDetector:
    """A trained UASAN for inference: ``setting`` (``"sgdet"``, ``"sgcls"``, ``"predcls"``) and
    ``predicates`` (``"all"``, ``"novel"``, ``"base"``: the classes scored) as in the module docstring."""

    def __init__(self, net: UASAN, vocabulary: Vocabulary, split: Mapping[str, Mapping[str, list[str]]],
                 encoder: TextEncoder, *, setting: str = "sgdet", predicates: str = "all", union: str = "box",
                 min_frames: int = 15) -> None:
        if setting not in _CHOICES["eval_setting"] or predicates not in ("all", "novel", "base"):
            raise ValueError(f"UASANDetector: bad setting {setting!r} or predicates {predicates!r}")
        self.net, self.vocabulary, self.split, self.encoder = net.eval(), vocabulary, split, encoder
        self.setting, self.predicates, self.union, self.min_frames = setting, predicates, union, min_frames

    def predicate_names(self) -> list[str]:
        if self.predicates == "all":
            return list(self.vocabulary.predicates)
        return list(self.split["predicates"][self.predicates])

    @torch.no_grad()
    def class_embeddings(self) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Embeddings of every object name and of the scored predicate names (unseen ones included)."""
        return (self.net.object_embeddings(_encoded(self.encoder, self.vocabulary.objects)),
                self.net.predicate_embeddings(_encoded(self.encoder, self.predicate_names())))

    def segments(self, annotation: VideoAnnotation, arrays: Mapping[str, np.ndarray]) -> list[Segment]:
        tracks = (_concept_tracklets(arrays, list(self.vocabulary.objects)) if self.setting == "sgdet"
                  else gt_tracklets(annotation, arrays))
        return segment_inputs(tracks, arrays[GRID_KEY], annotation.frame_count, (annotation.width, annotation.height),
                              min_frames=self.min_frames, union=self.union)

    @torch.no_grad()
    def detect_video(self, annotation: VideoAnnotation, arrays: Mapping[str, np.ndarray],
                     embeddings: tuple[Tensor, tuple[Tensor, Tensor]] | None = None) -> list[Relation]:
        objects, predicates = embeddings or self.class_embeddings()
        names, pnames = list(self.vocabulary.objects), self.predicate_names()
        segs = self.segments(annotation, arrays)
        if not segs:
            return []
        items = [{"traj": torch.from_numpy(s.traj), "pairs": torch.from_numpy(s.pairs),
                  "union": torch.from_numpy(s.union), "motion": torch.from_numpy(s.motion)} for s in segs]
        offsets = np.cumsum([0] + [len(s.traj) for s in segs])
        pair_offsets = np.cumsum([0] + [len(s.pairs) for s in segs])
        traj = torch.cat([it["traj"] for it in items])
        pairs = torch.cat([it["pairs"] + int(o) for it, o in zip(items, offsets)])
        probs = self.net.scores(self.net.relation_logits(traj, pairs, torch.cat([it["union"] for it in items]),
                                                         torch.cat([it["motion"] for it in items]), predicates))
        if self.setting == "predcls":
            cats = [t.category for s in segs for t in s.tracklets]
            cscore = torch.ones(len(traj))
        else:
            cscore, cidx = torch.softmax(self.net.trajectory_logits(traj, objects), -1).max(-1)
            cats = [names[i] for i in cidx.tolist()]
        k = min(TOPK_PREDICATES, probs.shape[1])
        top_p, top_i = probs.topk(k, -1)
        out = []
        for si, seg in enumerate(segs):
            cands = []
            for p in range(pair_offsets[si], pair_offsets[si + 1]):
                a, b = pairs[p].tolist()
                s, o = seg.tracklets[a - offsets[si]], seg.tracklets[b - offsets[si]]
                lo, hi = max(s.start, o.start), min(s.end, o.end)
                sub = Track(lo, s.boxes[lo - s.start: hi - s.start])
                obj = Track(lo, o.boxes[lo - o.start: hi - o.start])
                for score, c in zip(top_p[p].tolist(), top_i[p].tolist()):
                    cands.append(SegmentRelation((cats[a], pnames[c], cats[b]),
                                                 score * float(cscore[a]) * float(cscore[b]), sub, obj))
            cands.sort(key=lambda r: -r.score)
            out.append((seg.span, cands[:TOPK_SEGMENT]))
        return associate(out, "vidvrd2", linkage_threshold=0.8, association_topk=200)

    def detect(self, dataset: Dataset, split: str = "test", shard: tuple[int, int] = (0, 1)
               ) -> dict[str, list[Relation]]:
        """``{video_id: [Relation]}`` of the ``split`` videos (the registry's detector interface)."""
        emb = self.class_embeddings()
        wanted = lambda k: k in (CONCEPT_KEY, GRID_KEY) or k.startswith("tracklet_")  # noqa: E731
        return {anno.video_id: self.detect_video(anno, _checked(arrays, file, anno), emb)
                for anno, arrays, file in dataset.arrays(split, wanted, shard)}

    @torch.no_grad()
    def trajectory_recall(self, dataset: Dataset, split: str = "test", ks: Sequence[int] = (5, 10)
                          ) -> dict[str, dict[str, float]]:
        """Open-vocabulary trajectory classification: R@K of the ground-truth trajectories (mean concept
        feature) of novel / base / all categories, ranked among that split's categories."""
        feats, cats = [], []
        wanted = lambda k: k in (CONCEPT_KEY, GRID_KEY) or k.startswith("tracklet_")  # noqa: E731
        for anno, arrays, file in dataset.arrays(split, wanted):
            for t in gt_tracklets(anno, _checked(arrays, file, anno)):
                feats.append(t.features.mean(0))
                cats.append(t.category)
        out = {}
        for part in ("novel", "base", "all"):
            names = list(self.vocabulary.objects) if part == "all" else list(self.split["objects"][part])
            rows = [i for i, c in enumerate(cats) if c in names]
            if not rows:
                continue
            logits = self.net.trajectory_logits(torch.from_numpy(np.stack([feats[i] for i in rows])),
                                                self.net.object_embeddings(_encoded(self.encoder, names)))
            rank = (logits > logits[torch.arange(len(rows)), [names.index(cats[i]) for i in rows]][:, None]).sum(1)
            out[part] = {f"R@{k}": float((rank < k).float().mean()) for k in ks}
        return out


def _checked(arrays: Mapping[str, np.ndarray], file: str, anno: VideoAnnotation) -> Mapping[str, np.ndarray]:
    for key in (CONCEPT_KEY, GRID_KEY):
        if key not in arrays:
            raise KeyError(f"{file}: video {anno.video_id} has no {key!r} array (UASAN reads the open-vocabulary "
                           f"stream: pyvrel synth --open-vocab 16, or world.open_vocab)")
    return arrays


def evaluate_open_vocab(detector: UASANDetector, dataset: Dataset, split: str = "test",
                        settings: Sequence[str] = ("predcls", "sgdet")) -> dict[str, Any]:
    """Trajectory R@5/10 and, per setting and predicate split (novel, all), RelDet mAP/R@50/R@100
    against the ground truth of that split (novel: the relations with a novel predicate)."""
    from pyvrel.eval import evaluate_relations

    gt_all = {v: a.relation_view() for v, a in dataset.annotations(split).items()}
    novel = set(detector.split["predicates"]["novel"])
    gt = {"all": gt_all, "novel": {v: [r for r in rs if r.triplet[1] in novel] for v, rs in gt_all.items()}}
    out: dict[str, Any] = {"trajectory": detector.trajectory_recall(dataset, split)}
    for setting in settings:
        for part in ("novel", "all"):
            d = UASANDetector(detector.net, detector.vocabulary, detector.split, detector.encoder, setting=setting,
                              predicates=part,
                union=detector.union, min_frames=detector.min_frames)
            preds = d.detect(dataset, split)
            res = evaluate_relations(gt[part], preds, per_video=False)
            out[f"{setting}/{part}"] = res["RelDet"]
    return out


def _evaluator(detector_of: Any, dataset: Dataset, split: str) -> EvalHook:
    """The training hook: RelDet of the configured setting and predicate split on ``split`` (rank 0 only)."""
    from pyvrel.eval import evaluate_relations

    def evaluate(model: nn.Module, ctx: EvalContext) -> dict[str, float] | None:
        if not ctx.is_main:
            return None
        detector = detector_of(model.net)
        novel = set(detector.split["predicates"]["novel"])
        gt = {v: [r for r in a.relation_view() if detector.predicates == "all"
                  or (r.triplet[1] in novel) == (detector.predicates == "novel")]
              for v, a in dataset.annotations(split).items()}
        res = evaluate_relations(gt, detector.detect(dataset, split))["RelDet"]
        model.train()
        return {f"RelDet_{k}": v for k, v in res.items()}

    return evaluate


def _setup(resolved: dict[str, Any], data: str) -> tuple[Dataset, Vocabulary, dict[str, Any], TextEncoder]:
    dataset = open_dataset(data, resolved["world"])
    vocab = dataset.vocabulary()
    if resolved["split"] is None:
        if not dataset.synthetic:
            raise ConfigError("split", f"{data}: give the base/novel split of objects and predicates "
                                       "(model.split), e.g. VidVRD's 25/10 objects and 71/61 predicates")
        resolved["split"] = _world_split(resolved["world"])
    split = resolved["split"]
    for kind, names in (("objects", vocab.objects), ("predicates", vocab.predicates)):
        unknown = sorted(set(split[kind]["base"] + split[kind]["novel"]) - set(names))
        if unknown:
            raise ConfigError("split", f"{kind} not in the vocabulary of {data}: {unknown[:5]}")
    encoder = text_encoder(resolved["text"], resolved["text_dim"])
    return dataset, vocab, split, encoder


def build_task(model_config: Mapping[str, Any], data: str) -> TrainTask:
    """The UASAN training task (module docstring): one item per segment of a training video with
    at least one base pair, ground-truth tracklets."""
    cfg, resolved = resolve_config(model_config)
    dataset, vocab, split, encoder = _setup(resolved, data)
    segments = []
    wanted = lambda k: k in (CONCEPT_KEY, GRID_KEY) or k.startswith("tracklet_")  # noqa: E731
    for anno, arrays, file in dataset.arrays("train", wanted):
        arrays = _checked(arrays, file, anno)
        segments += segment_inputs(gt_tracklets(anno, arrays), arrays[GRID_KEY], anno.frame_count,
                                   (anno.width, anno.height), min_frames=resolved["min_frames"],
                                   union=resolved["union"], annotation=anno)
    items = training_items(segments, split)
    if not items:
        raise ValueError(f"{data}: no training segments with a pair of base categories")
    resolved["visual_dim"] = int(items[0]["traj"].shape[1])  # the data's concept width, stored for load
    cfg = _sized(cfg, encoder, resolved)
    model = UASANTrainModel(cfg, _encoded(encoder, split["objects"]["base"]),
                            _encoded(encoder, split["predicates"]["base"]))
    evaluate = None
    if resolved["eval_split"] is not None and dataset.has_split(resolved["eval_split"]):
        evaluate = _evaluator(lambda net: _detector(net, vocab, split, encoder, resolved), dataset,
                              resolved["eval_split"])
    return TrainTask(model, items, collate, evaluate=evaluate, train_defaults=TRAIN_DEFAULTS, model_config=resolved,
                     eval_metrics=_METRICS)


def _sized(cfg: UASANConfig, encoder: TextEncoder, resolved: Mapping[str, Any]) -> UASANConfig:
    """``cfg`` with the widths of the data's concept features (``resolved["visual_dim"]``) and of the
    text encoder."""
    import dataclasses

    return dataclasses.replace(cfg, visual_dim=int(resolved["visual_dim"]), text_dim=encoder.dim)


def _detector(net: UASAN, vocab: Vocabulary, split: Mapping[str, Any], encoder: TextEncoder,
              resolved: Mapping[str, Any]) -> UASANDetector:
    return UASANDetector(net, vocab, split, encoder, setting=resolved["eval_setting"],
                         predicates=resolved["eval_predicates"], union=resolved["union"],
                         min_frames=resolved["min_frames"])


def load(checkpoint: Mapping[str, Any], ema: bool = True) -> UASANDetector:
    """The trained UASAN of a ``pyvrel train --model uasan`` checkpoint (the registry's loader)."""
    from pyvrel.engine.checkpoint import checkpoint_weights

    cfg, resolved = resolve_config(checkpoint["meta"]["model_config"])
    _, vocab, split, encoder = _setup(dict(resolved), checkpoint["meta"].get("data", "synthetic"))
    cfg = _sized(cfg, encoder, resolved)
    net = UASAN(cfg)
    weights = {k[len("net."):]: v for k, v in checkpoint_weights(dict(checkpoint), ema).items() if k.startswith("net.")}
    net.load_state_dict(weights)
    return _detector(net, vocab, split, encoder, resolved)
