"""Per-video feature stores: one ``.npz`` file per video, read lazily.

Layout: ``<root>/<video_id>.npz``. Arrays are read from disk only when first accessed (``np.load``
of an ``.npz`` maps the archive; each key is decompressed on access). Keys written by the
synthetic world (:mod:`pyvrel.data.synthetic`) and read by the models:

=====================  =====================  ================================================
key                    shape, dtype           meaning
=====================  =====================  ================================================
``tracklet_boxes``     (N, T, 4) float32      detected tracklets, padded along time (``Tubes``)
``tracklet_start``     (N,) int64             first frame of each tracklet
``tracklet_length``    (N,) int64             frames of each tracklet
``tracklet_scores``    (N, C) float32         category scores (C object categories)
``tracklet_features``  (N, T, D) float32      appearance feature per tracklet frame
``tracklet_tid``       (N,) int64             ground-truth tid it came from, -1 for false tracks
``tracklet_clip``      (N, T, Dc) float32     optional extra per-entity stream (VrdONE-X; CLIP)
``det_frame``          (K,) int64             per-frame detections: frame index
``det_boxes``          (K, 4) float32         per-frame detections: box
``det_scores``         (K,) float32           per-frame detections: best category score
``det_labels``         (K,) int64             per-frame detections: category index
``det_features``       (K, D) float32         per-frame detections: appearance (``pyvrel track``)
``roi_frames``         (S,) int64             HVR-Net: frames with RoI proposals (increasing)
``roi_boxes``          (S, M, 4) float32      HVR-Net: M RoI proposals per frame (pixels)
``roi_features``       (S, M, D) float32      HVR-Net: their RoI features
``proposal_frames``    (S,) int64             frames sampled for grounding (vRGV style; non-decreasing)
``proposal_boxes``     (S, M, 4) float32      M region proposals per sampled frame (pixels)
``proposal_features``  (S, M, D) float32      their appearance features
``proposal_tid``       (S, M) int64           synthetic only: the entity of an entity box, else -1
=====================  =====================  ================================================

A store may hold any other keys; :meth:`FeatureStore.load` names the file and key when one is
missing. The ``tracklet_*`` keys are what a dataset folder must provide for ``pyvrel train`` /
``pyvrel detect`` (``tracklet_tid`` optional, ``tracklet_clip`` when the model's ``clip_dim > 0``;
checks in :func:`pyvrel.data.folder.check_tracklets`); the ``proposal_*`` keys are what vRGV
reads (``pyvrel train --model vrgv``, ``pyvrel ground``; checks in
:func:`pyvrel.models.vrgv.task.check_regions`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from pyvrel.data.errors import FormatError

__all__ = ["FeatureStore"]


class FeatureStore(Mapping[str, Mapping[str, np.ndarray]]):
    """Read and write ``<root>/<video_id>.npz`` feature files.

    ``store[vid]`` returns the lazily loaded archive (a mapping key -> array; a file that is not a
    readable ``.npz`` raises :class:`FormatError` naming it);
    ``store.load(vid, keys)`` returns the named arrays as a dict.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def path(self, video_id: str) -> Path:
        return self.root / f"{video_id}.npz"

    def __getitem__(self, video_id: str) -> Mapping[str, np.ndarray]:
        import zipfile  # here: not on the evaluation path's imports

        p = self.path(video_id)
        if not p.is_file():
            raise KeyError(f"{p}: no feature file for video {video_id!r}")
        try:
            return np.load(p, allow_pickle=False)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:  # empty, truncated, not an archive
            raise FormatError(f"not a readable .npz file ({e or type(e).__name__})", file=str(p)) from None

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(p.stem for p in self.root.glob("*.npz")))

    def __len__(self) -> int:
        return sum(1 for _ in self.root.glob("*.npz"))

    def __contains__(self, video_id: object) -> bool:
        return isinstance(video_id, str) and self.path(video_id).is_file()

    def load(self, video_id: str, keys: tuple[str, ...] | list[str]) -> dict[str, np.ndarray]:
        """Read ``keys`` of one video; a missing key raises :class:`FormatError` naming file and key."""
        with self[video_id] as archive:
            out = {}
            for k in keys:
                if k not in archive.files:
                    raise FormatError(f"missing (has {sorted(archive.files)})", file=str(self.path(video_id)),
                                      video=video_id, field=k)
                out[k] = archive[k]
            return out

    def write(self, video_id: str, arrays: Mapping[str, np.ndarray], *, compress: bool = False) -> Path:
        """Write one video's arrays (``compress=True`` uses ``np.savez_compressed``)."""
        self.root.mkdir(parents=True, exist_ok=True)
        p = self.path(video_id)
        (np.savez_compressed if compress else np.savez)(p, **{k: np.asarray(v) for k, v in arrays.items()})
        return p
