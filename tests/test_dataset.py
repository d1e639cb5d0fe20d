"""pyvrel.data.dataset: one access path to the synthetic world and dataset folders."""

import numpy as np
import pytest

from pyvrel.data.dataset import DEMO_WORLD, open_dataset, synthetic_world
from pyvrel.data.folder import split_annotations
from pyvrel.data.synthetic import SynthConfig, generate
from pyvrel.data.tracklets import detected_tracklets
from pyvrel.data.vocab import load_vocabulary
from pyvrel.engine import ConfigError

WORLD = {"num_videos": 6, "frames": [60, 100]}


def test_synthetic_dataset_is_the_generated_world():
    data = open_dataset("synthetic", WORLD)
    videos = list(generate(SynthConfig(**{**DEMO_WORLD, **WORLD})))
    for split in ("train", "test"):
        want = [v for v in videos if v.split == split]
        annos = data.annotations(split)
        assert list(annos) == [v.annotation.video_id for v in want]
        assert [len(a.relations) for a in annos.values()] == [len(v.annotation.relations) for v in want]
        got = list(data.videos(split, 35))
        assert [a.video_id for a, _ in got] == list(annos)
        for (_, arrays), v in zip(got, want):
            assert all(np.array_equal(arrays[k], v.features[k]) for k in arrays)
    # shards partition a split in order
    train = list(data.annotations("train"))
    assert [a.video_id for a, _ in data.videos("train", 35, shard=(1, 2))] == train[1::2]
    assert data.synthetic and data.has_split("test") and data.vocabulary() == load_vocabulary("vidvrd")


def test_folder_dataset_reads_what_synth_wrote(world_dir):
    data = open_dataset(world_dir, {"num_videos": 99})  # world settings are ignored for a folder
    assert not data.synthetic and data.has_split("train")
    assert list(data.annotations("test")) == list(split_annotations(world_dir, "test"))
    anno, arrays = next(data.videos("train", len(data.vocabulary().objects)))
    tracks = detected_tracklets(arrays, list(data.vocabulary().objects))
    assert len(tracks) == len(arrays["tracklet_start"]) and tracks[0].end <= anno.frame_count


def test_dataset_errors_name_the_folder_and_key(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere: data folder not found"):
        open_dataset(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="world.num_video"):
        synthetic_world({"num_video": 3})
    with pytest.raises(FileNotFoundError, match="no test annotations"):
        open_dataset(tmp_path).annotations("test")
