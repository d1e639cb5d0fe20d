"""Dataset folders: the layout ``pyvrel train --data DIR`` and ``pyvrel detect --data DIR`` read
and ``pyvrel synth`` writes (one reader for the real datasets and the synthetic world).

::

    DIR/
      annotations/train/...      official per-video annotation JSON files: ImageNet-VidVRD's flat
      annotations/test/...       folder, VidOR's nested <group>/<video>.json folders; or one file
                                 annotations/<split>.json mapping video id -> annotation.
                                 VidOR's names are accepted too: training/, validation/.
      features/<video_id>.npz    detected tracklets of every video (keys: TRACKLET_KEYS below and
                                 :mod:`pyvrel.data.features`; CLIP_KEY too for VrdONE-X); other
                                 keys are ignored.
      objects.txt                optional vocabulary, one name per line (the order of the
      predicates.txt             tracklet_scores columns / of the predicate classes).

Without ``objects.txt``/``predicates.txt`` the vocabulary is the first shipped one (ImageNet-VidVRD's,
then VidOR's) that holds every category and predicate of the annotations, else the sorted names
found in them.
Errors name the file (and the key) that is missing or malformed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from pyvrel.data.annotations import VideoAnnotation, read_annotations
from pyvrel.data.errors import FormatError
from pyvrel.data.features import FeatureStore
from pyvrel.data.vocab import SHIPPED, Vocabulary, load_vocabulary

__all__ = ["CLIP_KEY", "SPLIT_NAMES", "TRACKLET_KEYS", "check_feature_files", "check_tracklets", "feature_path",
           "folder_vocabulary", "has_split", "split_annotations", "split_path"]

#: Folder (or ``.json`` file) names accepted under ``annotations/`` for each split, in search order.
SPLIT_NAMES: dict[str, tuple[str, ...]] = {"train": ("train", "training"), "test": ("test", "validation")}
#: The tracklet arrays of a feature file (``tracklet_tid`` is optional: see :func:`check_tracklets`).
TRACKLET_KEYS = ("tracklet_boxes", "tracklet_start", "tracklet_length", "tracklet_scores", "tracklet_features")
#: The extra per-entity stream of a feature file, ``(N, T, Dc)`` per tracklet frame (VrdONE-X's
#: CLIP features): read only when a model asks for it (``clip_dim > 0`` in :func:`check_tracklets`).
CLIP_KEY = "tracklet_clip"


def split_path(root: str | os.PathLike, split: str) -> Path | None:
    """The annotation folder or file of ``split`` under ``root/annotations`` (None when absent)."""
    if split not in SPLIT_NAMES:
        raise ValueError(f"split must be one of {', '.join(SPLIT_NAMES)}, got {split!r}")
    base = Path(root) / "annotations"
    for name in SPLIT_NAMES[split]:
        for p in (base / name, base / f"{name}.json"):
            if p.exists():
                return p
    return None


def has_split(root: str | os.PathLike, split: str) -> bool:
    return split_path(root, split) is not None


def split_annotations(root: str | os.PathLike, split: str) -> dict[str, VideoAnnotation]:
    """Video id -> annotation of one split of a dataset folder (sorted by video id)."""
    path = split_path(root, split)
    if path is None:
        names = " or ".join(f"annotations/{n}/ (or {n}.json)" for n in SPLIT_NAMES[split])
        raise FileNotFoundError(f"{root}: no {split} annotations (expected {names})")
    annos = read_annotations(path)
    if not annos:
        raise FileNotFoundError(f"{path}: no annotation files in it")
    return dict(sorted(annos.items()))


def feature_path(root: str | os.PathLike, video_id: str) -> Path:
    """``root/features/<video_id>.npz``; FileNotFoundError naming it when it does not exist."""
    path = FeatureStore(Path(root) / "features").path(video_id)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: feature file of video {video_id!r} not found (expected "
                                "DIR/features/<video_id>.npz)")
    return path


def check_feature_files(root: str | os.PathLike, video_ids: Iterable[str]) -> None:
    """Open the feature file of every video (its archive index, not its arrays), so that a missing,
    empty or truncated file, or one without the :data:`TRACKLET_KEYS`, is found before training
    rather than at the first evaluation. Errors name the file."""
    store = FeatureStore(Path(root) / "features")
    for vid in video_ids:
        path = feature_path(root, vid)
        with store[vid] as archive:
            missing = [k for k in TRACKLET_KEYS if k not in archive.files]
        if missing:
            raise FormatError(f"missing (has {', '.join(sorted(archive.files))})", file=str(path), video=vid,
                              field=missing[0])


def folder_vocabulary(root: str | os.PathLike, annotations: Iterable[VideoAnnotation]) -> Vocabulary:
    """The vocabulary of a dataset folder (see the module docstring for the rule)."""
    root = Path(root)
    files = [root / "objects.txt", root / "predicates.txt"]
    if any(f.exists() for f in files):
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise FileNotFoundError(f"{missing[0]}: not found (a folder vocabulary needs objects.txt and "
                                    "predicates.txt)")
        vocab = Vocabulary.from_files(root.name, *files)
    else:
        annotations = list(annotations)
        objects = {o.category for a in annotations for o in a.objects}
        predicates = {r.predicate for a in annotations for r in a.relations}
        for shipped in map(load_vocabulary, SHIPPED):
            if objects <= set(shipped.objects) and predicates <= set(shipped.predicates):
                return shipped
        return Vocabulary(root.name, tuple(sorted(objects)), tuple(sorted(predicates)))
    for a in annotations:
        for name, have, used in (("objects.txt", vocab.objects, [o.category for o in a.objects]),
                                 ("predicates.txt", vocab.predicates, [r.predicate for r in a.relations])):
            unknown = sorted(set(used) - set(have))
            if unknown:
                raise FormatError(f"not in {root / name}: {', '.join(map(repr, unknown[:5]))}", file=a.source,
                                  video=a.video_id)
    return vocab


def check_tracklets(arrays: Mapping[str, np.ndarray], num_objects: int, *, file: str, video: str,
                    frame_count: int | None = None, clip_dim: int = 0) -> dict[str, np.ndarray]:
    """Validate the tracklet arrays of one video and return them (``tracklet_tid`` included when
    present, ``tracklet_clip`` when ``clip_dim > 0``).

    Expected (``N`` tracklets padded to ``T`` frames, ``C = num_objects``, ``D`` feature width):
    ``tracklet_boxes (N, T, 4)`` pixel ``x1 y1 x2 y2``, ``tracklet_start (N,)`` and
    ``tracklet_length (N,)`` integers (frames ``[start, start + length)``, ``1 <= length <= T``),
    ``tracklet_scores (N, C)`` category scores in the vocabulary's object order (a detector with
    one label per tracklet writes its score in that column, 0 elsewhere), ``tracklet_features (N,
    T, D)`` per-frame appearance, optional ``tracklet_tid (N,)`` the ground-truth object each
    tracklet follows (-1: none); boxes, scores and features hold finite numbers (padding too).
    ``clip_dim > 0``: ``tracklet_clip (N, T, clip_dim)`` (:data:`CLIP_KEY`,
    the extra per-frame stream of VrdONE-X) is required; ``clip_dim == 0``: it is ignored.
    Raises :class:`FormatError` naming ``file``, ``video`` and the key.
    """
    def fail(key: str, message: str) -> FormatError:
        return FormatError(message, file=file, video=video, field=key)

    missing = [k for k in TRACKLET_KEYS if k not in arrays]
    if missing:
        raise fail(missing[0], f"missing (has {', '.join(sorted(arrays))})")
    if clip_dim > 0 and CLIP_KEY not in arrays:
        raise fail(CLIP_KEY, f"missing: the model's clip_dim={clip_dim} needs the extra per-entity stream, shape "
                             f"(N, T, {clip_dim}) per tracklet frame (has {', '.join(sorted(arrays))})")
    wanted = (*TRACKLET_KEYS, "tracklet_tid") + ((CLIP_KEY,) if clip_dim > 0 else ())
    out = {k: np.asarray(arrays[k]) for k in wanted if k in arrays}
    boxes, start, length = out["tracklet_boxes"], out["tracklet_start"], out["tracklet_length"]
    if boxes.ndim != 3 or boxes.shape[2] != 4:
        raise fail("tracklet_boxes", f"expected shape (N, T, 4), got {boxes.shape}")
    N, T = boxes.shape[:2]
    expected = {"tracklet_start": (N,), "tracklet_length": (N,), "tracklet_scores": (N, num_objects),
                "tracklet_features": (N, T, None), "tracklet_tid": (N,), CLIP_KEY: (N, T, clip_dim)}
    for key, shape in expected.items():
        if key in out and (out[key].ndim != len(shape) or any(s is not None and s != d
                                                              for s, d in zip(shape, out[key].shape))):
            want = ", ".join("D" if s is None else str(s) for s in shape)
            raise fail(key, f"expected shape ({want}{',' if len(shape) == 1 else ''}), got {out[key].shape}"
                       + (f" ({num_objects} = the vocabulary's object categories)" if key == "tracklet_scores" else "")
                       + (f" ({clip_dim} = the model's clip_dim)" if key == CLIP_KEY else ""))
    for key in ("tracklet_start", "tracklet_length", "tracklet_tid"):
        if key in out and not np.issubdtype(out[key].dtype, np.integer):
            raise fail(key, f"expected integers, got {out[key].dtype}")
    for key in ("tracklet_boxes", "tracklet_scores", "tracklet_features", CLIP_KEY):
        if key not in out:
            continue
        if out[key].dtype == bool or not np.issubdtype(out[key].dtype, np.number):
            raise fail(key, f"expected numbers, got {out[key].dtype}")
        bad = np.argwhere(~np.isfinite(out[key]))
        if len(bad):
            frame = f", frame {bad[0][1]}" if bad.shape[1] > 2 else ""
            raise fail(key, f"holds NaN or infinity (tracklet {bad[0][0]}{frame}); expected finite values")
    if N == 0:
        raise fail("tracklet_boxes", "no tracklets")
    if (length < 1).any() or (length > T).any() or (start < 0).any():
        raise fail("tracklet_length", f"every tracklet needs start >= 0 and 1 <= length <= T = {T}")
    if frame_count is not None and (start + length > frame_count).any():
        raise fail("tracklet_start", f"a tracklet ends after the video's last frame ({frame_count} frames)")
    return out
