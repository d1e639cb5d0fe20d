"""`pyvrel train`: model registry, config files and --set, errors naming file and key, exit codes."""

import json

import numpy as np
import pytest

from pyvrel.cli import main
from pyvrel.engine import MODELS, load_checkpoint

TOY = ["--model", "engine_toy:build_task", "--data", "synthetic"]


def registered(part: str | None = None) -> str:
    """The registered model names (with ``part``: those whose entry has it), as the errors list them."""
    from pyvrel.engine.registry import get_model

    return ", ".join(m for m in sorted(MODELS) if part is None or getattr(get_model(m), part) is not None)


def test_unknown_model_lists_the_available_ones(capsys, monkeypatch):
    assert main(["train", "--model", "nope", "--data", "synthetic"]) == 2
    assert f"unknown model 'nope'; available: {registered()} (or" in capsys.readouterr().err
    monkeypatch.setitem(MODELS, "toy", "engine_toy:build_task")
    assert main(["train", "--model", "nope", "--data", "synthetic"]) == 2
    assert f"available: {registered()} (or" in capsys.readouterr().err and "toy" in registered()
    assert main(["train", "--model", "no_such_module:build", "--data", "synthetic"]) == 2
    assert "cannot import 'no_such_module'" in capsys.readouterr().err


def test_train_runs_and_resumes(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(MODELS, "toy", "engine_toy:build_task")
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"model": {"hidden": 8}, "train": {"epochs": 1, "ema_decay": 0.9}}))
    out = tmp_path / "run"
    args = ["train", "--model", "toy", "--data", "synthetic", "--config", str(config), "--out", str(out)]
    assert main(args + ["--set", "train.lr=0.05"]) == 0
    assert "trained to epoch 1 (6 steps)" in capsys.readouterr().out
    saved = json.loads((out / "config.json").read_text())
    assert saved["model_config"]["hidden"] == 8 and saved["train"]["lr"] == 0.05 and saved["train"]["epochs"] == 1
    assert saved["train"]["weight_decay"] == 0.01  # the task's default, not TrainConfig's
    ckpt = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ckpt["meta"] == {"model": "toy", "model_config": saved["model_config"], "data": "synthetic"}
    # --resume auto continues the same run to 2 epochs
    assert main(args + ["--set", "train.lr=0.05", "--set", "train.epochs=2", "--resume", "auto"]) == 0
    assert load_checkpoint(out / "checkpoints" / "last.pt")["step"] == 12
    assert main(args + ["--set", "train.epochs=2", "--resume", "auto"]) == 0  # nothing left to do
    assert "trained to epoch 2 (12 steps); outputs in" in capsys.readouterr().out
    steps = [r["step"] for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines())
             if r["type"] == "train"]
    assert steps == list(range(1, 13))
    assert main(args + ["--overwrite"]) == 0  # a fresh run in the same folder starts a new metrics file
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 6 + 1  # 6 steps, 1 evaluation


@pytest.mark.parametrize(("config", "sets", "message"), [
    ({"train": {"lrr": 1}}, [], "{file}: train.lrr: unknown key (valid: "),
    ({"train": {"epochs": "3"}}, [], "{file}: train.epochs: expected int, got '3'"),
    ({"model": {"hiden": 8}}, [], "{file}: model.hiden: unknown key (valid: dropout, fail_at_step, hidden,"),
    ({"optim": {}}, [], "{file}: optim: unknown section (valid: model, train)"),
    ({}, ["train.precision=fp8"], "--set: train.precision: expected one of 'auto'"),
    ({}, ["lr=1e-3"], "--set lr=1e-3: expected SECTION.KEY=VALUE"),
    ({}, ["train.batch_size=0"], "--set: train.batch_size: must be > 0, got 0"),
])
def test_config_errors_name_the_file_and_key(tmp_path, capsys, config, sets, message):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(config))
    argv = ["train", *TOY, "--config", str(path), "--out", str(tmp_path / "out")]
    for item in sets:
        argv += ["--set", item]
    assert main(argv) == 2
    assert message.format(file=path) in capsys.readouterr().err


def test_bad_files_and_yaml(tmp_path, capsys):
    assert main(["train", "--model", "engine_toy:build_task", "--data", str(tmp_path / "nowhere")]) == 1
    assert f"{tmp_path / 'nowhere'}: data folder not found" in capsys.readouterr().err
    assert main(["train", *TOY, "--config", str(tmp_path / "missing.json")]) == 1
    assert "missing.json: config file not found" in capsys.readouterr().err
    broken = tmp_path / "broken.json"
    broken.write_text("{train: 1")
    assert main(["train", *TOY, "--config", str(broken)]) == 2
    assert f"{broken}: not valid JSON" in capsys.readouterr().err
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text("train:\n  epochs: 1\n  lrr: 2\n")
    assert main(["train", *TOY, "--config", str(yaml_file), "--out", str(tmp_path / "y")]) == 2
    try:
        import yaml  # noqa: F401
    except ImportError:
        assert f"{yaml_file}: YAML configs need PyYAML" in capsys.readouterr().err
    else:
        assert f"{yaml_file}: train.lrr: unknown key" in capsys.readouterr().err


def test_diverging_run_exits_1(tmp_path, capsys):
    argv = ["train", *TOY, "--set", "model.nan_at_step=2", "--out", str(tmp_path)]
    assert main(argv) == 1
    assert "non-finite gradient norm at step 1" in capsys.readouterr().err


def test_register_model_and_interrupt(tmp_path, capsys, monkeypatch):
    from pyvrel.engine import register_model

    def interrupted(model_config, data):
        raise KeyboardInterrupt

    monkeypatch.setattr("pyvrel.engine.registry.MODELS", dict(MODELS))
    register_model("stop", interrupted)
    assert main(["train", "--model", "stop", "--data", "synthetic", "--out", str(tmp_path)]) == 130
    assert "pyvrel train: interrupted" in capsys.readouterr().err
    with pytest.raises(ValueError, match="without ':'"):
        register_model("a:b", interrupted)


def test_detect_and_demo_use_the_registry_entry(tmp_path, capsys, monkeypatch):
    """`pyvrel detect` loads any registered model through its entry's loader; a model without a
    loader or demo settings gets an error naming the models that have one."""
    from pyvrel.data import Relation, read_predictions
    from pyvrel.engine import ModelEntry

    class Fixed:  # a detector that finds one relation in every video of the split
        vocabulary = None

        def __init__(self, checkpoint, ema):
            self.step, self.ema = checkpoint["step"], ema

        def detect(self, dataset, split="test", shard=(0, 1)):
            box = np.array([[0.0, 0.0, 9.0, 9.0]])
            return {vid: [Relation(("dog", "left", "cat"), (0, 1), box, box, 0.5)]
                    for vid in dataset.annotations(split)}

    monkeypatch.setitem(MODELS, "toy", "engine_toy:build_task")
    out = tmp_path / "run"
    assert main(["train", "--model", "toy", "--data", "synthetic", "--out", str(out), "--set", "train.epochs=1",
                 "--set", "train.progress=false"]) == 0
    ckpt, pred = str(out / "checkpoints" / "last.pt"), str(tmp_path / "pred.json")
    assert main(["detect", "--checkpoint", ckpt, "--data", "synthetic", "--out", pred]) == 1
    assert f"{ckpt}: model 'toy' has no registered 'load' (models with one: {registered('load')})" in capsys.readouterr().err
    assert main(["ground", "--checkpoint", ckpt, "--data", "synthetic", "--out", pred]) == 1
    assert f"{ckpt}: model 'toy' has no registered 'ground' (models with one: {registered('ground')})" in capsys.readouterr().err
    assert main(["demo", "toy", "--quick", "--out", str(tmp_path / "demo")]) == 2
    assert f"model 'toy' has no registered 'demo' (models with one: {registered('demo')})" in capsys.readouterr().err
    assert main(["demo", "nope", "--quick", "--out", str(tmp_path / "demo")]) == 2
    assert f"unknown model 'nope'; available: {registered()} (or" in capsys.readouterr().err
    monkeypatch.setitem(MODELS, "toy", ModelEntry("Toy", train="engine_toy:build_task", load=Fixed))
    assert main(["detect", "--checkpoint", ckpt, "--data", "synthetic", "--out", pred]) == 0
    results = read_predictions(pred).results
    assert len(results) == 30 and all(r[0].triplet == ("dog", "left", "cat") for r in results.values())
