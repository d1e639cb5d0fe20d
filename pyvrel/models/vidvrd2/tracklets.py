"""VidVRD-II's object tracklets from per-frame detections: per segment, gap filling then Seq-NMS.

The per-frame detections of a feature file (:mod:`pyvrel.data.detections`: ``det_frame``,
``det_boxes`` pixels, ``det_scores``, ``det_labels`` and their appearance ``det_features``) first
get the per-frame, per-label NMS (IoU 0.5) a detector applies to its own output (VidVRD-II reads a
Faster R-CNN's final detections; raw detections such as the synthetic world's have not had it, and
without it Seq-NMS's score-zeroing variant returns two or three overlapping tracklets per object).
Those of each 30-frame segment go through :func:`pyvrel.ops.fill_gaps` (tolerance 30, scale and area ratio 2)
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
from pyvrel.data.detections import Detections, check_detections
from pyvrel.data.errors import FormatError
from pyvrel.data.segments import segment_spans
from pyvrel.data.tracklets import Tracklet
from pyvrel.ops import batched_nms, fill_gaps, seq_nms

__all__ = ["TRACKLET_SOURCES", "seqnms_segments"]

TRACKLET_SOURCES = ("detected", "oracle", "seqnms")
DETECTOR_NMS = 0.5  # IoU of the per-frame, per-label NMS a detector's output has had


def seqnms_segments(arrays: Mapping[str, np.ndarray], annotation: VideoAnnotation, objects: Sequence[str], dim: int,
                    length: int, stride: int, file: str) -> list[tuple[tuple[int, int], list[Tracklet]]]:
    """The segments of a video with their tracklets from its per-frame detections (module docstring;
    arrays as :func:`pyvrel.data.detections.check_detections` checks them, features of width ``dim``);
    :class:`~pyvrel.data.FormatError` naming ``file``, the video and the key for missing or bad arrays."""
    dets = check_detections(arrays, len(objects), file=file, video=annotation.video_id,
                            frame_count=annotation.frame_count)
    if dets.features.shape[1] != dim:
        raise FormatError(f"expected {dim} values per detection (the model's feature_dim), got "
                          f"{dets.features.shape[1]}", file=file, video=annotation.video_id, field="det_features")
    spans = segment_spans(annotation.frame_count, length, stride)
    if not spans:
        return []
    group = torch.from_numpy(dets.frame * len(objects) + dets.labels)  # the detector's NMS: within (frame, label)
    keep = np.sort(batched_nms(torch.from_numpy(dets.boxes), torch.from_numpy(dets.scores), group,
                               DETECTOR_NMS).numpy())
    dets = Detections(dets.frame[keep], dets.boxes[keep], dets.scores[keep], dets.labels[keep], dets.features[keep])
    frame = dets.frame
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
        boxes[s, t, n], scores[s, t, n], labels[s, t, n] = dets.boxes[inside], dets.scores[inside], dets.labels[inside]
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
        feats = dets.features[det] if len(det) else np.zeros((1, dim), np.float32)
        begin = spans[s][0]
        out[s][1].append(Tracklet(objects[label], float(result.tracklet_score[k]) / L, begin + start,
                                  tubes.boxes[k, :L].numpy(), np.repeat(feats.mean(0, keepdims=True), L, 0)))
    return out
