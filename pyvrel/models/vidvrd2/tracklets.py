"""VidVRD-II's object tracklets from per-frame detections: per segment, gap filling then Seq-NMS.

The per-frame detections of a feature file (``det_frame (K,)``, ``det_boxes (K, 4)`` pixels,
``det_scores (K,)``, ``det_labels (K,)``, and their appearance ``det_features (K, D)``) of each
30-frame segment go through :func:`pyvrel.ops.fill_gaps` (tolerance 30, scale and area ratio 2)
and :func:`pyvrel.ops.seq_nms` with VidVRD-II's setting (``variant="vidvrd2"``, label-constrained
links with IoU ``>= 0.5``, suppression ``0.7``), all segments of a video in one batched call. A
tracklet's feature is the mean of its detections' features (inserted boxes have none); its
category is its detections' label.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from pyvrel.data import VideoAnnotation
from pyvrel.data.errors import FormatError
from pyvrel.data.segments import segment_spans
from pyvrel.data.tracklets import Tracklet
from pyvrel.ops import fill_gaps, seq_nms

__all__ = ["DETECTION_KEYS", "TRACKLET_SOURCES", "seqnms_segments"]

TRACKLET_SOURCES = ("detected", "oracle", "seqnms")
DETECTION_KEYS = ("det_frame", "det_boxes", "det_scores", "det_labels", "det_features")


def _check(arrays: Mapping[str, np.ndarray], num_objects: int, dim: int, frame_count: int, file: str,
           video: str) -> dict[str, np.ndarray]:
    def fail(key: str, message: str) -> FormatError:
        return FormatError(message, file=file, video=video, field=key)

    for key in DETECTION_KEYS:
        if key not in arrays:
            raise fail(key, f"missing: VidVRD-II's seqnms tracklets need the per-frame detections {', '.join(DETECTION_KEYS)}")
    a = {k: np.asarray(arrays[k]) for k in DETECTION_KEYS}
    K = len(a["det_frame"])
    shapes = {"det_frame": (K,), "det_boxes": (K, 4), "det_scores": (K,), "det_labels": (K,), "det_features": (K, dim)}
    for key, shape in shapes.items():
        if a[key].shape != shape:
            raise fail(key, f"expected shape {shape}, got {a[key].shape}")
    if K and (a["det_frame"].min() < 0 or a["det_frame"].max() >= frame_count):
        raise fail("det_frame", f"frames must lie in [0, {frame_count}), got [{a['det_frame'].min()}, {a['det_frame'].max()}]")
    if K and (a["det_labels"].min() < 0 or a["det_labels"].max() >= num_objects):
        raise fail("det_labels", f"labels must lie in [0, {num_objects}), got [{a['det_labels'].min()}, {a['det_labels'].max()}]")
    for key in ("det_boxes", "det_scores", "det_features"):
        if not np.isfinite(a[key]).all():
            raise fail(key, "contains NaN or infinite values")
    return a


def seqnms_segments(arrays: Mapping[str, np.ndarray], annotation: VideoAnnotation, objects: Sequence[str], dim: int,
                    length: int, stride: int, file: str) -> list[tuple[tuple[int, int], list[Tracklet]]]:
    """The segments of a video with their tracklets from its per-frame detections (module docstring);
    :class:`~pyvrel.data.FormatError` naming ``file``, the video and the key for missing or bad arrays."""
    a = _check(arrays, len(objects), dim, annotation.frame_count, file, annotation.video_id)
    spans = segment_spans(annotation.frame_count, length, stride)
    if not spans:
        return []
    frame = a["det_frame"]
    counts = np.bincount(frame, minlength=annotation.frame_count)
    N = max(int(counts.max()) if len(frame) else 0, 1)
    order = np.argsort(frame, kind="stable")
    slot = np.empty(len(frame), np.int64)  # each detection's place among its frame's detections
    slot[order] = np.arange(len(frame)) - np.searchsorted(frame[order], frame[order])
    S = len(spans)
    boxes = np.zeros((S, length, N, 4))
    scores = np.zeros((S, length, N))
    labels = np.full((S, length, N), -1, np.int64)
    valid = np.zeros((S, length, N), bool)
    index = np.full((S, length, N), -1, np.int64)
    for s, (b, e) in enumerate(spans):
        inside = np.flatnonzero((frame >= b) & (frame < e))
        t, n = frame[inside] - b, slot[inside]
        boxes[s, t, n], scores[s, t, n], labels[s, t, n] = a["det_boxes"][inside], a["det_scores"][inside], a["det_labels"][inside]
        valid[s, t, n], index[s, t, n] = True, inside
    filled = fill_gaps(torch.from_numpy(boxes), torch.from_numpy(scores), valid=torch.from_numpy(valid),
                       labels=torch.from_numpy(labels))
    result = seq_nms(filled.boxes, filled.scores, valid=filled.valid, labels=filled.labels, link_threshold=0.5,
                     suppress_threshold=0.7, variant="vidvrd2")
    source = filled.source.numpy()
    out: list[tuple[tuple[int, int], list[Tracklet]]] = [(span, []) for span in spans]
    tubes = result.tracklets
    for k in range(len(result.video)):
        s, start, L = int(result.video[k]), int(tubes.start[k]), int(tubes.length[k])
        cells = result.box_index[k, :L].numpy()
        frames = start + np.arange(L)
        kept = source[s, frames, cells]  # the detection slot of each box, -1 for inserted ones
        det = index[s, frames[kept >= 0], kept[kept >= 0]]
        label = int(filled.labels[s, start, cells[0]])
        feats = a["det_features"][det] if len(det) else np.zeros((1, dim), np.float32)
        begin = spans[s][0]
        out[s][1].append(Tracklet(objects[label], float(result.tracklet_score[k]) / L, begin + start,
                                  tubes.boxes[k, :L].numpy(), np.repeat(feats.mean(0, keepdims=True), L, 0)))
    return out
