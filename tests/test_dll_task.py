"""DLL through the engine: pyvrel train --model dll, load for detection, the demo (tiny worlds)."""

import json

import pytest

from pyvrel.engine import ConfigError, load_checkpoint
from pyvrel.engine.registry import load_detector
from pyvrel.engine.run import prepare_run

TINY = {"num_videos": 8, "frames": [60, 90], "entities": [3, 4], "predicate_tail": 2.0}
TRAIN = {"epochs": 1, "eval_every": 0, "checkpoint_every": 0, "progress": False, "device": "cpu"}


def test_train_load_detect_dll(tmp_path):
    run = prepare_run("dll", "synthetic", {"model": {"variant": "dll", "world": TINY, "sample_seed": 0},
                                           "train": TRAIN}, tmp_path)
    section = run.meta["model_config"]
    assert section["variant"] == "dll" and len(section["frequencies"]) == 132 and section["epoch_steps"] >= 1
    summary = run.fit()
    detector = load_detector(load_checkpoint(summary["checkpoint"]))
    head = detector.model.predicate_head
    assert type(head).__name__ == "DLLHead" and not head.training and head.cfg.variant == "dll"
    from pyvrel.data.dataset import open_dataset

    preds = detector.detect(open_dataset("synthetic", section["world"]), "test")
    assert preds and all(r.triplet[1] in detector.vocabulary.predicates for rs in preds.values() for r in rs)


def test_bad_dll_settings_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match="model.variant: expected one of base, pdl, kdl, dll"):
        prepare_run("dll", "synthetic", {"model": {"variant": "both", "world": TINY}, "train": TRAIN}, tmp_path)
    table = tmp_path / "relation.txt"
    table.write_text("left - left\n")
    with pytest.raises(ConfigError, match=r"model.patterns: .*relation.txt: no patterns for 131 predicate"):
        prepare_run("dll", "synthetic", {"model": {"patterns": str(table), "world": TINY}, "train": TRAIN}, tmp_path)


@pytest.mark.filterwarnings("ignore:evaluate_relations")  # one epoch on 8 videos may detect nothing
def test_demo_quick_compares_base_and_dll(tmp_path, capsys):
    from pyvrel.demo import run_demo

    report = run_demo(tmp_path, quick=True, model="dll")
    assert set(report["results"]) == {"VidVRD-II", "+DLL"}
    assert "mR@50" in report["table"] and "Mean" in report["table"]
    assert (tmp_path / "recall.svg").read_text().startswith("<svg")
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert set(saved["results"]["+DLL"]["per_predicate"]) == set(saved["results"]["VidVRD-II"]["per_predicate"])
    assert "per-predicate recall" in capsys.readouterr().out


def test_synthetic_preset_reverses_gradients_gently():
    from pyvrel.models.dll.task import split_config

    assert split_config({})[0].grl == 0.01 and split_config({"grl": 0.5})[0].grl == 0.5
    assert split_config({"preset": "vidvrd"})[0].grl == 1.0  # the VidVRD-II code's value
