"""`pyvrel eval` a user can trust: warnings and --strict, hints, strict JSON, duplicate video ids,
the columnar readers equal to the record readers, and no torch on the evaluation path."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from pyvrel import data
from pyvrel.cli import main
from pyvrel.data import table as table_module
from pyvrel.data.synthetic import SynthConfig, generate_video
from pyvrel.eval import evaluate_relations


def _world(tmp_path, n=4, seed=3):
    """Ground truth of ``n`` synthetic videos (a folder) and perfect predictions for them (records)."""
    annos = [generate_video(SynthConfig(seed=seed, features=False), i).annotation for i in range(n)]
    data.write_annotations(annos, tmp_path / "gt")
    preds = {a.video_id: [data.Relation(r.triplet, r.duration, r.sub_traj, r.obj_traj, 1.0 - 0.01 * k)
                          for k, r in enumerate(a.relation_view())] for a in annos}
    return tmp_path / "gt", preds, annos


def _eval_json(capsys, *args):
    code = main(["eval", *map(str, args), "--json"])
    out = capsys.readouterr()
    return code, (json.loads(out.out) if out.out else None), out.err


def _tables_equal(a: data.RelationTable, b: data.RelationTable) -> None:
    assert a.videos == b.videos and a.triplets == b.triplets and a.version == b.version
    for name in ("offsets", "triplet_id", "duration"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert (a.score is None) == (b.score is None) and (a.score is None or np.array_equal(a.score, b.score))
    ra, rb = a.relations(), b.relations()
    for vid in ra:
        for x, y in zip(ra[vid], rb[vid], strict=True):
            assert np.array_equal(x.sub_traj, y.sub_traj) and np.array_equal(x.obj_traj, y.obj_traj)


# ---- warnings, --strict, hints ---------------------------------------------------------------------


def test_eval_warns_about_unknown_videos_and_strict_fails(tmp_path, capsys):
    gt, preds, _ = _world(tmp_path)
    data.write_predictions(preds, tmp_path / "ok.json")
    code, res, err = _eval_json(capsys, gt, tmp_path / "ok.json")
    assert code == 0 and res["warnings"] == [] and "warning" not in err and res["RelDet"]["mAP"] == 1.0
    other = {f"elsewhere_{i}": rels for i, rels in enumerate(preds.values())}  # another world's ids
    data.write_predictions(other, tmp_path / "wrong.json")
    code, res, err = _eval_json(capsys, gt, tmp_path / "wrong.json")
    assert code == 0 and res["RelDet"]["mAP"] == 0.0
    assert len(res["warnings"]) == 3 and "4 of the 4 predicted videos are not in the ground truth" in err
    assert "only 0 of the 3 ground-truth videos with relations have predictions" in err  # one video has none
    assert "no prediction for any ground-truth video" in res["warnings"][2]
    assert main(["eval", str(gt), str(tmp_path / "wrong.json"), "--strict"]) == 1
    err = capsys.readouterr().err
    assert "error: 4 of the 4 predicted videos" in err and "(--strict)" in err


def test_eval_warns_when_fewer_than_half_of_the_videos_have_predictions(tmp_path, capsys):
    gt, preds, _ = _world(tmp_path)
    with_relations = [(vid, rels) for vid, rels in preds.items() if rels]  # 3 of the 4 videos
    data.write_predictions(dict(with_relations[:1]), tmp_path / "p.json")
    code, res, err = _eval_json(capsys, gt, tmp_path / "p.json")
    assert code == 0 and len(res["warnings"]) == 1 and "only 1 of the 3 ground-truth videos" in err
    data.write_predictions(dict(with_relations[:2]), tmp_path / "half.json")  # at least half: no warning
    assert _eval_json(capsys, gt, tmp_path / "half.json")[1]["warnings"] == []


def test_eval_warns_about_coordinates_outside_the_versions_range(tmp_path, capsys):
    gt, preds, _ = _world(tmp_path, n=2)
    data.write_predictions(preds, tmp_path / "pixels_as_v21.json", version="VERSION 2.1")
    code, res, err = _eval_json(capsys, gt, tmp_path / "pixels_as_v21.json")
    assert code == 0 and "declares coordinates in [0, 1]" in err and len(res["warnings"]) == 1
    tiny = {v: [data.Relation(r.triplet, r.duration, r.sub_traj / 2000, r.obj_traj / 2000, r.score) for r in rels]
            for v, rels in preds.items()}
    data.write_predictions(tiny, tmp_path / "normalised_as_v1.json")
    code, res, err = _eval_json(capsys, gt, tmp_path / "normalised_as_v1.json")
    assert code == 0 and "every coordinate lies in [0, 1]" in err
    last = list(tiny)[-1]  # the same but one pixel box at the end of the file: no warning
    tiny[last][-1].obj_traj = preds[last][-1].obj_traj
    data.write_predictions(tiny, tmp_path / "pixels_at_the_end.json")
    assert _eval_json(capsys, gt, tmp_path / "pixels_at_the_end.json")[1]["warnings"] == []


def test_eval_missing_files_read_the_same_and_swapped_arguments_get_a_hint(tmp_path, capsys):
    gt, preds, _ = _world(tmp_path, n=1)
    data.write_predictions(preds, tmp_path / "p.json")
    for args, name in (([gt, tmp_path / "none.json"], "PRED"), ([tmp_path / "none", tmp_path / "p.json"], "GT"),
                       ([gt, tmp_path / "p.json", "--train-gt", tmp_path / "none"], "--train-gt")):
        assert main(["eval", *map(str, args)]) == 1
        err = capsys.readouterr().err
        assert err.startswith("pyvrel eval: error: ") and f": no such file or folder ({name})" in err
    assert main(["eval", str(tmp_path / "p.json"), str(gt)]) == 1
    err = capsys.readouterr().err
    assert f"hint: GT comes first, then PRED: pyvrel eval {gt} {tmp_path / 'p.json'}" in err
    one = tmp_path / "gt" / next(p.name for p in gt.iterdir())
    assert main(["eval", str(tmp_path / "p.json"), str(one)]) == 1
    assert "hint: GT comes first" in capsys.readouterr().err


@pytest.mark.slow
def test_eval_accepts_synthetic_ground_truth(tmp_path, capsys):
    from pyvrel.data.dataset import open_dataset

    test = list(open_dataset("synthetic").annotations("test").values())
    preds = {a.video_id: [data.Relation(r.triplet, r.duration, r.sub_traj, r.obj_traj, 1.0) for r in a.relation_view()]
             for a in test}
    data.write_predictions(preds, tmp_path / "p.json")
    code, res, err = _eval_json(capsys, "synthetic", tmp_path / "p.json")
    assert code == 0 and res["warnings"] == [] and res["RelDet"]["mAP"] == 1.0 and res["videos"] > 0


# ---- prediction files: strict JSON, duplicate ids, the plain C++ path ----------------------------------


def _relation(box="[0, 0, 10, 10]", **extra):
    return ('{"triplet": ["a", "b", "c"], "score": 0.5, "duration": [0, 1], '
            f'"sub_traj": [{box}], "obj_traj": [[0, 0, 10, 10]]' + "".join(f', "{k}": {v}' for k, v in extra.items())
            + "}")


@pytest.mark.parametrize("number", ["007", "1.", "-", ".5", "+1", "1e", "0x1", "01.5", "-01"])
@pytest.mark.parametrize("form", ["plain", "general"])
def test_prediction_numbers_are_read_exactly_as_strictly_as_json(tmp_path, number, form):
    extra = {} if form == "plain" else {"note": '"x"'}  # an extra key: the general path (cut + JSON parser)
    text = '{"version": "VERSION 1.0", "results": {"v": [' + _relation(f"[{number}, 0, 10, 10]", **extra) + "]}}"
    (tmp_path / "p.json").write_text(text)
    with pytest.raises(ValueError):  # what JSON says
        json.loads(text)
    with pytest.raises(ValueError, match="not valid JSON"):
        data.read_prediction_table(tmp_path / "p.json")
    with pytest.raises(ValueError, match="not valid JSON"):
        data.read_predictions(tmp_path / "p.json")


@pytest.mark.parametrize("number,value", [("0", 0.0), ("-0.5", -0.5), ("1e2", 100.0), ("1.25E-1", 0.125),
                                          ("0.1", 0.1), ("123456789012345678", 123456789012345678.0)])
def test_valid_json_numbers_are_read_exactly(tmp_path, number, value):
    text = '{"results": {"v": [' + _relation(f"[{number}, 0, 10, 10]") + "]}}"
    (tmp_path / "p.json").write_text(text)
    assert data.read_prediction_table(tmp_path / "p.json").boxes[0, 0] == value == float(number)


@pytest.mark.parametrize("form", ["plain", "general", "bare"])
def test_a_video_id_given_twice_is_an_error(tmp_path, form):
    extra = {} if form != "general" else {"note": '"x"'}
    results = '{"v": [' + _relation(**extra) + '], "w": [], "v": []}'
    text = results if form == "bare" else '{"version": "VERSION 1.0", "results": ' + results + "}"
    (tmp_path / "p.json").write_text(text)
    parsed = json.loads(text)
    assert (parsed if form == "bare" else parsed["results"])["v"] == []  # JSON parsers keep the last "v" silently
    for read in (data.read_prediction_table, data.read_predictions):
        with pytest.raises(ValueError, match="'v'.*appears twice|v: appears twice"):
            read(tmp_path / "p.json")


def test_plain_prediction_path_equals_the_general_path(tmp_path, monkeypatch):
    gt, preds, _ = _world(tmp_path)
    for vid, rels in preds.items():  # track ids (integers and null) and integer coordinates are plain too
        for k, r in enumerate(rels):
            r.subject_tid, r.object_tid = (k, None) if k % 2 else (None, k)
            if k % 3 == 0:
                r.sub_traj = np.round(r.sub_traj).astype(np.int64)
    data.write_predictions(preds, tmp_path / "p.json", extra={"external_data": {"used": False, "details": [1.5, None]}})
    plain = data.read_prediction_table(tmp_path / "p.json")
    assert plain.version == "VERSION 1.0"
    monkeypatch.setattr(table_module, "_plain_prediction_table", lambda path: None)
    general = data.read_prediction_table(tmp_path / "p.json")
    _tables_equal(plain, general)
    records = data.RelationTable.from_relations(data.read_predictions(tmp_path / "p.json").results)
    assert evaluate_relations(data.load_groundtruth(gt), plain) == evaluate_relations(data.load_groundtruth(gt), records)


def test_plain_prediction_path_falls_back_for_other_files(tmp_path):
    """Anything the C++ pass does not take (a short trajectory, NaN, an escaped string) is read and
    reported by the general path as before."""
    short = '{"results": {"v": [' + _relation().replace('"duration": [0, 1]', '"duration": [0, 5]') + "]}}"
    (tmp_path / "short.json").write_text(short)
    with pytest.raises(data.FormatError, match="video v: relation"):
        data.read_prediction_table(tmp_path / "short.json")
    escaped = '{"results": {"v\\u00e9": [' + _relation() + "]}}"
    (tmp_path / "esc.json").write_text(escaped)
    assert data.read_prediction_table(tmp_path / "esc.json").videos == ["v\u00e9"]


# ---- ground truth: the columnar reader -------------------------------------------------------------------


def test_groundtruth_table_equals_the_record_loader(tmp_path):
    gt, _, annos = _world(tmp_path, n=5)
    records = data.RelationTable.from_relations(data.load_groundtruth(gt), scores=False)
    _tables_equal(data.read_groundtruth_table(gt), records)
    # a mapping file, and videos the C++ pass leaves to the record reader (an extra box key)
    annos[1].trajectories[3][0].extra["generated"] = 1
    data.write_annotations(annos, tmp_path / "map.json", layout="file")
    records = data.RelationTable.from_relations(data.load_groundtruth(tmp_path / "map.json"), scores=False)
    _tables_equal(data.read_groundtruth_table(tmp_path / "map.json"), records)
    # the relation view as a ground-truth file
    view = {a.video_id: [r.to_json() for r in a.relation_view()] for a in annos}
    (tmp_path / "view.json").write_text(json.dumps(view))
    records = data.RelationTable.from_relations(data.load_groundtruth(tmp_path / "view.json"), scores=False)
    _tables_equal(data.read_groundtruth_table(tmp_path / "view.json"), records)


@pytest.mark.parametrize("change", ["extra_box_key", "repeated_key", "escaped_category", "extra_top_level_keys"])
def test_groundtruth_table_mixes_the_cpp_pass_and_the_record_reader(tmp_path, change):
    """A video the C++ pass leaves to the record reader (or, for extra top-level keys, takes) between
    videos it takes: the record loader's table, triplets numbered in order of first appearance."""
    gt, _, annos = _world(tmp_path, n=5)
    obj = annos[2].to_json()
    if change == "extra_box_key":
        next(f for f in obj["trajectories"] if f)[0]["generated"] = 1
    elif change == "escaped_category":
        obj["subject/objects"][0]["category"] = "caf\u00e9"
    elif change == "extra_top_level_keys":
        obj.update(version="VERSION 1.0", tags=[{"a": [1.5, None, True]}], video_path="0/v.mp4")
    text = json.dumps(obj)
    if change == "repeated_key":  # a JSON parser keeps the last value
        text = text.replace('"fps": ', '"fps": "x", "fps": ', 1)
    (gt / f"{annos[2].video_id}.json").write_text(text)
    records = data.RelationTable.from_relations(data.load_groundtruth(gt), scores=False)
    _tables_equal(data.read_groundtruth_table(gt), records)


def test_groundtruth_table_normalises_by_each_videos_size(tmp_path):
    gt, _, annos = _world(tmp_path, n=2)
    norm, plain = data.read_groundtruth_table(gt, normalize=True), data.read_groundtruth_table(gt)
    for a, (vid, rels) in zip(annos, norm.relations().items()):
        scale = [a.width, a.height, a.width, a.height]
        for r, p in zip(rels, plain.relations()[vid]):
            assert np.array_equal(r.sub_traj, p.sub_traj / scale)


@pytest.mark.parametrize("breakage", ["two_boxes_in_a_frame", "unknown_tid", "missing_frame", "bad_number"])
def test_groundtruth_table_raises_the_record_loaders_errors(tmp_path, breakage):
    _, _, annos = _world(tmp_path, n=2)
    obj = annos[1].to_json()  # (video 0 has no relation)
    rel = obj["relation_instances"][0]
    frame = obj["trajectories"][rel["begin_fid"]]
    box = next(b for b in frame if b["tid"] == rel["subject_tid"])
    if breakage == "two_boxes_in_a_frame":
        frame.append(json.loads(json.dumps(box)))
    elif breakage == "unknown_tid":
        box["tid"] = 999
    elif breakage == "missing_frame":
        frame.remove(box)
    (tmp_path / "bad").mkdir()
    text = json.dumps(obj)
    if breakage == "bad_number":
        text = text.replace('"xmin": ', '"xmin": 0', 1)
    (tmp_path / "bad" / "v.json").write_text(text)
    with pytest.raises(ValueError) as old:
        data.load_groundtruth(tmp_path / "bad")
    with pytest.raises(ValueError) as new:
        data.read_groundtruth_table(tmp_path / "bad")
    assert str(new.value) == str(old.value)


def test_groundtruth_table_refuses_a_video_id_in_two_files(tmp_path):
    gt, _, annos = _world(tmp_path, n=1)
    data.write_annotations(annos, tmp_path / "gt" / "again")
    with pytest.raises(data.FormatError, match="duplicate video id"):
        data.read_groundtruth_table(gt)


# ---- no torch on the evaluation path -----------------------------------------------------------------------


def test_eval_command_does_not_import_torch(tmp_path):
    gt, preds, _ = _world(tmp_path, n=2)
    data.write_predictions(preds, tmp_path / "p.json")
    code = ("import sys\nfrom pyvrel.cli import main\n"
            f"assert main(['eval', {str(gt)!r}, {str(tmp_path / 'p.json')!r}, '--json']) == 0\n"
            "import pyvrel.eval.reference\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout)["RelDet"]["mAP"] == 1.0
