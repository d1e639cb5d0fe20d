"""Dataset access for every model: ``open_dataset("synthetic" | DIR)``.

A :class:`Dataset` is the built-in synthetic world (:mod:`pyvrel.data.synthetic`, from a world
config, default :data:`DEMO_WORLD`) or a dataset folder (:mod:`pyvrel.data.folder`: official
annotation JSON and per-video ``.npz`` feature files; ``pyvrel synth`` writes one). Both give the
same things: the annotations of a split, the vocabulary, and each video's checked tracklet arrays,
read one video at a time. Errors name the file, video and key.
"""

from __future__ import annotations

import dataclasses
import os
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pyvrel.data.annotations import VideoAnnotation
from pyvrel.data.errors import FormatError
from pyvrel.data.features import FeatureStore
from pyvrel.data.folder import (CLIP_KEY, check_tracklets, feature_path, folder_vocabulary, has_split,
                                split_annotations)
from pyvrel.data.synthetic import SynthConfig, World, generate, generate_video
from pyvrel.data.synthetic.world import video_split
from pyvrel.data.vocab import Vocabulary, load_vocabulary

__all__ = ["DEMO_WORLD", "Dataset", "check_data", "open_dataset", "synthetic_world"]

#: The small synthetic world ``--data synthetic`` uses unless a model's ``world`` settings say otherwise.
DEMO_WORLD: dict[str, Any] = {"seed": 0, "num_videos": 150, "frames": [60, 240], "entities": [2, 4], "min_run": 16}
SYNTHETIC = "synthetic"


def _synth_config(world: Mapping[str, Any]) -> SynthConfig:
    from pyvrel.engine.config import config_from_dict  # only here: reading a folder needs no training code

    return config_from_dict(SynthConfig, world, prefix="world.")


def synthetic_world(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """:data:`DEMO_WORLD` with ``overrides`` (``SynthConfig`` keys), checked: a bad key or value
    raises :class:`~pyvrel.engine.ConfigError` naming ``world.<key>``."""
    world = {**DEMO_WORLD, **(overrides or {})}
    _synth_config(world)
    return world


class Dataset:
    """The synthetic world or a dataset folder (module docstring); make one with :func:`open_dataset`.

    ``name`` is ``"synthetic"`` or the folder path, as given.
    """

    def __init__(self, name: str, synth: SynthConfig | None = None) -> None:
        self.name, self._synth = name, synth

    @property
    def synthetic(self) -> bool:
        return self._synth is not None

    def has_split(self, split: str) -> bool:
        """Whether ``split`` (``"train"`` | ``"test"``) has annotations (always, for the synthetic world)."""
        return self.synthetic or has_split(self.name, split)

    def annotations(self, split: str) -> dict[str, VideoAnnotation]:
        """Video id -> annotation of ``split``, sorted by video id (read or generated on every call)."""
        if self._synth is not None:
            plain = dataclasses.replace(self._synth, features=False)  # the same annotations, no arrays
            return {v.annotation.video_id: v.annotation for v in generate(plain, split)}
        return split_annotations(self.name, split)

    def vocabulary(self, train_annotations: Mapping[str, VideoAnnotation] | None = None) -> Vocabulary:
        """VidVRD's for the synthetic world, else the folder's (:func:`pyvrel.data.folder.folder_vocabulary`,
        over ``train_annotations`` when given, else over the folder's training annotations)."""
        if self.synthetic:
            return load_vocabulary("vidvrd")
        if train_annotations is None:
            train_annotations = self.annotations("train")
        return folder_vocabulary(self.name, train_annotations.values())

    def videos(self, split: str, num_objects: int, shard: tuple[int, int] = (0, 1), clip_dim: int = 0,
               annotations: Mapping[str, VideoAnnotation] | None = None
               ) -> Iterator[tuple[VideoAnnotation, dict[str, np.ndarray]]]:
        """``(annotation, tracklet arrays)`` of the ``split`` videos, by video id, one at a time;
        ``shard=(r, n)``: only every ``n``-th video from the ``r``-th. Arrays are checked
        (:func:`pyvrel.data.folder.check_tracklets`: scores over ``num_objects`` categories,
        ``tracklet_clip`` of width ``clip_dim`` when it is > 0, else not read); errors name the
        file and key. ``annotations``: the folder's ``split`` annotations when already read."""
        def wanted(key: str) -> bool:
            return key.startswith("tracklet_") and (clip_dim > 0 or key != CLIP_KEY)  # unused: not read

        for anno, arrays, file in self.arrays(split, wanted, shard, annotations):
            yield anno, check_tracklets(arrays, num_objects, file=file, video=anno.video_id,
                                        frame_count=anno.frame_count, clip_dim=clip_dim)

    def arrays(self, split: str, wanted: Callable[[str], bool], shard: tuple[int, int] = (0, 1),
               annotations: Mapping[str, VideoAnnotation] | None = None
               ) -> Iterator[tuple[VideoAnnotation, dict[str, np.ndarray], str]]:
        """``(annotation, arrays, file)`` of the ``split`` videos as :meth:`videos` walks them, unchecked:
        the arrays whose key ``wanted(key)`` accepts (only those are read from a folder's ``.npz``) and
        the file they came from (``"synthetic world"`` for the built-in world), for the model to check."""
        rank, n = shard
        if self._synth is not None:
            synth, world = self._synth, World(self._synth)
            for i in [i for i in range(synth.num_videos) if video_split(synth, i) == split][rank::n]:
                v = generate_video(synth, i, world)
                yield v.annotation, {k: a for k, a in v.features.items() if wanted(k)}, "synthetic world"
            return
        store = FeatureStore(Path(self.name) / "features")
        if annotations is None:
            annotations = self.annotations(split)
        for vid, anno in list(annotations.items())[rank::n]:
            path = feature_path(self.name, vid)
            archive = store[vid]  # FormatError naming the file when it is not a readable .npz
            try:
                with archive:
                    arrays = {k: archive[k] for k in archive.files if wanted(k)}
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:  # a damaged array in the archive
                raise FormatError(f"not a readable .npz file ({e})", file=str(path)) from None
            yield anno, arrays, str(path)


def check_data(data: str | os.PathLike) -> None:
    """FileNotFoundError unless ``data`` is ``"synthetic"`` or an existing folder."""
    if os.fspath(data) != SYNTHETIC and not Path(data).is_dir():
        raise FileNotFoundError(f"{os.fspath(data)}: data folder not found (give a folder or 'synthetic')")


def open_dataset(data: str | os.PathLike, world: Mapping[str, Any] | None = None) -> Dataset:
    """The dataset ``data`` names: ``"synthetic"`` (the world :func:`synthetic_world` makes of
    ``world``) or a dataset folder (``world`` is then ignored); :func:`check_data` first."""
    check_data(data)
    name = os.fspath(data)
    return Dataset(name, _synth_config(synthetic_world(world)) if name == SYNTHETIC else None)
