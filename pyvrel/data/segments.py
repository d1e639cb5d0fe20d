"""Segments and pairs, the units of segment-based relation detectors (VidVRD-II, UASAN).

A video is cut into overlapping segments (:func:`segment_spans`: 30 frames, stride 15, as the
MM'17 baseline and VidVRD-II do); every tracklet is cut to each segment it covers
(:func:`cut_tracklets`); the ordered pairs of a segment's tracklets (:func:`ordered_pairs`, no
self-pairs) carry VidVRD-II's 12-d relative position feature (:func:`relative_position`).
Segment tracklets are compared by volumetric vIoU (:func:`tracklet_viou`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from pyvrel.data.tracklets import Tracklet

__all__ = ["SEGMENT_LENGTH", "SEGMENT_STRIDE", "cut_tracklets", "ordered_pairs", "relative_position",
           "segment_spans", "tracklet_viou"]

SEGMENT_LENGTH = 30
SEGMENT_STRIDE = 15


def segment_spans(frame_count: int, length: int = SEGMENT_LENGTH, stride: int = SEGMENT_STRIDE
                  ) -> list[tuple[int, int]]:
    """``[(s, s + length) for s in range(0, frame_count - length + 1, stride)]``: the baseline's
    segments (none when the video is shorter than ``length``)."""
    if length <= 0 or stride <= 0:
        raise ValueError(f"segment_spans: length and stride must be positive, got {length} and {stride}")
    return [(s, s + length) for s in range(0, frame_count - length + 1, stride)]


def cut_tracklets(tracklets: Sequence[Tracklet], begin: int, end: int, min_frames: int = 2) -> list[Tracklet]:
    """The parts of ``tracklets`` inside frames ``[begin, end)`` that keep ``>= min_frames`` frames, in
    input order (boxes, features and ``clip`` sliced; category, score and tid kept)."""
    out = []
    for t in tracklets:
        lo, hi = max(t.start, begin), min(t.end, end)
        if hi - lo >= max(min_frames, 1):
            a, b = lo - t.start, hi - t.start
            out.append(replace(t, start=lo, boxes=t.boxes[a:b], features=t.features[a:b],
                               clip=None if t.clip is None else t.clip[a:b]))
    return out


def ordered_pairs(n: int) -> np.ndarray:
    """``(n * (n - 1), 2)`` int64: every ordered pair ``(s, o)`` of ``n`` tracklets with ``s != o``,
    subject-major. (VidVRD-II's code also scores the self-pairs ``s == o``; pyvrel leaves them out.)"""
    s, o = np.divmod(np.arange(n * n, dtype=np.int64), n)
    keep = s != o
    return np.stack([s[keep], o[keep]], 1)


def _rel(sb: np.ndarray, ts: np.ndarray, ob: np.ndarray, to: np.ndarray, length: int) -> np.ndarray:
    sw, sh = sb[:, 2] - sb[:, 0], sb[:, 3] - sb[:, 1]
    ow, oh = ob[:, 2] - ob[:, 0], ob[:, 3] - ob[:, 1]
    sx, sy = (sb[:, 0] + sb[:, 2]) / 2, (sb[:, 1] + sb[:, 3]) / 2
    ox, oy = (ob[:, 0] + ob[:, 2]) / 2, (ob[:, 1] + ob[:, 3]) / 2
    lw, lh, low, loh = np.log(sw), np.log(sh), np.log(ow), np.log(oh)
    return np.stack([(sx - ox) / ow, (sy - oy) / oh, lw - low, lh - loh, (lw + lh) - (low + loh),
                     (ts - to) / length], 1)


def relative_position(tracklets: Sequence[Tracklet], pairs: np.ndarray, width: float, height: float,
                      length: int = SEGMENT_LENGTH) -> np.ndarray:
    """VidVRD-II's 12-d relative position of each pair ``(s, o)`` (rows of ``pairs``), float32 ``(K, 12)``.

    ``cat(rel(first box of s, s.start, first box of o, o.start), rel(last box of s, s.end, last
    box of o, o.end))`` with ``rel = [(sx-ox)/ow, (sy-oy)/oh, log sw - log ow, log sh - log oh,
    log(sw sh) - log(ow oh), (ts - to)/length]`` on boxes normalised by the frame's ``width`` and
    ``height`` (x, y: box centre; w, h: box size). Raises ValueError naming the tracklet when one
    of its boxes has no positive width or height (the logarithms would not be finite).
    """
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if len(pairs) == 0:
        return np.zeros((0, 12), np.float32)
    scale = np.array([width, height, width, height], np.float64)
    first = np.stack([t.boxes[0] for t in tracklets]).astype(np.float64) / scale
    last = np.stack([t.boxes[-1] for t in tracklets]).astype(np.float64) / scale
    for name, b in (("first", first), ("last", last)):
        bad = np.flatnonzero((b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1]))
        if len(bad):
            raise ValueError(f"relative_position: the {name} box of tracklet {int(bad[0])} has no positive width "
                             f"and height: {tracklets[int(bad[0])].boxes[0 if name == 'first' else -1].tolist()}")
    start = np.array([t.start for t in tracklets], np.float64)
    end = np.array([t.end for t in tracklets], np.float64)
    s, o = pairs[:, 0], pairs[:, 1]
    return np.concatenate([_rel(first[s], start[s], first[o], start[o], length),
                           _rel(last[s], end[s], last[o], end[o], length)], 1).astype(np.float32)


def _tubes(tracklets: Sequence[Tracklet]):
    import torch  # not at import: pyvrel eval (which imports segment_spans) runs without torch

    from pyvrel.ops import Tubes

    L = max((len(t.boxes) for t in tracklets), default=0)
    boxes = np.zeros((len(tracklets), L, 4))
    for i, t in enumerate(tracklets):
        boxes[i, : len(t.boxes)] = t.boxes
    return Tubes(torch.from_numpy(boxes), torch.tensor([t.start for t in tracklets], dtype=torch.int64),
                 torch.tensor([len(t.boxes) for t in tracklets], dtype=torch.int64))


def tracklet_viou(a: Sequence[Tracklet], b: Sequence[Tracklet]) -> np.ndarray:
    """``(len(a), len(b))`` float64 volumetric vIoU of two tracklet lists (continuous areas, no +1 pixel,
    as VidVRD-II on normalised boxes; :func:`pyvrel.ops.tube_iou`)."""
    from pyvrel.ops import tube_iou

    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    return tube_iou(_tubes(a), _tubes(b), pixel_offset=0).numpy()
