"""The detection front end (`pyvrel track`, pyvrel.track): per-frame detections of the synthetic world
become tracklets that follow the ground-truth tracks, in a dataset folder VrdONE trains and detects
on; the JSON layout gives the same tracklets as the .npz one; malformed files name file and key."""

import json
import re
import shutil

import numpy as np
import pytest

from pyvrel.cli import main
from pyvrel.data import FeatureStore, FormatError, load_vocabulary, read_annotations
from pyvrel.data.detections import DETECTION_KEYS, read_detections
from pyvrel.track import TrackConfig, track_folder, track_recall

SMALL = ["--set", "model.embd_dim=16", "--set", "model.fpn_dim=8", "--set", "model.dec_dim=8", "--set",
         "model.dec_hidden=16", "--set", "train.epochs=1", "--set", "train.batch_size=4", "--set",
         "train.progress=false"]
OBJECTS = load_vocabulary("vidvrd").objects


@pytest.fixture(scope="module")
def hvr_world(tmp_path_factory):
    """8 videos of the demo world with HVR-Net's stream (det_features, roi_*)."""
    from pyvrel.data.dataset import DEMO_WORLD
    from pyvrel.data.synthetic import SynthConfig, write_world

    out = tmp_path_factory.mktemp("hvr_world")
    write_world(out, SynthConfig(**{**DEMO_WORLD, "num_videos": 8, "frames": (60, 100), "hvrnet": True}))
    return out


def test_track_follows_the_ground_truth_tracks(hvr_world, tmp_path):
    summary = track_folder(hvr_world / "features", hvr_world, tmp_path / "t")
    assert summary["videos"] == 8 and not summary["empty"]
    quality = track_recall(hvr_world, tmp_path / "t")
    assert quality["recall"] >= 0.9 and quality["category"] >= 0.9, quality
    # without joining across missed detections the tracks break: the joining is what brings recall up
    track_folder(hvr_world / "features", hvr_world, tmp_path / "nogap", TrackConfig(max_gap=0))
    assert track_recall(hvr_world, tmp_path / "nogap")["recall"] < quality["recall"]


def test_recall_of_the_ground_truth_itself_is_one(hvr_world, tmp_path):
    """track_recall against tracklets that are the ground-truth tracks (every track's own boxes)."""
    shutil.copytree(hvr_world / "annotations", tmp_path / "gt" / "annotations")
    store = FeatureStore(tmp_path / "gt" / "features")
    for split in ("train", "test"):
        for vid, anno in read_annotations(hvr_world / "annotations" / split).items():
            tids, tubes = anno.object_tubes()
            scores = np.zeros((len(tids), len(OBJECTS)), np.float32)
            scores[np.arange(len(tids)), [OBJECTS.index(anno.category_of()[t]) for t in tids]] = 1
            store.write(vid, {"tracklet_boxes": tubes.boxes.float().numpy(), "tracklet_start": tubes.start.numpy(),
                              "tracklet_length": tubes.length.numpy(), "tracklet_scores": scores,
                              "tracklet_features": np.zeros((*tubes.boxes.shape[:2], 2), np.float32)})
    quality = track_recall(hvr_world, tmp_path / "gt")
    assert quality["recall"] == 1.0 and quality["category"] == 1.0 and quality["mean_viou"] == pytest.approx(1.0)


def test_json_layout_gives_the_same_tracklets(hvr_world, tmp_path):
    dets = tmp_path / "dets"
    dets.mkdir()
    store = FeatureStore(hvr_world / "features")
    for vid in store:
        a = store.load(vid, DETECTION_KEYS)
        rows = [{"frame": int(f), "box": b.tolist(), "score": float(s), "label": OBJECTS[int(lab)], "feature": x.tolist()}
                for f, b, s, lab, x in zip(*(a[k] for k in DETECTION_KEYS))]
        (dets / f"{vid}.json").write_text(json.dumps({"video_id": vid, "detections": rows}))
    track_folder(hvr_world / "features", hvr_world, tmp_path / "from_npz")
    track_folder(dets, hvr_world, tmp_path / "from_json")
    a, b = FeatureStore(tmp_path / "from_npz" / "features"), FeatureStore(tmp_path / "from_json" / "features")
    for vid in a:
        for key, value in a[vid].items():
            np.testing.assert_allclose(b[vid][key], value, rtol=1e-6, err_msg=f"{vid} {key}")


def test_track_then_vrdone_trains_and_detects(hvr_world, tmp_path, capsys):
    out = tmp_path / "tracked"
    assert main(["track", str(hvr_world / "features"), "--data", str(hvr_world), "--out", str(out)]) == 0
    assert "tracked 8 videos" in capsys.readouterr().out
    run = tmp_path / "run"
    assert main(["train", "--model", "vrdone", "--data", str(out), "--out", str(run), *SMALL]) == 0
    pred = tmp_path / "pred.json"
    assert main(["detect", "--checkpoint", str(run / "checkpoints" / "last.pt"), "--data", str(out),
                 "--out", str(pred)]) == 0
    assert "detected" in capsys.readouterr().out
    # a second run into the written folder is refused without --overwrite
    assert main(["track", str(hvr_world / "features"), "--data", str(hvr_world), "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err


def test_hvrnet_train_detect_track_then_vrdone_from_the_command_line(hvr_world, tmp_path, capsys):
    """The whole chain on the command line: pyvrel train --model hvrnet -> pyvrel detect (per-frame
    detections of every video) -> pyvrel track -> pyvrel train --model vrdone on the tracklets."""
    hvr = tmp_path / "hvr"
    assert main(["train", "--model", "hvrnet", "--data", str(hvr_world), "--out", str(hvr), "--set", "model.dim=16",
                 "--set", "model.window=3", "--set", "train.epochs=1", "--set", "train.progress=false"]) == 0
    ckpt = str(hvr / "checkpoints" / "last.pt")
    dets = tmp_path / "dets"
    assert main(["detect", "--checkpoint", ckpt, "--data", str(hvr_world), "--split", "all", "--out", str(dets)]) == 0
    assert "detected objects on every frame of 8 videos" in capsys.readouterr().out
    annos = {**read_annotations(hvr_world / "annotations" / "train"), **read_annotations(hvr_world / "annotations" / "test")}
    for vid, anno in annos.items():  # pyvrel track's layout, labels in the vocabulary, frames in the video
        d = read_detections(dets / f"{vid}.npz", OBJECTS, video=vid, frame_count=anno.frame_count)
        assert len(d.frame) and d.features.shape[1] == 16
    tracked = tmp_path / "tracked"
    assert main(["track", str(dets), "--data", str(hvr_world), "--out", str(tracked)]) == 0
    assert main(["train", "--model", "vrdone", "--data", str(tracked), "--out", str(tmp_path / "vrd"), *SMALL,
                 "--set", "model.visual_dim=16"]) == 0  # the width of HVR-Net's features
    capsys.readouterr()
    # bad input: a non-empty --out, --split all for a relation model, a folder without RoI proposals
    assert main(["detect", "--checkpoint", ckpt, "--data", str(hvr_world), "--out", str(dets)]) == 2
    assert f"--out {dets}: is a folder; give a file name (or, for an object detector" in capsys.readouterr().err
    vrd = str(tmp_path / "vrd" / "checkpoints" / "last.pt")
    assert main(["detect", "--checkpoint", vrd, "--data", str(tracked), "--split", "all", "--out",
                 str(tmp_path / "p.json")]) == 2
    assert "--split all: only for an object detector (hvrnet), not vrdone" in capsys.readouterr().err
    assert main(["detect", "--checkpoint", ckpt, "--data", str(tracked), "--out", str(tmp_path / "d2")]) == 1
    assert re.search(r"features.*\.npz: video \S+: roi_frames: missing", capsys.readouterr().err)


def _bad_file(tmp_path, name, edit):
    src = tmp_path / "src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir()
    arrays = {"det_frame": np.array([0, 1]), "det_boxes": np.array([[0, 0, 10, 10], [1, 1, 11, 11]], np.float32),
              "det_scores": np.array([0.9, 0.8], np.float32), "det_labels": np.array([3, 3]),
              "det_features": np.zeros((2, 4), np.float32)}
    edit(arrays)
    FeatureStore(src).write(name, arrays)
    return src / f"{name}.npz"


@pytest.mark.parametrize(("edit", "key", "message"), [
    (lambda a: a.pop("det_features"), "det_features", "missing"),
    (lambda a: a.update(det_boxes=np.zeros((2, 5), np.float32)), "det_boxes", r"expected shape \(K, 4\)"),
    (lambda a: a.update(det_frame=np.array([0, 99])), "det_frame", r"frame 99, expected \[0, 60\)"),
    (lambda a: a.update(det_labels=np.array([0, 35])), "det_labels", r"label 35, expected \[0, 35\)"),
    (lambda a: a.update(det_scores=np.array([np.nan, 1.0], np.float32)), "det_scores", "NaN"),
    (lambda a: a.update(det_boxes=np.array([[5, 0, 1, 10], [0, 0, 1, 1]], np.float32)), "det_boxes", "x2 >= x1"),
    (lambda a: a.update(det_labels=np.array([0.5, 1.0])), "det_labels", "expected integers"),
])
def test_malformed_npz_names_file_and_key(tmp_path, edit, key, message):
    path = _bad_file(tmp_path, "vid", edit)
    with pytest.raises(FormatError, match=rf"{re.escape(str(path))}: video vid: {key}: .*{message}"):
        read_detections(path, OBJECTS, video="vid", frame_count=60)


@pytest.mark.parametrize(("detection", "key", "message"), [
    ({"frame": 0, "box": [0, 0, 1, 1], "score": 1.0, "label": "robot", "feature": [0.0]}, "detections[0].label",
     "'robot' is not an object category"),
    ({"frame": 0, "box": [0, 0, 1], "score": 1.0, "label": "dog", "feature": [0.0]}, "detections[0].box",
     r"expected \[x1, y1, x2, y2\]"),
    ({"frame": 0, "box": [0, 0, 1, 1], "score": 1.0, "label": "dog"}, "detections[0].feature", "missing"),
    ({"frame": "0", "box": [0, 0, 1, 1], "score": 1.0, "label": "dog", "feature": [0.0]}, "detections[0].frame",
     "expected an integer"),
])
def test_malformed_json_names_file_and_key(tmp_path, detection, key, message):
    path = tmp_path / "vid.json"
    path.write_text(json.dumps({"detections": [detection]}))
    with pytest.raises(FormatError, match=rf"{re.escape(str(path))}: video vid: {re.escape(key)}: {message}"):
        read_detections(path, OBJECTS, video="vid", frame_count=60)


def test_track_command_names_a_missing_detection_file(hvr_world, tmp_path, capsys):
    dets = tmp_path / "dets"
    shutil.copytree(hvr_world / "features", dets)
    victim = sorted(dets.glob("*.npz"))[0]
    victim.unlink()
    assert main(["track", str(dets), "--data", str(hvr_world), "--out", str(tmp_path / "o")]) == 1
    assert f"{victim.with_suffix('')}.npz (or .json): detections of video" in capsys.readouterr().err
    assert not (tmp_path / "o" / "features").exists()  # nothing written before every file was found


def test_synth_command_writes_the_hvrnet_stream(tmp_path):
    assert main(["synth", str(tmp_path / "w"), "--videos", "2", "--hvrnet", "--proposals", "6"]) == 0
    store = FeatureStore(tmp_path / "w" / "features")
    arrays = store[next(iter(store))]
    assert {"det_features", "roi_frames", "roi_boxes", "roi_features"} <= set(arrays.files)
    assert arrays["roi_boxes"].shape[1:] == (6, 4)
    assert json.loads((tmp_path / "w" / "world.json").read_text())["config"]["hvrnet"] is True


def test_tracks_picture():
    from xml.etree import ElementTree

    from pyvrel.report import tracks_svg

    gt = [("dog", 0, [[0, 0, 10, 10], [2, 0, 12, 10]])]
    svg = tracks_svg("v", 5, 100, gt, [("dog", 0, [[0, 0, 10, 10]], True), ("cat", 3, [[50, 0, 60, 9]], False)])
    lines = ElementTree.fromstring(svg).findall("{http://www.w3.org/2000/svg}polyline")
    assert [line.get("stroke") for line in lines] == ["#2ca02c", "#1f77b4", "#d62728"]
    assert "2 tracklets (1 matching one)" in svg and lines[0].get("points").count(",") == 2
