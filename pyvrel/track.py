"""``pyvrel track``: per-frame detections -> tracklets with features, the input of every relation model.

For each video: per-frame, class-aware :func:`pyvrel.ops.batched_nms` (at most ``max_per_frame``
boxes kept per frame, by score), then class-agnostic :func:`pyvrel.ops.seq_nms` links the kept
boxes over time into tracklets (rescored by their average score), and a tracklet that stops for
at most ``max_gap`` frames and goes on where it stopped is joined to its continuation. A tracklet keeps its boxes and
its detections' features frame by frame; its category scores are the score-weighted label votes of
its detections (``tracklet_scores[c] = Σ score over its frames labelled c / length``), so a
detector's occasional wrong label does not break the track or decide its category. Tracklets
shorter than ``min_length`` frames are dropped.

:func:`track_folder` writes a dataset folder (:mod:`pyvrel.data.folder`): ``OUT/features/<vid>.npz``
with the ``tracklet_*`` keys, and the annotations (and ``objects.txt``/``predicates.txt``, when
present) of the dataset the detections belong to, so that ``pyvrel train/detect --data OUT`` read
it. Input layouts: :mod:`pyvrel.data.detections`.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pyvrel.data.dataset import Dataset, open_dataset
from pyvrel.data.detections import Detections, detection_path, read_detections
from pyvrel.data.features import FeatureStore
from pyvrel.data.folder import split_path
from pyvrel.ops import batched_nms, box_iou, seq_nms

__all__ = ["TrackConfig", "track_folder", "track_recall", "track_video"]


@dataclass(frozen=True)
class TrackConfig:
    """Settings of the front end (module docstring); IoU thresholds in [0, 1]."""

    nms_threshold: float = 0.5       # per-frame NMS, within a label
    max_per_frame: int = 20          # boxes kept per frame after NMS
    link_threshold: float = 0.3      # Seq-NMS: IoU that links boxes of consecutive frames (and joins pieces)
    suppress_threshold: float = 0.3  # Seq-NMS: IoU with a selected box that removes a box
    max_gap: int = 5                 # frames a detection may be missed inside a tracklet (0: no joining)
    min_length: int = 3              # shortest tracklet kept, frames

    def __post_init__(self) -> None:
        for key in ("nms_threshold", "link_threshold", "suppress_threshold"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ValueError(f"{key}: expected a value in [0, 1], got {getattr(self, key)}")
        for key, low in (("max_per_frame", 1), ("min_length", 1), ("max_gap", 0)):
            if getattr(self, key) < low:
                raise ValueError(f"{key}: expected an integer >= {low}, got {getattr(self, key)}")


def track_video(dets: Detections, frame_count: int, num_objects: int,
                config: TrackConfig = TrackConfig()) -> dict[str, np.ndarray]:
    """The tracklet arrays of one video (:func:`pyvrel.data.folder.check_tracklets`' layout:
    ``tracklet_boxes (N, T, 4)``, ``tracklet_start``, ``tracklet_length (N,)``,
    ``tracklet_scores (N, num_objects)``, ``tracklet_features (N, T, D)``; N may be 0), in
    Seq-NMS's selection order (best path first; a joined tracklet where its first piece was)."""
    D = dets.features.shape[1]
    boxes = torch.from_numpy(dets.boxes)
    group = torch.from_numpy(dets.frame * num_objects + dets.labels)  # NMS within (frame, label)
    keep = batched_nms(boxes, torch.from_numpy(dets.scores), group, config.nms_threshold).numpy()
    keep = keep[np.argsort(dets.frame[keep], kind="stable")]  # by frame, by descending score within it
    frame = dets.frame[keep]
    first = np.searchsorted(frame, frame, side="left")
    slot = np.arange(len(keep)) - first  # rank of the box in its frame
    top = slot < config.max_per_frame
    keep, frame, slot = keep[top], frame[top], slot[top]
    N = int(slot.max()) + 1 if len(slot) else 1
    index = np.full((frame_count, N), -1, np.int64)  # (frame, slot) -> detection
    index[frame, slot] = keep
    valid = index >= 0
    padded = np.zeros((frame_count, N, 4), np.float32)
    padded[valid] = dets.boxes[index[valid]]
    scores = np.zeros((frame_count, N), np.float32)
    scores[valid] = dets.scores[index[valid]]
    result = seq_nms(torch.from_numpy(padded), torch.from_numpy(scores), valid=torch.from_numpy(valid),
                     link_threshold=config.link_threshold, suppress_threshold=config.suppress_threshold,
                     rescore="avg")
    start, length, box_index = result.tracklets.start.numpy(), result.tracklets.length.numpy(), result.box_index.numpy()
    pieces = []
    for k in range(len(start)):
        det = index[start[k] + np.arange(length[k]), box_index[k, : length[k]]]
        votes = np.zeros(num_objects, np.float64)
        np.add.at(votes, dets.labels[det], dets.scores[det])
        pieces.append(_Piece(int(start[k]), dets.boxes[det], dets.features[det], votes, len(det)))
    kept = [p for p in _join(pieces, config) if len(p.boxes) >= config.min_length]
    T = max((len(p.boxes) for p in kept), default=1)
    out_boxes = np.zeros((len(kept), T, 4), np.float32)
    out_feats = np.zeros((len(kept), T, D), np.float32)
    for n, p in enumerate(kept):
        out_boxes[n, : len(p.boxes)], out_feats[n, : len(p.boxes)] = p.boxes, p.features
    return {"tracklet_boxes": out_boxes, "tracklet_start": np.array([p.start for p in kept], np.int64),
            "tracklet_length": np.array([len(p.boxes) for p in kept], np.int64),
            "tracklet_scores": np.array([p.votes / p.detections for p in kept], np.float32).reshape(-1, num_objects),
            "tracklet_features": out_feats}


@dataclass
class _Piece:
    """A tracklet being built: frames ``[start, start + len(boxes))``, per-frame boxes and features,
    the score sum of its detections per label and how many detections it has."""

    start: int
    boxes: np.ndarray
    features: np.ndarray
    votes: np.ndarray
    detections: int

    @property
    def end(self) -> int:
        return self.start + len(self.boxes)


def _join(pieces: list[_Piece], config: TrackConfig) -> list[_Piece]:
    """Join a tracklet to one that starts at most ``max_gap`` frames after it ends when the last box of
    the first and the first box of the second overlap with IoU >= ``link_threshold`` (a detection
    missed for a few frames breaks a Seq-NMS path); gap frames get linearly interpolated boxes and
    features. Greedy: smallest gap first, then largest IoU; each tracklet joins at most one before
    and one after. Returns the joined tracklets, by first selected piece."""
    if not pieces:
        return []
    # IoU of every piece's last box with every piece's first box, in one call
    ious = box_iou(torch.from_numpy(np.stack([p.boxes[-1] for p in pieces]).astype(np.float64)),
                   torch.from_numpy(np.stack([p.boxes[0] for p in pieces]).astype(np.float64))).numpy()
    pairs = []
    for i, a in enumerate(pieces):
        for j, b in enumerate(pieces):
            gap = b.start - a.end
            if i != j and 0 <= gap <= config.max_gap:
                iou = float(ious[i, j])
                if iou >= config.link_threshold:
                    pairs.append((gap, -iou, i, j))
    successor: dict[int, int] = {}
    taken = set()
    for _, _, i, j in sorted(pairs):
        if i not in successor and j not in taken:  # starts only increase: no cycles
            successor[i], taken = j, taken | {j}
    out = []
    for i in range(len(pieces)):
        if i in taken:
            continue
        p = pieces[i]
        while i in successor:
            i = successor[i]
            q = pieces[i]
            w = (np.arange(1, q.start - p.end + 1) / (q.start - p.end + 1))[:, None]
            p = _Piece(p.start, np.concatenate([p.boxes, (1 - w) * p.boxes[-1] + w * q.boxes[0], q.boxes]),
                       np.concatenate([p.features, (1 - w) * p.features[-1] + w * q.features[0], q.features]),
                       p.votes + q.votes, p.detections + q.detections)
        out.append(p)
    return out


def track_folder(detections: str | os.PathLike, data: str | os.PathLike, out: str | os.PathLike,
                 config: TrackConfig = TrackConfig()) -> dict[str, Any]:
    """Track every annotated video of the dataset folder ``data`` (both splits) from its file in
    ``detections`` (:func:`pyvrel.data.detections.detection_path`) and write the dataset folder
    ``out`` (module docstring). Every video's detections file is found before anything is written.
    Returns ``{"videos", "tracklets", "empty" (videos without a tracklet), "seconds"}``."""
    t0 = time.perf_counter()
    if not Path(data).is_dir():
        raise FileNotFoundError(f"{os.fspath(data)}: dataset folder not found (the annotations of the detected videos)")
    dataset: Dataset = open_dataset(data)
    annotations = {split: dataset.annotations(split) for split in ("train", "test") if dataset.has_split(split)}
    objects = dataset.vocabulary(annotations.get("train")).objects
    files = {vid: detection_path(detections, vid) for annos in annotations.values() for vid in annos}
    out = Path(out)
    for split in annotations:
        source = split_path(data, split)
        target = out / "annotations" / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if source.is_dir() else shutil.copyfile)(source, target)
    for name in ("objects.txt", "predicates.txt"):
        if (Path(data) / name).is_file():
            shutil.copyfile(Path(data) / name, out / name)
    store = FeatureStore(out / "features")
    count, empty = 0, []
    for annos in annotations.values():
        for vid, anno in annos.items():
            dets = read_detections(files[vid], objects, video=vid, frame_count=anno.frame_count)
            arrays = track_video(dets, anno.frame_count, len(objects), config)
            store.write(vid, arrays)
            count += len(arrays["tracklet_start"])
            if not len(arrays["tracklet_start"]):
                empty.append(vid)
    return {"videos": len(files), "tracklets": count, "empty": empty, "seconds": time.perf_counter() - t0}


def track_recall(data: str | os.PathLike, tracked: str | os.PathLike, threshold: float = 0.5,
                 split: str | None = None) -> dict[str, Any]:
    """Tracklet quality of a tracked folder against the ground-truth tracks of the dataset folder
    ``data`` (both splits, or ``split``): ``recall`` = share of ground-truth tracks (one per object,
    gaps interpolated) whose best tracklet has vIoU ``>= threshold`` (:func:`pyvrel.ops.tube_iou`,
    continuous boxes), ``category`` = share of those whose tracklet's top category is the object's,
    ``mean_viou`` = the mean best vIoU, ``tracks`` and ``tracklets`` counts, and ``per_video``:
    ``{video_id: (tids, best tracklet per track, best vIoU per track)}``."""
    from pyvrel.data.folder import check_tracklets
    from pyvrel.ops import Tubes, tube_iou

    dataset = open_dataset(data)
    splits = [split] if split else [s for s in ("train", "test") if dataset.has_split(s)]
    objects = dataset.vocabulary().objects
    store = FeatureStore(Path(tracked) / "features")
    best_all, right, tracklets, per_video = [], [], 0, {}
    for s in splits:
        for vid, anno in dataset.annotations(s).items():
            f = check_tracklets(store[vid], len(objects), file=str(store.path(vid)), video=vid,
                                frame_count=anno.frame_count)
            tids, gt = anno.object_tubes()
            tracks = Tubes(torch.from_numpy(f["tracklet_boxes"]).double(), torch.from_numpy(f["tracklet_start"]),
                           torch.from_numpy(f["tracklet_length"]))
            best, which = tube_iou(gt, tracks).max(1)
            category = anno.category_of()
            for t, v, k in zip(tids, best.tolist(), which.tolist()):
                best_all.append(v)
                if v >= threshold:
                    right.append(objects[int(np.argmax(f["tracklet_scores"][k]))] == category[t])
            tracklets += len(f["tracklet_start"])
            per_video[vid] = (tids, which.tolist(), best.tolist())
    hits = np.array(best_all) >= threshold
    return {"recall": float(hits.mean()) if len(hits) else 0.0, "category": float(np.mean(right)) if right else 0.0,
            "mean_viou": float(np.mean(best_all)) if best_all else 0.0, "tracks": len(best_all),
            "tracklets": tracklets, "per_video": per_video}
