"""Per-frame detections of one video, the input of ``pyvrel track`` (:mod:`pyvrel.track`).

A detections folder holds one file per video, ``<video_id>.npz`` or ``<video_id>.json`` (the
``.npz`` is used when both exist). Pixel boxes ``(x1, y1, x2, y2)``, frames counted from 0.

``.npz`` keys (other keys are ignored, so the ``features/`` folder of a synthetic world written
with ``hvrnet=True``, or HVR-Net's output, is a detections folder):

================  ===============  ==========================================================
key               shape, dtype     meaning
================  ===============  ==========================================================
``det_frame``     (K,) int         frame of each detection, in ``[0, frame_count)``
``det_boxes``     (K, 4) float     its box, ``x2 >= x1``, ``y2 >= y1``
``det_scores``    (K,) float       its score (of its label)
``det_labels``    (K,) int         its category: index into the vocabulary's objects
``det_features``  (K, D) float     its appearance feature (e.g. the detector's RoI feature)
================  ===============  ==========================================================

``.json``: ``{"video_id": "...", "detections": [{"frame": 0, "box": [x1, y1, x2, y2],
"score": 0.9, "label": "dog", "feature": [0.1, ...]}, ...]}`` with the same meaning (``label``
a category name of the vocabulary, or its index). Errors name the file, the video, the key (and
the detection).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pyvrel.data.errors import FormatError
from pyvrel.data.features import FeatureStore

__all__ = ["DETECTION_KEYS", "Detections", "check_detections", "detection_path", "read_detections"]

#: The arrays of a detections ``.npz`` file (module docstring).
DETECTION_KEYS = ("det_frame", "det_boxes", "det_scores", "det_labels", "det_features")


@dataclass
class Detections:
    """One video's per-frame detections: ``frame (K,)`` int64, ``boxes (K, 4)`` float32,
    ``scores (K,)`` float32, ``labels (K,)`` int64, ``features (K, D)`` float32."""

    frame: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    features: np.ndarray


def detection_path(folder: str | os.PathLike, video_id: str) -> Path:
    """``folder/<video_id>.npz``, else ``folder/<video_id>.json``; FileNotFoundError naming both."""
    for suffix in (".npz", ".json"):
        path = Path(folder) / f"{video_id}{suffix}"
        if path.is_file():
            return path
    raise FileNotFoundError(f"{Path(folder) / video_id}.npz (or .json): detections of video {video_id!r} not found")


def read_detections(path: str | os.PathLike, objects: Sequence[str], *, video: str,
                    frame_count: int | None = None) -> Detections:
    """Read and check one video's detections file (``.npz`` or ``.json``, module docstring);
    ``objects``: the vocabulary's object categories (the label indices), ``frame_count``: the
    video's frames. Raises :class:`FormatError` naming the file, video and key."""
    path = Path(path)
    file = str(path)
    if path.suffix == ".json":
        arrays = _json_arrays(path, objects, video)
    else:
        arrays = FeatureStore(path.parent).load(path.stem, DETECTION_KEYS)
    return check_detections(arrays, len(objects), file=file, video=video, frame_count=frame_count)


def _json_arrays(path: Path, objects: Sequence[str], video: str) -> dict[str, np.ndarray]:
    def fail(key: str, message: str) -> FormatError:
        return FormatError(message, file=str(path), video=video, field=key)

    try:
        obj = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FormatError(f"not a readable JSON file ({e})", file=str(path), video=video) from None
    if not isinstance(obj, dict) or not isinstance(obj.get("detections"), list):
        raise fail("detections", "expected an object with a list 'detections'")
    index = {name: i for i, name in enumerate(objects)}
    rows: dict[str, list] = {k: [] for k in DETECTION_KEYS}
    for i, det in enumerate(obj["detections"]):
        where = f"detections[{i}]"
        if not isinstance(det, dict):
            raise fail(where, f"expected an object, got {det!r:.60}")
        for key in ("frame", "box", "score", "label", "feature"):
            if key not in det:
                raise fail(f"{where}.{key}", f"missing (has {', '.join(sorted(det))})")
        label = det["label"]
        if isinstance(label, str):
            if label not in index:
                raise fail(f"{where}.label", f"{label!r} is not an object category of the vocabulary")
            label = index[label]
        for key, value in (("frame", det["frame"]), ("label", label)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise fail(f"{where}.{key}", f"expected an integer, got {value!r:.60}")
        box, feature = det["box"], det["feature"]
        if not isinstance(box, list) or len(box) != 4 or not all(_is_number(v) for v in box):
            raise fail(f"{where}.box", f"expected [x1, y1, x2, y2] numbers, got {box!r:.60}")
        if not isinstance(feature, list) or not feature or not all(_is_number(v) for v in feature):
            raise fail(f"{where}.feature", "expected a non-empty list of numbers")
        if not _is_number(det["score"]):
            raise fail(f"{where}.score", f"expected a number, got {det['score']!r:.60}")
        if rows["det_features"] and len(feature) != len(rows["det_features"][0]):
            raise fail(f"{where}.feature", f"has {len(feature)} numbers, detections[0] has "
                                           f"{len(rows['det_features'][0])}")
        for key, value in zip(DETECTION_KEYS, (det["frame"], box, det["score"], label, feature)):
            rows[key].append(value)
    width = len(rows["det_features"][0]) if rows["det_features"] else 0
    return {"det_frame": np.array(rows["det_frame"], np.int64).reshape(-1),
            "det_boxes": np.array(rows["det_boxes"], np.float64).reshape(-1, 4),
            "det_scores": np.array(rows["det_scores"], np.float64).reshape(-1),
            "det_labels": np.array(rows["det_labels"], np.int64).reshape(-1),
            "det_features": np.array(rows["det_features"], np.float64).reshape(-1, width)}


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_detections(arrays: Mapping[str, np.ndarray], num_objects: int, *, file: str, video: str,
                     frame_count: int | None) -> Detections:
    """The checked :class:`Detections` of one video's arrays (``DETECTION_KEYS``, already read: a
    dataset's feature file, the synthetic world); :class:`FormatError` naming ``file``, ``video`` and
    the key for a missing or bad array."""
    def fail(key: str, message: str) -> FormatError:
        return FormatError(message, file=file, video=video, field=key)

    missing = [k for k in DETECTION_KEYS if k not in arrays]
    if missing:
        raise fail(missing[0], f"missing (has {', '.join(sorted(arrays))})")
    a = {k: np.asarray(arrays[k]) for k in DETECTION_KEYS}
    K = a["det_frame"].shape[0] if a["det_frame"].ndim == 1 else -1
    shapes = {"det_frame": (K,), "det_boxes": (K, 4), "det_scores": (K,), "det_labels": (K,),
              "det_features": (K, None)}
    for key, shape in shapes.items():
        if a[key].ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, a[key].shape)):
            want = ", ".join("D" if s is None else "K" if s == K else str(s) for s in shape)
            raise fail(key, f"expected shape ({want}{',' if len(shape) == 1 else ''}) with K = "
                            f"{max(K, 0)} detections (det_frame's length), got {a[key].shape}")
    for key in ("det_frame", "det_labels"):
        if not np.issubdtype(a[key].dtype, np.integer):
            raise fail(key, f"expected integers, got {a[key].dtype}")
    for key in ("det_boxes", "det_scores", "det_features"):
        if a[key].dtype == bool or not np.issubdtype(a[key].dtype, np.number):
            raise fail(key, f"expected numbers, got {a[key].dtype}")
        bad = np.argwhere(~np.isfinite(a[key]))
        if len(bad):
            raise fail(key, f"holds NaN or infinity (detection {bad[0][0]}); expected finite values")
    frame, labels, boxes = a["det_frame"], a["det_labels"], a["det_boxes"]
    outside = (frame < 0) if frame_count is None else (frame < 0) | (frame >= frame_count)
    bad = np.flatnonzero(outside)
    if len(bad):
        raise fail("det_frame", f"detection {bad[0]} has frame {frame[bad[0]]}, expected "
                                f"{'>= 0' if frame_count is None else f'[0, {frame_count})'} (the video's frames)")
    bad = np.flatnonzero((labels < 0) | (labels >= num_objects))
    if len(bad):
        raise fail("det_labels", f"detection {bad[0]} has label {labels[bad[0]]}, expected [0, {num_objects}) "
                                 "(the vocabulary's object categories)")
    bad = np.flatnonzero((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1]))
    if len(bad):
        raise fail("det_boxes", f"detection {bad[0]} has box {boxes[bad[0]].tolist()}, expected x2 >= x1, y2 >= y1")
    return Detections(frame.astype(np.int64), boxes.astype(np.float32), a["det_scores"].astype(np.float32),
                      labels.astype(np.int64), a["det_features"].astype(np.float32))
