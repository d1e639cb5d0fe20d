"""VrdONE through the `pyvrel` command: train (engine task), detect, and the demo's quick mode."""

import json

import pytest
import torch

import engine_toy
from pyvrel.cli import main
from pyvrel.engine import load_checkpoint

TINY = ["--set", "model.world.num_videos=6", "--set", "model.world.frames=[60,100]", "--set", "train.epochs=1",
        "--set", "train.batch_size=4", "--set", "train.progress=false"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("vrdone_run")
    assert main(["train", "--model", "vrdone", "--data", "synthetic", "--out", str(out), *TINY]) == 0
    return out


def test_train_vrdone_writes_a_checkpoint(tiny_run):
    ckpt = load_checkpoint(tiny_run / "checkpoints" / "last.pt")
    assert ckpt["meta"]["model"] == "vrdone" and ckpt["meta"]["data"] == "synthetic"
    assert ckpt["meta"]["model_config"]["world"]["num_videos"] == 6
    assert ckpt["ema"] is not None and ckpt["step"] > 0
    records = [json.loads(ln) for ln in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["type"] == "train"]
    assert train[-1]["loss"] > 0 and "loss_dice" in train[-1]


def test_train_vrdone_evaluates_and_keeps_the_best(tiny_run):
    """The evaluation hook ran after the last epoch: RelDet/RelTag metrics in [0, 1], best.pt kept."""
    records = [json.loads(ln) for ln in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if r["type"] == "eval"]
    assert len(evals) == 1 and evals[0]["epoch"] == 1 and evals[0]["ema"] is True
    names = {"RelDet_mAP", "RelDet_R@50", "RelDet_R@100", "RelTag_P@1", "RelTag_P@5", "RelTag_P@10"}
    assert names <= evals[0].keys() and all(0 <= evals[0][k] <= 1 for k in names)
    best = load_checkpoint(tiny_run / "checkpoints" / "best.pt")
    assert best["best"] == evals[0]["RelDet_mAP"] and best["step"] == evals[0]["step"]


def test_train_vrdone_bad_model_key_names_it(tmp_path, capsys):
    args = ["train", "--model", "vrdone", "--data", "synthetic", "--out", str(tmp_path), *TINY]
    assert main(args + ["--set", "model.no_such_key=1"]) == 2
    assert "model.no_such_key: unknown key" in capsys.readouterr().err
    assert main(args + ["--set", "model.preset=imagenet"]) == 2
    assert "model.preset" in capsys.readouterr().err


def test_detect_writes_predictions_that_eval_reads(tiny_run, tmp_path, capsys):
    from pyvrel.cli import main as cli
    from pyvrel.data import read_predictions
    from pyvrel.data.synthetic import SynthConfig, write_world

    pred = tmp_path / "pred.json"
    ckpt = tiny_run / "checkpoints" / "last.pt"
    assert cli(["detect", "--checkpoint", str(ckpt), "--data", "synthetic", "--out", str(pred)]) == 0
    results = read_predictions(pred).results
    assert results and all(vid.startswith("synth0000_") for vid in results)
    # a folder written by `pyvrel synth`, then scored by `pyvrel eval`
    world = tmp_path / "world"
    write_world(world, SynthConfig(num_videos=5, frames=(60, 90), entities=(2, 3)))
    assert cli(["detect", "--checkpoint", str(ckpt), "--data", str(world), "--out", str(pred)]) == 0
    assert set(read_predictions(pred).results) == {p.stem for p in (world / "annotations" / "test").glob("*.json")}
    capsys.readouterr()
    assert cli(["eval", str(world / "annotations" / "test"), str(pred), "--json"]) == 0
    assert "RelDet" in json.loads(capsys.readouterr().out)
    assert cli(["detect", "--checkpoint", str(tmp_path / "none.pt"), "--data", "synthetic", "--out", str(pred)]) == 1
    assert "checkpoint not found" in capsys.readouterr().err


def test_demo_quick_writes_everything(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    rows = {line.split("  ")[0].strip(): line for line in printed.splitlines()}
    assert "RelDet (%)" in printed and "VrdONE" in rows and "frequency prior" in rows
    assert "frequency prior: a baseline" in printed
    for name in ("predictions.json", "prior_predictions.json", "groundtruth.json", "metrics.json", "metrics.jsonl",
                 "checkpoints/last.pt", "timeline.svg", "training_curve.svg"):
        assert (out / name).is_file(), name
        assert name in printed.split("written to")[1], name  # every file written is listed
    # `pyvrel eval` on what the demo wrote reproduces its table
    metrics = json.loads((out / "metrics.json").read_text())
    capsys.readouterr()
    assert main(["eval", str(out / "groundtruth.json"), str(out / "predictions.json"), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["RelDet"] == metrics["results"]["VrdONE"]["RelDet"]
    assert again["RelTag"] == metrics["results"]["VrdONE"]["RelTag"]
    assert set(metrics["results"]) == {"VrdONE", "frequency prior"} and metrics["steps"] > 0
    # trained through the training entry: VrdONE's train_defaults under its quick demo settings
    from pyvrel.models.vrdone.task import DEMO, TRAIN_DEFAULTS

    assert {**TRAIN_DEFAULTS["synthetic"], **DEMO["quick"]["train"]}.items() <= metrics["train"].items()
    assert metrics["world"]["num_videos"] == 8 and (out / "config.json").is_file()
    assert 0 <= metrics["results"]["VrdONE"]["RelDet"]["mAP"] <= 1
    timeline = (out / "timeline.svg").read_text()
    assert timeline.startswith("<svg") and ">GT</text>" in timeline and "<rect" in timeline and "frame (of " in timeline
    curve = (out / "training_curve.svg").read_text()
    assert "<polyline" in curve and ">training step</text>" in curve


def test_torchrun_vrdone_two_processes_match_one_process(world_dir, tmp_path):
    """`pyvrel train --model vrdone` on a dataset folder, 2 gloo processes x 2 pairs vs 1 process x 4:
    the same weights, losses and evaluation (float64, so only summation order differs)."""
    from pyvrel.models.vrdone.task import build_task

    small = {"model.dtype": '"float64"', "model.embd_dim": 16, "model.fpn_dim": 8, "model.dec_dim": 8,
             "model.dec_hidden": 16, "train.epochs": 2, "train.batch_size": 4, "train.progress": "false",
             "train.log_every": 1, "train.eval_every": 2}
    args = ["train", "--model", "vrdone", "--data", str(world_dir)] + [a for k, v in small.items()
                                                                       for a in ("--set", f"{k}={v}")]
    # 15 training pairs (odd): an epoch is 15 // 4 = 3 steps. With 2 processes DistributedSampler
    # (drop_last) drops 1 pair of the shuffled 15 to give each 7, the trainer uses 3 x 2 of them; the
    # union of the two local batches of step k is the 1-process batch k (pairs 4k..4k+3 of the order)
    assert len(build_task({"world": {"num_videos": 6, "frames": [60, 100]}}, str(world_dir)).train_set) == 15
    assert main(args + ["--out", str(tmp_path / "one")]) == 0
    run = engine_toy.torchrun_pyvrel(args + ["--out", str(tmp_path / "two")], cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    one, two = (load_checkpoint(tmp_path / d / "checkpoints" / "last.pt") for d in ("one", "two"))
    assert two["world_size"] == 2 and two["step"] == one["step"] == 6
    for key in ("model", "ema"):
        a, b = (c[key] if key == "model" else c[key]["module"] for c in (one, two))
        assert a.keys() == b.keys() and all(v.dtype == torch.float64 for v in a.values() if v.is_floating_point())
        for name, value in a.items():
            torch.testing.assert_close(b[name], value, rtol=0, atol=1e-12, msg=f"{key} {name}")
    rec1, rec2 = ([json.loads(ln) for ln in (tmp_path / d / "metrics.jsonl").read_text().splitlines()]
                  for d in ("one", "two"))
    assert [r["type"] for r in rec2] == [r["type"] for r in rec1] == ["train"] * 6 + ["eval"]
    for r1, r2 in zip(rec1, rec2):
        numbers = [k for k in r1 if k not in ("time", "samples_per_s") and isinstance(r1[k], float)]
        assert [r2[k] for k in numbers] == pytest.approx([r1[k] for k in numbers], rel=1e-9, abs=1e-12)
