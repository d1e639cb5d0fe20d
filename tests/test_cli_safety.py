"""The commands never lose or mix a user's data, and every error reaches the user as one line naming
the file, argument or key (exit code 1 or 2, no traceback)."""

import json
import lzma
import shutil
import subprocess
import sys

import numpy as np
import pytest

from pyvrel.cli import main
from pyvrel.data import FeatureStore, FormatError
from pyvrel.data.folder import check_tracklets, split_annotations
from pyvrel.engine import load_checkpoint
from pyvrel.engine.rundir import read_metrics

TOY = ["--model", "engine_toy:build_task", "--data", "synthetic", "--set", "train.epochs=1"]
SMALL = ["--set", "model.embd_dim=16", "--set", "model.fpn_dim=8", "--set", "model.dec_dim=8", "--set",
         "model.dec_hidden=16", "--set", "train.epochs=1", "--set", "train.batch_size=4", "--set",
         "train.progress=false"]


def err_line(capsys) -> str:
    """The one line the command printed to stderr."""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1 and "Traceback" not in "\n".join(err)
    return err[-1]


def test_train_refuses_a_non_empty_out_unless_resume_or_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", *TOY, "--out", str(out)]
    assert main(args) == 0
    (out / "notes.txt").write_text("mine")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert main(args + ["--set", "train.lr=0.1"]) == 2
    assert f"--out {out}: the folder is not empty (it holds checkpoints, config.json, metrics.jsonl, notes.txt)" \
        in err_line(capsys)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before  # nothing touched
    # --resume continues the run kept there
    assert main(args + ["--set", "train.epochs=2", "--resume", "auto"]) == 0
    assert load_checkpoint(out / "checkpoints" / "last.pt")["epoch"] == 2 and (out / "notes.txt").exists()
    # a checkpoint of another folder does not continue this one
    other = tmp_path / "other"
    assert main(["train", *TOY, "--out", str(other)]) == 0
    assert main(args + ["--resume", str(other / "checkpoints" / "last.pt")]) == 2
    assert "the folder is not empty" in err_line(capsys)
    # --overwrite starts afresh in an emptied folder
    assert main(args + ["--overwrite"]) == 0
    assert not (out / "notes.txt").exists() and not (out / "checkpoints" / "epoch_0002.pt").exists()
    assert [r["step"] for r in read_metrics(out / "metrics.jsonl") if r["type"] == "train"] == list(range(1, 7))
    # --resume auto with no checkpoint to continue from is a fresh run: the same rule
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "config.json").write_text("{}")
    assert main(["train", *TOY, "--out", str(tmp_path / "mine"), "--resume", "auto"]) == 2
    assert (tmp_path / "mine" / "config.json").read_text() == "{}"
    assert main(["train", *TOY, "--out", str(tmp_path / "mine"), "--resume", "auto", "--overwrite"]) == 0


def test_nothing_is_written_before_the_settings_are_checked(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TOY, "--out", str(out), "--set", "train.batch_size=1000"]) == 2
    assert "--set: train.batch_size: 1000 is larger than the dataset (48 items)" in err_line(capsys)
    assert not out.exists()
    assert main(["train", *TOY, "--out", str(out)]) == 0
    config = (out / "config.json").read_text()
    assert main(["train", *TOY, "--out", str(out), "--resume", "auto", "--set", "train.batch_size=1000"]) == 2
    assert "--set: train.batch_size" in err_line(capsys)
    assert (out / "config.json").read_text() == config
    assert main(["train", *TOY, "--out", str(out), "--overwrite", "--set", "train.batch_size=1000"]) == 2
    assert (out / "config.json").read_text() == config  # --overwrite clears only once the settings are checked


def test_out_paths_that_are_files_or_folders(tmp_path, capsys):
    file = tmp_path / "file"
    file.write_text("x")
    assert main(["train", *TOY, "--out", str(file)]) == 2
    assert f"--out {file}: exists and is not a folder" in err_line(capsys)
    assert main(["train", *TOY, "--out", str(file / "run")]) == 2
    assert f"--out {file / 'run'}: {file} is a file, not a folder" in err_line(capsys)
    assert main(["detect", "--checkpoint", str(tmp_path / "none.pt"), "--data", "synthetic", "--out",
                 str(tmp_path)]) == 2
    assert f"--out {tmp_path}: is a folder; give a file name" in err_line(capsys)


def test_a_cut_short_metrics_line_is_dropped_and_bad_lines_named(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TOY, "--out", str(out)]) == 0
    metrics = out / "metrics.jsonl"
    text = metrics.read_text()
    metrics.write_text(text[:-25])  # an append that did not finish
    assert main(["train", *TOY, "--out", str(out), "--resume", "auto", "--set", "train.epochs=2"]) == 0
    records = read_metrics(metrics)
    assert [r["step"] for r in records if r["type"] == "train"] == list(range(1, 13))
    assert metrics.read_text().endswith("}\n")
    lines = metrics.read_text().splitlines()
    metrics.write_text("\n".join([lines[0], lines[1][:30], *lines[2:]]) + "\n")
    assert main(["train", *TOY, "--out", str(out), "--resume", "auto", "--set", "train.epochs=3"]) == 1
    assert f"{metrics}: line 2: not valid JSON" in err_line(capsys)
    metrics.write_text('{"type": "train"}\n')
    with pytest.raises(ValueError, match="line 1: expected a JSON object with an integer 'step'"):
        read_metrics(metrics)


def test_best_metric_is_checked_at_start_up(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TOY, "--out", str(out), "--set", "train.best_metric=mes"]) == 2
    assert "--set: train.best_metric: 'mes' is not a metric of this model's evaluation (it reports mse)" \
        in err_line(capsys)
    assert not out.exists()


def test_a_failing_evaluation_keeps_the_epochs_checkpoint(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TOY, "--out", str(out), "--set", "model.raise_in_eval=true"]) == 1
    assert "simulated evaluation failure" in err_line(capsys)
    assert load_checkpoint(out / "checkpoints" / "last.pt")["epoch"] == 1
    assert (out / "checkpoints" / "epoch_0001.pt").is_file()


def test_best_checkpoint_is_the_last_one_when_written_at_the_same_step(tmp_path):
    out = tmp_path / "run"
    assert main(["train", *TOY, "--out", str(out), "--set", "train.best_metric=mse", "--set",
                 "train.best_mode=min"]) == 0
    best, last = (load_checkpoint(out / "checkpoints" / n) for n in ("best.pt", "last.pt"))
    assert best["best"] == last["best"] is not None and best["step"] == last["step"]


def test_resume_from_a_checkpoint_of_another_model_size(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TOY, "--out", str(out)]) == 0
    ckpt = out / "checkpoints" / "last.pt"
    assert main(["train", *TOY, "--out", str(out), "--resume", str(ckpt), "--set", "model.hidden=8",
                 "--set", "train.epochs=2"]) == 1
    line = err_line(capsys)
    assert f"{ckpt}: the checkpoint does not fit this run's model (other model settings?): size mismatch" in line


def test_config_values_name_their_key_and_source(tmp_path, capsys):
    args = ["train", "--model", "vrdone", "--data", "synthetic", "--out", str(tmp_path / "run")]
    assert main(args + ["--set", "model.world.frames=[100,60]"]) == 2
    assert "--set: model.world.frames: expected [low, high] with 1 <= low <= high, got [100, 60]" in err_line(capsys)
    assert main(args + ["--set", "model.n_head=0"]) == 2
    assert "--set: model.n_head: must be >= 1" in err_line(capsys)
    assert main(args + ["--set", "model.n_head=3"]) == 2
    assert "--set: model.n_head: embd_dim=64 must be divisible by n_head=3" in err_line(capsys)
    assert not (tmp_path / "run").exists()


def test_synth_refuses_a_non_empty_folder_unless_overwrite(tmp_path, capsys):
    out = tmp_path / "world"
    assert main(["synth", str(out), "--videos", "3", "--no-features"]) == 0
    world = (out / "world.json").read_bytes()
    files = sorted(p.name for p in out.rglob("*.json"))
    assert main(["synth", str(out), "--videos", "3", "--seed", "1", "--no-features"]) == 2
    assert f"OUT_DIR {out}: the folder is not empty (it holds annotations, world.json)" in err_line(capsys)
    assert (out / "world.json").read_bytes() == world and sorted(p.name for p in out.rglob("*.json")) == files
    assert main(["synth", str(out), "--videos", "3", "--seed", "1", "--no-features", "--overwrite"]) == 0
    names = {p.stem for p in (out / "annotations").rglob("*.json")}
    assert names and all(n.startswith("synth0001_") for n in names)  # the old world is gone
    assert main(["synth", str(tmp_path / "w2"), "--videos", "0"]) == 2
    assert "pyvrel synth: error: --videos: must be >= 1, got 0" in err_line(capsys)


@pytest.fixture
def data(world_dir, tmp_path):
    """A writable copy of the tiny dataset folder."""
    out = tmp_path / "data"
    shutil.copytree(world_dir, out)
    return out


def test_a_bad_eval_split_file_is_found_at_start_up(data, tmp_path, capsys):
    store = FeatureStore(data / "features")
    vid = sorted(split_annotations(data, "test"))[0]
    store.path(vid).write_bytes(b"")  # a 0-byte .npz
    out = tmp_path / "run"
    args = ["train", "--model", "vrdone", "--data", str(data), "--out", str(out), *SMALL]
    assert main(args) == 1
    assert f"{store.path(vid)}: not a readable .npz file" in err_line(capsys)
    assert not out.exists()  # before training, not at the first evaluation
    bad = data / "annotations" / "test" / f"{vid}.json"
    bad.write_text("{")
    assert main(args) == 1
    assert f"{bad}: not valid JSON" in err_line(capsys)


def test_a_bad_train_feature_file_names_the_file(data, tmp_path, capsys):
    store = FeatureStore(data / "features")
    vid = sorted(split_annotations(data, "train"))[0]
    good = dict(store[vid])
    args = ["train", "--model", "vrdone", "--data", str(data), "--out", str(tmp_path / "run"), *SMALL]
    store.path(vid).write_bytes(b"")
    assert main(args) == 1
    assert f"{store.path(vid)}: not a readable .npz file" in err_line(capsys)
    features = good["tracklet_features"].copy()
    features[0, 2, 3] = np.nan
    store.write(vid, {**good, "tracklet_features": features})
    assert main(args) == 1
    assert (f"{store.path(vid)}: video {vid}: tracklet_features: holds NaN or infinity (tracklet 0, frame 2); "
            "expected finite values") in err_line(capsys)


def test_check_tracklets_refuses_non_finite_and_non_numeric_values(world_dir):
    store = FeatureStore(world_dir / "features")
    good = dict(store[next(iter(store))])
    boxes = good["tracklet_boxes"].copy()
    boxes[0, 1, 2] = np.inf
    with pytest.raises(FormatError, match=r"f: video v: tracklet_boxes: holds NaN or infinity \(tracklet 0, frame 1\)"):
        check_tracklets({**good, "tracklet_boxes": boxes}, 35, file="f", video="v")
    scores = good["tracklet_scores"].copy()
    scores[-1, 0] = -np.inf
    with pytest.raises(FormatError, match=rf"tracklet_scores: holds NaN or infinity \(tracklet {len(scores) - 1}\)"):
        check_tracklets({**good, "tracklet_scores": scores}, 35, file="f", video="v")
    with pytest.raises(FormatError, match="tracklet_boxes: expected numbers, got <U"):
        check_tracklets({**good, "tracklet_boxes": good["tracklet_boxes"].astype(str)}, 35, file="f", video="v")


@pytest.fixture
def gt_and_pred(world_dir, tmp_path):
    """The test annotations of the tiny world and a prediction file holding them as predictions."""
    from pyvrel.data import load_groundtruth

    gt = world_dir / "annotations" / "test"
    results = {vid: [{"triplet": list(r.triplet), "duration": list(r.duration), "score": 1.0,
                      "sub_traj": r.sub_traj.tolist(), "obj_traj": r.obj_traj.tolist()} for r in rels]
               for vid, rels in load_groundtruth(gt).items()}
    pred = {"version": "VERSION 1.0", "results": results}
    return gt, pred


def test_eval_errors_are_one_line(gt_and_pred, tmp_path, capsys):
    gt, pred = gt_and_pred
    good = tmp_path / "pred.json"
    good.write_text(json.dumps(pred))
    assert main(["eval", str(gt), str(good), "--json"]) == 0
    capsys.readouterr()
    cases = []
    (tmp_path / "empty").mkdir()
    cases.append(([str(tmp_path / "empty"), str(good)], "the ground truth has no relation"))  # one line, exit 1
    cases.append(([str(gt), str(tmp_path)], f"{tmp_path}: is a folder"))
    (tmp_path / "not.json.xz").write_bytes(b"abc")
    cases.append(([str(gt), str(tmp_path / "not.json.xz")], f"{tmp_path / 'not.json.xz'}: not a readable .xz file"))
    (tmp_path / "cut.json.xz").write_bytes(lzma.compress(good.read_bytes())[:-30])
    cases.append(([str(gt), str(tmp_path / "cut.json.xz")], f"{tmp_path / 'cut.json.xz'}: not a readable .xz file"))
    cases.append(([str(gt), str(good), "--train-gt", str(tmp_path / "nowhere")], f"{tmp_path / 'nowhere'}: no such"))
    (tmp_path / "bad.json").write_text("{bad")
    cases.append(([str(gt), str(good), "--train-gt", str(tmp_path / "bad.json")], f"{tmp_path / 'bad.json'}: not valid"))
    (tmp_path / "version.json").write_text(json.dumps({**pred, "version": 3}))
    cases.append(([str(gt), str(tmp_path / "version.json")],
                  f"{tmp_path / 'version.json'}: version: must be a string like 'VERSION 1.0', got 3"))
    vid, rels = next(iter(pred["results"].items()))
    for i, name in enumerate(("\u0000pvx", "\u0000pv99999")):  # strings that look like the C++ pass's markers
        marked = {**pred, "results": {**pred["results"], vid: [{**rels[0], "sub_traj": name}, *rels[1:]]}}
        (tmp_path / f"marker{i}.json").write_text(json.dumps(marked))
        cases.append(([str(gt), str(tmp_path / f"marker{i}.json")], f"video {vid}: relation[0].sub_traj: must be"))
    for argv, message in cases:
        assert main(["eval", *argv]) == 1, argv
        assert message in err_line(capsys)


def test_the_real_command_prints_no_traceback(tmp_path):
    """Through the console entry point (its own process): one line, exit code 1."""
    (tmp_path / "p.json.xz").write_bytes(b"not xz")
    run = subprocess.run([sys.executable, "-m", "pyvrel", "eval", str(tmp_path), str(tmp_path / "p.json.xz")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert run.stderr.strip().splitlines() == [f"pyvrel eval: error: {tmp_path / 'p.json.xz'}: not a readable .xz "
                                               "file (Input format not supported by decoder)"]


def test_overwrite_never_clears_the_current_or_home_folder(tmp_path, monkeypatch):
    from pyvrel.engine.rundir import OutputFolderError, check_out_dir

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "x").write_text("x")
    monkeypatch.chdir(tmp_path / "run")
    for folder in (".", "..", str(tmp_path)):
        with pytest.raises(OutputFolderError, match="will not delete the current folder"):
            check_out_dir(folder, "--out", overwrite=True)
    monkeypatch.chdir(tmp_path)
    assert check_out_dir("run", "--out", overwrite=True) is True
    assert check_out_dir("run", "--out", continues=True) is False


@pytest.mark.parametrize("args, option", [
    (["eval", "GT", "PRED", "--viou-threshold", "nan"], "--viou-threshold"),
    (["eval", "GT", "PRED", "--viou-threshold", "1.5"], "--viou-threshold"),
    (["demo", "--threads", "0"], "--threads"),
    (["synth", "W", "--tail", "nan"], "--tail"),
    (["synth", "W", "--feature-dim", "-3"], "--feature-dim"),
    (["synth", "W", "--proposals", "0"], "--proposals"),
    (["synth", "W", "--sampled-frames", "0", "--grounding"], "--sampled-frames"),
    (["synth", "W", "--seed", "-1"], "--seed"),
    (["synth", "W", "--clip-dim", "-1"], "--clip-dim"),
])
def test_numeric_options_are_checked_where_they_enter(tmp_path, capsys, args, option):
    """Out-of-range or non-finite numbers stop the command (exit 2) naming the option, before any work."""
    args = [str(tmp_path / a) if a in ("GT", "PRED", "W") else a for a in args]
    try:
        code = main(args)
    except SystemExit as e:  # argparse's usage error
        code = e.code
    assert code == 2
    assert option in capsys.readouterr().err
    assert not (tmp_path / "W").exists()


def test_synth_config_numbers_name_their_key():
    from pyvrel.data.synthetic import SynthConfig
    from pyvrel.engine import ConfigError

    for key, value in (("tail", float("nan")), ("confusion", 1.5), ("min_run", 0), ("feature_dim", 2.0),
                       ("seed", True)):
        with pytest.raises(ConfigError) as e:
            SynthConfig(**{key: value})
        assert e.value.key == key
