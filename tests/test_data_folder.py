"""Dataset folders (pyvrel.data.folder): the real VidVRD/VidOR layout that `pyvrel train/detect --data
DIR` read, errors naming the file and key, and tracklet-to-object assignment when no tid is given."""

import json
import shutil
from copy import deepcopy

import numpy as np
import pytest

from pyvrel.cli import main
from pyvrel.data import FeatureStore, FormatError, load_vocabulary, read_predictions
from pyvrel.data.folder import check_tracklets, folder_vocabulary, has_split, split_annotations
from pyvrel.engine import load_checkpoint

SMALL = ["--set", "model.embd_dim=16", "--set", "model.fpn_dim=8", "--set", "model.dec_dim=8", "--set",
         "model.dec_hidden=16", "--set", "train.epochs=1", "--set", "train.batch_size=4", "--set",
         "train.progress=false"]


def vidor_like(world_dir, out):
    """``world_dir`` as a VidOR user has it: nested <group>/<video>.json under training/ and
    validation/, its own vocabulary files (VidVRD's names in reverse order, the score columns
    permuted to match) and no tracklet_tid."""
    vocab = load_vocabulary("vidvrd")
    out.mkdir()
    (out / "objects.txt").write_text("\n".join(reversed(vocab.objects)) + "\n")
    (out / "predicates.txt").write_text("\n".join(reversed(vocab.predicates)) + "\n")
    for split, name in (("train", "training"), ("test", "validation")):
        for f in (world_dir / "annotations" / split).glob("*.json"):
            (out / "annotations" / name / "0001").mkdir(parents=True, exist_ok=True)
            shutil.copy(f, out / "annotations" / name / "0001" / f.name)
    store, copy = FeatureStore(world_dir / "features"), FeatureStore(out / "features")
    for vid in store:
        arrays = {k: v for k, v in store[vid].items() if k != "tracklet_tid"}
        arrays["tracklet_scores"] = arrays["tracklet_scores"][:, ::-1]
        copy.write(vid, arrays)
    return out


def test_folder_layouts_and_vocabulary(world_dir, tmp_path):
    data = vidor_like(world_dir, tmp_path / "vidor")
    assert has_split(data, "train") and has_split(data, "test") and not has_split(tmp_path, "train")
    assert split_annotations(data, "test").keys() == split_annotations(world_dir, "test").keys()
    annos = list(split_annotations(data, "train").values())
    vocab = folder_vocabulary(data, annos)
    assert vocab.objects == tuple(reversed(load_vocabulary("vidvrd").objects))
    assert folder_vocabulary(world_dir, annos) == load_vocabulary("vidvrd")  # no files: VidVRD's covers them
    vidor_names = deepcopy(annos)  # no files, VidOR's names: VidOR's shipped vocabulary
    for a in vidor_names:
        for o in a.objects:
            o.category = "adult"
        for r in a.relations:
            r.predicate = "lean_on"
    assert folder_vocabulary(world_dir, vidor_names) == load_vocabulary("vidor")
    # custom categories: without files, the sorted names of the annotations
    annos[0].objects[0].category = "robot"
    derived = folder_vocabulary(world_dir, annos)
    assert "robot" in derived.objects and list(derived.objects) == sorted(derived.objects)
    assert set(derived.predicates) == {r.predicate for a in annos for r in a.relations}
    with pytest.raises(FormatError, match=r"not in .*objects.txt: 'robot'"):
        folder_vocabulary(data, annos)
    (data / "predicates.txt").unlink()
    with pytest.raises(FileNotFoundError, match="predicates.txt: not found"):
        folder_vocabulary(data, annos)
    with pytest.raises(FileNotFoundError, match=r"no train annotations \(expected annotations/train/"):
        split_annotations(tmp_path, "train")


def test_train_detect_eval_on_a_vidor_layout(world_dir, tmp_path, capsys):
    """Nested VidOR folders, own vocabulary, no tracklet_tid: train (with evaluation on validation/),
    detect and score with `pyvrel eval`."""
    data = vidor_like(world_dir, tmp_path / "vidor")
    run = tmp_path / "run"
    assert main(["train", "--model", "vrdone", "--data", str(data), "--out", str(run), *SMALL]) == 0
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt")
    objects = (data / "objects.txt").read_text().split("\n")[:-1]
    assert ckpt["meta"]["model_config"]["vocabulary"]["objects"] == objects
    records = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["type"] for r in records][-1] == "eval" and 0 <= records[-1]["RelDet_mAP"] <= 1
    pred = tmp_path / "pred.json"
    assert main(["detect", "--checkpoint", str(run / "checkpoints" / "best.pt"), "--data", str(data),
                 "--out", str(pred)]) == 0
    results = read_predictions(pred).results
    assert set(results) == set(split_annotations(data, "test"))
    assert {c for rels in results.values() for r in rels for c in (r.triplet[0], r.triplet[2])} <= set(objects)
    capsys.readouterr()
    assert main(["eval", str(data / "annotations" / "validation"), str(pred), "--json"]) == 0
    assert 0 <= json.loads(capsys.readouterr().out)["RelDet"]["mAP"] <= 1


def test_build_task_reads_the_training_annotations_once(world_dir, monkeypatch):
    """The folder vocabulary and the training samples come from one read of annotations/train."""
    from pyvrel.data import dataset
    from pyvrel.models.vrdone import task

    calls, read = [], dataset.split_annotations
    monkeypatch.setattr(dataset, "split_annotations", lambda root, split: calls.append(split) or read(root, split))
    built = task.build_task({"embd_dim": 16, "fpn_dim": 8, "dec_dim": 8, "dec_hidden": 16, "eval_split": None},
                            str(world_dir))
    assert calls == ["train"] and len(built.train_set) > 0


def test_assign_tracklets_recovers_the_synthetic_tids(world_dir):
    from pyvrel.models.vrdone import assign_tracklets

    store, assigned, total = FeatureStore(world_dir / "features"), 0, 0
    for vid, anno in split_annotations(world_dir, "train").items():
        arrays = dict(store[vid])
        got, tid = assign_tracklets(arrays, anno), arrays["tracklet_tid"]
        assert ((got == tid) | (got == -1)).all()  # never the wrong object; false tracks stay -1
        assigned, total = assigned + (got >= 0).sum(), total + (tid >= 0).sum()
    assert assigned >= total / 2  # jittered whole tracks get theirs (fragments may fall under vIoU 0.5)


def test_bad_feature_files_name_the_file_and_key(world_dir, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(world_dir, data)
    store = FeatureStore(data / "features")
    vid = sorted(split_annotations(data, "train"))[0]
    good = dict(store[vid])
    args = ["train", "--model", "vrdone", "--data", str(data), "--out", str(tmp_path / "run"), *SMALL]
    cases = [({k: v for k, v in good.items() if k != "tracklet_features"}, "tracklet_features: missing (has "),
             ({**good, "tracklet_scores": good["tracklet_scores"][:, :10]},
              "tracklet_scores: expected shape ({n}, 35), got ({n}, 10) (35 = the vocabulary's object categories)"),
             ({**good, "tracklet_start": good["tracklet_start"].astype(np.float32)},
              "tracklet_start: expected integers, got float32"),
             ({**good, "tracklet_length": good["tracklet_length"] + 1000}, "tracklet_length: every tracklet needs")]
    for arrays, message in cases:
        store.write(vid, arrays)
        assert main(args) == 1
        n = len(good["tracklet_start"])
        assert f"{store.path(vid)}: video {vid}: {message.format(n=n)}" in capsys.readouterr().err
    store.write(vid, good)
    assert main(args + ["--set", "model.visual_dim=16"]) == 2
    assert ("model.visual_dim: " f"{data}: tracklet_features have 32 values per frame; the config has visual_dim=16 "
            "(set model.visual_dim=32)") in capsys.readouterr().err
    store.path(vid).write_bytes(b"not a zip")
    assert main(args) == 1
    assert f"{store.path(vid)}: not a readable .npz file" in capsys.readouterr().err
    store.path(vid).unlink()
    assert main(args) == 1
    assert f"{store.path(vid)}: feature file of video {vid!r} not found" in capsys.readouterr().err
    with pytest.raises(FormatError, match="tracklet_boxes: expected shape \\(N, T, 4\\)"):
        check_tracklets({**good, "tracklet_boxes": good["tracklet_boxes"][..., :2]}, 35, file="f", video="v")
