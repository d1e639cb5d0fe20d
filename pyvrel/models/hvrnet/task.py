"""HVR-Net as a :mod:`pyvrel.engine` task (``pyvrel train --model hvrnet --data DIR|synthetic``), its
inference over windows of frames, its detections (the input of ``pyvrel track``) and its metrics.

Data (one ``.npz`` per video, ``DIR/features/<video_id>.npz``; :mod:`pyvrel.data.features`):
``roi_frames (S,)`` increasing video frames, ``roi_boxes (S, M, 4)`` pixel proposals,
``roi_features (S, M, D)`` their RoI features (``M`` the same in every video). A proposal's label is
the category of the ground-truth box it overlaps most in its frame when that IoU is ``>= fg_iou``,
else background, and its regression target that box (:func:`~pyvrel.models.hvrnet.model.encode_boxes`).
The synthetic world writes these arrays with its HVR-Net stream (``world.hvrnet``), with confusable
categories (:data:`~pyvrel.data.synthetic.streams.hvrnet.CONFUSABLE`).

Training items (:class:`TripletSamples`): one per (training video, category in it); the target is a
window of ``window`` consecutive RoI frames of the video, the candidate positives windows of other
videos with that category, the candidate negatives windows of videos without it (drawn from the
item's own seed and the epoch); the model mines the hard positive and negative (:class:`HVRNet`).

The ``model:`` section holds ``preset`` (``"synthetic"`` or ``"vid"``: the code's sizes), ``world``
(:class:`~pyvrel.data.synthetic.SynthConfig` overrides of the built-in world), ``eval_split``,
``objects`` (the categories of the classes; default the data's vocabulary) and any
:class:`~pyvrel.models.hvrnet.model.HVRNetConfig` field.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from pyvrel.data import FeatureStore, FormatError, VideoAnnotation
from pyvrel.data.dataset import Dataset, open_dataset, synthetic_world
from pyvrel.data.synthetic.streams.hvrnet import CONFUSABLE
from pyvrel.engine.config import ConfigError, config_to_dict, preset_config
from pyvrel.engine.registry import TrainTask
from pyvrel.engine.trainer import EvalContext, EvalHook
from pyvrel.eval import voc_ap
from pyvrel.models.hvrnet.model import HVRNet, HVRNetConfig, decode_boxes, encode_boxes
from pyvrel.ops import batched_nms, box_iou

__all__ = ["ROI_KEYS", "TRAIN_DEFAULTS", "FrameDetections", "HVRNetDetector", "RoIVideo", "TripletSamples", "build_task",
           "confusable_labels", "detect_video", "evaluate_detections", "label_video", "load", "load_videos",
           "model_from_checkpoint", "resolve_config", "write_detections"]

ROI_KEYS = ("roi_frames", "roi_boxes", "roi_features")
_PRESETS = {"synthetic": HVRNetConfig.synthetic, "vid": HVRNetConfig}
_TASK_KEYS = ("preset", "world", "eval_split", "objects")
#: Training settings per preset: "vid" the code's (SGD, 12 epochs, clipping at 35); "synthetic" AdamW,
#: which learns the small head from the N(0, 0.01) initialisation in a few minutes on a CPU.
TRAIN_DEFAULTS: dict[str, dict[str, Any]] = {
    "vid": {"optimizer": "sgd", "lr": 0.0015, "momentum": 0.9, "weight_decay": 1e-4, "clip_grad_norm": 35.0,
            "batch_size": 4, "epochs": 12, "warmup_epochs": 0.5, "eval_every": 4},
    "synthetic": {"optimizer": "adamw", "lr": 1e-2, "weight_decay": 1e-4, "clip_grad_norm": 35.0, "batch_size": 4,
                  "epochs": 20, "warmup_epochs": 0.5, "eval_every": 5}}
#: The synthetic world HVR-Net trains on: every frame has RoI proposals (sampled_frames >= frames).
_WORLD = {"num_videos": 120, "frames": [60, 120], "proposals": 16, "sampled_frames": 120, "hvrnet": True}


def resolve_config(model_config: Mapping[str, Any]) -> tuple[HVRNetConfig, dict[str, Any]]:
    """The :class:`HVRNetConfig` of a ``model:`` section and the section with defaults filled in."""
    section = dict(model_config)
    preset = section.get("preset", "synthetic")
    eval_split = section.get("eval_split", "test")
    if eval_split not in ("train", "test", None):
        raise ConfigError("eval_split", f"expected 'train', 'test' or null, got {eval_split!r}")
    cfg = preset_config(HVRNetConfig, _PRESETS, preset, {k: v for k, v in section.items() if k not in _TASK_KEYS})
    world = synthetic_world({**_WORLD, "feature_dim": cfg.feature_dim, **section.get("world", {})})
    return cfg, {"preset": preset, "world": world, "eval_split": eval_split, "objects": section.get("objects"),
                 **config_to_dict(cfg)}


# ---- data ---------------------------------------------------------------------------------------


@dataclass
class RoIVideo:
    """One video's RoI proposals, labelled: ``frames (S,)``, ``boxes (S, M, 4)``, ``features (S, M, D)``,
    ``labels (S, M)`` (0 = background, else category + 1), ``targets (S, M, 4)``; ``gt`` per RoI
    frame: ``(boxes (G, 4), labels (G,))`` of the ground truth (labels = category + 1)."""

    video_id: str
    frames: Tensor
    boxes: Tensor
    features: Tensor
    labels: Tensor
    targets: Tensor
    gt: list[tuple[Tensor, Tensor]]

    @property
    def categories(self) -> list[int]:
        return sorted({int(c) for c in self.labels.unique().tolist() if c > 0})


def _check_rois(arrays: Mapping[str, np.ndarray], anno: VideoAnnotation, cfg: HVRNetConfig, file: str
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    def fail(key: str, message: str) -> FormatError:
        return FormatError(message, file=file, video=anno.video_id, field=key)

    for key in ROI_KEYS:
        if key not in arrays:
            raise fail(key, f"missing (has {', '.join(sorted(arrays))}); HVR-Net needs {', '.join(ROI_KEYS)}")
    frames, boxes, feats = (np.asarray(arrays[k]) for k in ROI_KEYS)
    S = frames.shape[0] if frames.ndim == 1 else -1
    M = boxes.shape[1] if boxes.ndim == 3 else -1
    for key, a, shape in (("roi_frames", frames, (S,)), ("roi_boxes", boxes, (S, M, 4)),
                          ("roi_features", feats, (S, M, cfg.feature_dim))):
        if a.shape != shape or S < 1:
            want = ", ".join("S" if s == S else "M" if s == M else str(s) for s in shape)
            raise fail(key, f"expected shape ({want}{',' if len(shape) == 1 else ''}) (S >= 1 frames, M proposals, "
                            f"feature_dim={cfg.feature_dim}), got {a.shape}")
    if not np.issubdtype(frames.dtype, np.integer):
        raise fail("roi_frames", f"expected integers, got {frames.dtype}")
    if (np.diff(frames) <= 0).any() or frames[0] < 0 or frames[-1] >= anno.frame_count:
        raise fail("roi_frames", f"expected increasing frames in [0, {anno.frame_count})")
    for key, a in (("roi_boxes", boxes), ("roi_features", feats)):
        if not np.isfinite(a).all():
            raise fail(key, "holds NaN or infinity; expected finite values")
    return frames.astype(np.int64), boxes.astype(np.float32), feats.astype(np.float32)


def label_video(anno: VideoAnnotation, frames: np.ndarray, boxes: np.ndarray, features: np.ndarray,
                objects: Sequence[str], fg_iou: float) -> RoIVideo:
    """Assign each proposal its ground-truth box and label (module docstring)."""
    index = {c: i for i, c in enumerate(objects)}
    category = anno.category_of()
    b = torch.from_numpy(boxes)
    labels = torch.zeros(b.shape[:2], dtype=torch.int64)
    targets = torch.zeros(b.shape)
    gt = []
    for s, f in enumerate(frames.tolist()):
        visible = anno.trajectories[f]
        g = torch.tensor([fb.bbox for fb in visible], dtype=torch.float32).reshape(-1, 4)
        gl = torch.tensor([index[category[fb.tid]] + 1 for fb in visible], dtype=torch.int64)
        gt.append((g, gl))
        if not len(visible):
            continue
        best, which = box_iou(b[s], g).max(1)
        fg = best >= fg_iou
        labels[s, fg] = gl[which[fg]]
        targets[s, fg] = encode_boxes(b[s, fg], g[which[fg]])
    return RoIVideo(anno.video_id, torch.from_numpy(frames), b, torch.from_numpy(features), labels, targets, gt)


def load_videos(dataset: Dataset, split: str, cfg: HVRNetConfig, objects: Sequence[str],
                shard: tuple[int, int] = (0, 1)) -> Iterator[RoIVideo]:
    """The labelled RoI videos of a split (errors name the file, video and key)."""
    for anno, arrays, file in dataset.arrays(split, lambda k: k in ROI_KEYS, shard):
        frames, boxes, feats = _check_rois(arrays, anno, cfg, file)
        yield label_video(anno, frames, boxes, feats, objects, cfg.fg_iou)


def _window(video: RoIVideo, start: int, T: int) -> dict[str, Tensor]:
    """Frames ``[start, start + T)`` of the video's RoI frames (padded, mask False, past its end)."""
    S, M = video.labels.shape
    take = torch.arange(start, start + T).clamp(max=S - 1)
    inside = (torch.arange(start, start + T) < S)[:, None].expand(T, M)
    return {"features": video.features[take], "labels": video.labels[take] * inside, "targets": video.targets[take],
            "mask": inside.clone()}


class TripletSamples(torch.utils.data.Dataset):
    """HVR-Net's training items (module docstring): ``{"features" (V, T, M, D), "mask" (V, T, M),
    "labels" (V, T, M), "targets" (V, T, M, 4), "category" ()}`` with ``V = 1 + positives + negatives``
    (``category``: the item's label, category + 1)."""

    def __init__(self, videos: list[RoIVideo], cfg: HVRNetConfig, seed: int = 0) -> None:
        self.videos, self.cfg, self.seed, self.epoch = videos, cfg, seed, 0
        self.items = [(v, c) for v, video in enumerate(videos) for c in video.categories]
        self.having = {}
        for v, video in enumerate(videos):
            for c in video.categories:
                self.having.setdefault(c, []).append(v)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def draw(self, i: int) -> tuple[list[int], np.random.Generator]:
        """Item ``i``'s videos: the target, ``positives`` videos with its category (other than the
        target, unless there is none), ``negatives`` videos without it (any other when every video
        has it); repeats only when there are too few. Also the generator that draws the windows."""
        cfg = self.cfg
        rng = np.random.default_rng([self.seed, self.epoch, i])
        v, c = self.items[i]
        same = [u for u in self.having[c] if u != v] or [v]
        others = sorted(set(range(len(self.videos))) - set(self.having[c])) or [u for u in range(len(self.videos))
                                                                                if u != v] or [v]
        chosen = [v, *rng.choice(same, cfg.positives, replace=len(same) < cfg.positives).tolist(),
                  *rng.choice(others, cfg.negatives, replace=len(others) < cfg.negatives).tolist()]
        return chosen, rng

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        cfg = self.cfg
        chosen, rng = self.draw(i)
        windows = []
        for u in chosen:
            S = len(self.videos[u].frames)
            windows.append(_window(self.videos[u], int(rng.integers(0, max(S - cfg.window, 0) + 1)), cfg.window))
        return {**{k: torch.stack([w[k] for w in windows]) for k in windows[0]},
                "category": torch.tensor(self.items[i][1])}


# ---- inference and metrics ------------------------------------------------------------------------


@dataclass
class FrameDetections:
    """Detections of one video on its RoI frames: ``frame (K,)`` video frames, ``boxes (K, 4)``,
    ``scores (K,)``, ``labels (K,)`` (category + 1), ``features (K, dim)`` (the last stage's),
    and the key-frame class probabilities of every proposal ``probs (S, M, C + 1)``."""

    frame: Tensor
    boxes: Tensor
    scores: Tensor
    labels: Tensor
    features: Tensor
    probs: Tensor


@torch.no_grad()
def detect_video(model: HVRNet, video: RoIVideo) -> FrameDetections:
    """Inference over windows: each RoI frame is the key of the ``window`` frames around it (shifted
    to fit the video); its proposals' outputs come from that window. Then per frame: softmax, box
    decoding (class-agnostic), scores ``> score_threshold``, :func:`pyvrel.ops.batched_nms` within
    (frame, class) at ``nms_threshold``, at most ``max_per_frame`` per frame by score."""
    cfg = model.cfg
    S, M = video.labels.shape
    T = min(cfg.window, S)
    start = (torch.arange(S) - T // 2).clamp(0, S - T)
    take = start[:, None] + torch.arange(T)[None, :]  # (S, T)
    device = next(model.parameters()).device
    logits, deltas, refined = model(video.features[take].reshape(S, T * M, -1).to(device))
    key = (torch.arange(S) - start)[:, None] * M + torch.arange(M)[None, :]  # rows of the key frame
    rows = lambda t: t.cpu()[torch.arange(S)[:, None], key]  # noqa: E731
    probs, boxes, feats = torch.softmax(rows(logits), -1), decode_boxes(video.boxes, rows(deltas)), rows(refined)
    s, m, c = torch.nonzero(probs[..., 1:] > cfg.score_threshold, as_tuple=True)
    c = c + 1
    score = probs[s, m, c]
    keep = batched_nms(boxes[s, m], score, s * (cfg.num_classes + 1) + c, cfg.nms_threshold)
    keep = keep[torch.argsort(s[keep], stable=True)]  # by frame, by score within it
    first = torch.searchsorted(s[keep], s[keep], right=False)
    keep = keep[torch.arange(len(keep)) - first < cfg.max_per_frame]
    s, m, c = s[keep], m[keep], c[keep]
    return FrameDetections(video.frames[s], boxes[s, m], probs[s, m, c], c, feats[s, m], probs)


def _average_precision(dets: list[tuple[Any, float, Tensor]], gts: Mapping[Any, Tensor], iou: float) -> float:
    """VOC AP (all points) of one class: ``dets`` ``(frame, score, box)``, ``gts`` ``{frame: boxes (G, 4)}``
    (a frame is any key, here ``(video, RoI frame)``)."""
    total = sum(len(g) for g in gts.values())
    used = {f: torch.zeros(len(g), dtype=torch.bool) for f, g in gts.items()}
    tp = []
    for f, _, box in sorted(dets, key=lambda d: -d[1]):
        hit = False
        if f in gts and len(gts[f]):
            overlap = box_iou(box[None], gts[f])[0].masked_fill(used[f], -1.0)
            j = int(overlap.argmax())
            if overlap[j] >= iou:
                used[f][j], hit = True, True
        tp.append(hit)
    tp_sum = np.cumsum(np.array(tp, dtype=np.float64))
    rank = np.arange(1, len(tp) + 1)
    return float(voc_ap(tp_sum / max(total, 1), tp_sum / rank)) if len(tp) else 0.0


def evaluate_detections(videos: Sequence[RoIVideo], detections: Sequence[FrameDetections],
                        confusable: Sequence[int], iou: float = 0.5) -> dict[str, float]:
    """Frame mAP@``iou`` (per class, VOC all-point AP over every RoI frame of the videos, averaged over
    the classes with ground truth) and proposal classification accuracy (key-frame argmax over
    background and classes, of the foreground proposals), over all classes and over the
    ``confusable`` ones (labels = category + 1): ``{"mAP", "acc", "mAP_confusable", "acc_confusable"}``."""
    dets: dict[int, list[tuple[tuple[int, int], float, Tensor]]] = {}
    gts: dict[int, dict[tuple[int, int], Tensor]] = {}
    right = torch.zeros(0, dtype=torch.bool)
    truth = torch.zeros(0, dtype=torch.int64)
    for v, (video, d) in enumerate(zip(videos, detections)):
        for s, (g, gl) in enumerate(video.gt):
            for c in gl.unique().tolist():
                gts.setdefault(c, {})[(v, s)] = g[gl == c]
        slot = {int(f): s for s, f in enumerate(video.frames.tolist())}
        for f, b, sc, c in zip(d.frame.tolist(), d.boxes, d.scores.tolist(), d.labels.tolist()):
            dets.setdefault(c, []).append(((v, slot[f]), sc, b))
        fg = video.labels > 0
        right = torch.cat([right, d.probs.argmax(-1)[fg] == video.labels[fg]])
        truth = torch.cat([truth, video.labels[fg]])
    ap = {c: _average_precision(dets.get(c, []), g, iou) for c, g in gts.items()}
    conf = set(confusable)
    in_conf = torch.tensor([int(t) in conf for t in truth.tolist()], dtype=torch.bool)
    mean = lambda xs: float(np.mean(xs)) if len(xs) else 0.0  # noqa: E731
    return {"mAP": mean(list(ap.values())), "acc": float(right.float().mean()) if len(right) else 0.0,
            "mAP_confusable": mean([a for c, a in ap.items() if c in conf]),
            "acc_confusable": float(right[in_conf].float().mean()) if in_conf.any() else 0.0}


def confusable_labels(objects: Sequence[str]) -> list[int]:
    """The labels (category + 1) of the confusable categories among ``objects``."""
    return [i + 1 for i, c in enumerate(objects) if any(c in pair for pair in CONFUSABLE)]


def write_detections(model: HVRNet, dataset: Dataset, split: str, objects: Sequence[str], out: str | Path) -> int:
    """Detect the ``split`` videos and write ``out/<video_id>.npz`` in ``pyvrel track``'s layout
    (:mod:`pyvrel.data.detections`; ``det_features`` = the last stage's features). Returns the count."""
    store = FeatureStore(out)
    count = 0
    for video in load_videos(dataset, split, model.cfg, objects):
        d = detect_video(model, video)
        store.write(video.video_id, {"det_frame": d.frame.numpy(), "det_boxes": d.boxes.numpy(),
                                     "det_scores": d.scores.numpy(), "det_labels": (d.labels - 1).numpy(),
                                     "det_features": d.features.numpy()})
        count += 1
    return count


# ---- task ---------------------------------------------------------------------------------------


def build_task(model_config: Mapping[str, Any], data: str) -> TrainTask:
    """The HVR-Net training task (module docstring for the ``model:`` keys)."""
    cfg, resolved = resolve_config(model_config)
    dataset = open_dataset(data, resolved["world"])
    objects = resolved["objects"] = resolved["objects"] or list(dataset.vocabulary().objects)
    if len(objects) != cfg.num_classes:
        raise ConfigError("num_classes", f"is {cfg.num_classes}, the data's vocabulary has {len(objects)} object "
                                         "categories")
    videos = list(load_videos(dataset, "train", cfg, objects))
    if len({v.labels.shape[1] for v in videos}) > 1:
        raise ValueError(f"{data}: the videos have different proposal counts M per frame "
                         f"({sorted({v.labels.shape[1] for v in videos})}); HVR-Net batches need one")
    samples = TripletSamples(videos, cfg)
    if not len(samples):
        raise ValueError(f"{data}: no training samples (no proposal overlaps a ground-truth box with IoU >= "
                         f"{cfg.fg_iou})")
    evaluate = None
    if resolved["eval_split"] is not None and dataset.has_split(resolved["eval_split"]):
        evaluate = _evaluator(dataset, resolved["eval_split"], cfg, objects)
    train_defaults = {**TRAIN_DEFAULTS[resolved["preset"]], "best_metric": "mAP" if evaluate else None}
    return TrainTask(HVRNet(cfg), samples, evaluate=evaluate, train_defaults=train_defaults, model_config=resolved,
                     eval_metrics=("mAP", "acc", "mAP_confusable", "acc_confusable"))


def model_from_checkpoint(checkpoint: Mapping[str, Any], ema: bool = True) -> tuple[HVRNet, dict[str, Any]]:
    """The trained :class:`HVRNet` of a ``pyvrel train --model hvrnet`` checkpoint (eval mode) and its
    resolved ``model:`` section (``objects``, ``world``, ...)."""
    from pyvrel.engine.checkpoint import checkpoint_weights

    cfg, resolved = resolve_config(checkpoint["meta"]["model_config"])
    model = HVRNet(cfg)
    model.load_state_dict(checkpoint_weights(dict(checkpoint), ema))
    return model.eval(), resolved


class HVRNetDetector:
    """A trained HVR-Net as ``pyvrel detect`` uses it (the registry's ``load``): an *object* detector,
    whose output is a folder of per-frame detections in ``pyvrel track``'s layout, not relations."""

    def __init__(self, model: HVRNet, objects: Sequence[str]) -> None:
        self.model, self.objects = model, list(objects)

    def write_detections(self, dataset: Dataset, split: str, out: str | Path) -> int:
        """Detect the videos of ``split`` (``"train"``, ``"test"`` or ``"all"``: every split the dataset
        has) and write ``out/<video_id>.npz`` (:func:`write_detections`); returns the video count.
        ValueError when the dataset's object categories are not the checkpoint's (the labels written
        are indices into them, as ``pyvrel track`` reads them)."""
        have = list(dataset.vocabulary().objects)
        if have != self.objects:
            differ = sorted(set(have) ^ set(self.objects))
            raise ValueError(f"{dataset.name}: its {len(have)} object categories are not the checkpoint's "
                             f"{len(self.objects)} (in the same order){': ' + ', '.join(differ[:5]) if differ else ''}; "
                             "HVR-Net's labels index the checkpoint's categories")
        splits = [s for s in ("train", "test") if dataset.has_split(s)] if split == "all" else [split]
        return sum(write_detections(self.model, dataset, s, self.objects, out) for s in splits)


def load(checkpoint: Mapping[str, Any], ema: bool = True) -> HVRNetDetector:
    """The registry's ``load``: the :class:`HVRNetDetector` of a ``pyvrel train --model hvrnet`` checkpoint."""
    model, resolved = model_from_checkpoint(checkpoint, ema)
    return HVRNetDetector(model, resolved["objects"])


def _evaluator(dataset: Dataset, split: str, cfg: HVRNetConfig, objects: Sequence[str]) -> EvalHook:
    """Detects the ``split`` videos and logs :func:`evaluate_detections`' metrics."""
    videos = list(load_videos(dataset, split, cfg, objects))

    def evaluate(model: nn.Module, ctx: EvalContext) -> dict[str, float] | None:
        if not ctx.is_main:
            return None
        return evaluate_detections(videos, [detect_video(model, v) for v in videos], confusable_labels(objects))

    return evaluate

