"""Official annotation/prediction formats: round-trips, views, vocabularies, feature stores, errors."""

import copy
import json
import lzma
from pathlib import Path

import numpy as np
import pytest
import torch

import pyvrel
import pyvrel.data as data
from pyvrel.data import FormatError


def _anno(vid="v1", extra=True):
    """A small VidVRD-style annotation: a dog (tid 0) chases a ball (tid 1) over frames [1, 4)."""
    box = lambda x, gen=None: {"tid": 0, "bbox": {"xmin": x, "ymin": 10, "xmax": x + 20, "ymax": 40}, **(
        {"generated": gen} if gen is not None else {})}
    ball = lambda x: {"tid": 1, "bbox": {"xmin": x, "ymin": 50.5, "xmax": x + 5, "ymax": 55.5}}
    out = {
        "video_id": vid, "frame_count": 6, "fps": 29.97, "width": 320, "height": 240,
        "subject/objects": [{"tid": 0, "category": "dog"}, {"tid": 1, "category": "ball"}],
        "trajectories": [[box(0)], [box(1, 0), ball(30)], [box(2, 1), ball(32)], [box(3), ball(34)], [ball(36)], []],
        "relation_instances": [{"subject_tid": 0, "object_tid": 1, "predicate": "chase", "begin_fid": 1, "end_fid": 4},
                               {"subject_tid": 1, "object_tid": 0, "predicate": "left", "begin_fid": 2, "end_fid": 4}],
    }
    if extra:  # VidOR-only keys and an unknown key must survive a round-trip
        out.update({"version": "VERSION 1.0", "video_path": "1025/" + vid + ".mp4", "video_hash": "abc"})
    return out


def test_annotation_roundtrip_is_lossless(tmp_path):
    obj = _anno()
    anno = data.VideoAnnotation.from_json(copy.deepcopy(obj))
    assert anno.to_json() == obj
    assert [o.category for o in anno.objects] == ["dog", "ball"]
    assert anno.trajectories[1][0].extra == {"generated": 0} and anno.extra["version"] == "VERSION 1.0"
    # per-video folder, VidOR nested folders, one mapping file
    annos = {v: data.VideoAnnotation.from_json(_anno(v)) for v in ("v1", "v2")}
    files = data.write_annotations(annos, tmp_path / "flat")
    assert sorted(p.name for p in files) == ["v1.json", "v2.json"]
    nested = data.write_annotations(annos, tmp_path / "nested", layout="nested")
    assert nested[0] == tmp_path / "nested" / "1025" / "v1.json"
    single = data.write_annotations(annos, tmp_path / "all.json", layout="file")[0]
    for path in (tmp_path / "flat", tmp_path / "nested", single, files[0]):
        back = data.read_annotations(path)
        assert set(back) <= {"v1", "v2"} and back
        for vid, a in back.items():
            assert a.to_json() == _anno(vid)
    assert json.loads(files[0].read_text()) == _anno("v1")


def test_relation_view_and_tubes():
    anno = data.VideoAnnotation.from_json(_anno())
    rels = anno.relation_view()
    assert [r.triplet for r in rels] == [("dog", "chase", "ball"), ("ball", "left", "dog")]
    r = rels[0]
    assert r.duration == (1, 4) and r.subject_tid == 0 and r.object_tid == 1 and r.score is None
    np.testing.assert_array_equal(r.sub_traj, [[1, 10, 21, 40], [2, 10, 22, 40], [3, 10, 23, 40]])
    np.testing.assert_array_equal(r.obj_traj[:, 1], [50.5] * 3)
    assert anno.triplets() == {("dog", "chase", "ball"), ("ball", "left", "dog")}
    tids, tubes = anno.object_tubes()
    assert tids == [0, 1] and tubes.start.tolist() == [0, 1] and tubes.length.tolist() == [4, 4]
    assert tubes.boxes.dtype == torch.float64 and tubes.boxes[1, 3].tolist() == [36, 50.5, 41, 55.5]
    # a gap inside an object's span is interpolated, or refused with fill_gaps=False
    obj = _anno()
    obj["trajectories"][2] = [b for b in obj["trajectories"][2] if b["tid"] != 1]
    obj["relation_instances"] = []
    gappy = data.VideoAnnotation.from_json(obj)
    _, tubes = gappy.object_tubes()
    assert tubes.boxes[1, 1].tolist() == [32, 50.5, 37, 55.5]
    with pytest.raises(FormatError, match="video v1: trajectories: .*gaps"):
        gappy.object_tubes(fill_gaps=False)
    packed = data.relations_to_tubes(rels, "obj")
    assert packed.start.tolist() == [1, 2] and packed.length.tolist() == [3, 2]
    assert packed.boxes[1, :2].tolist() == rels[1].obj_traj.tolist()


@pytest.mark.parametrize("mutate, field, message", [
    (lambda o: o.pop("frame_count"), "frame_count", "missing"),
    (lambda o: o["trajectories"][1].append({"tid": 7, "bbox": {"xmin": 0, "ymin": 0, "xmax": 1, "ymax": 1}}),
     r"trajectories\[1\]\[2\].tid", "unknown tid 7"),
    (lambda o: o["trajectories"][0][0]["bbox"].pop("ymax"), r"trajectories\[0\]\[0\].bbox", "xmin, ymin"),
    (lambda o: o["relation_instances"][0].update(object_tid=5), r"relation_instances\[0\].object_tid", "unknown tid 5"),
    (lambda o: o["relation_instances"][0].update(end_fid=9), r"relation_instances\[0\].end_fid",
     r"past frame_count=6"),
    (lambda o: o["relation_instances"][0].update(end_fid=5), r"relation_instances\[0\]",
     r"subject tid 0 has no box in frame 4"),
    (lambda o: o["relation_instances"][1].update(begin_fid=4), r"relation_instances\[1\]", "empty"),
    (lambda o: o.update(frame_count=3), "trajectories", "more than frame_count=3"),
    (lambda o: o["relation_instances"][0].pop("predicate"), r"relation_instances\[0\].predicate", "missing"),
])
def test_annotation_errors_name_file_video_field(tmp_path, mutate, field, message):
    obj = _anno("vid9")
    mutate(obj)
    path = tmp_path / "vid9.json"
    path.write_text(json.dumps(obj))
    with pytest.raises(FormatError, match=f"^{path}: video vid9: {field}: .*{message}") as info:
        data.read_annotations(path)
    assert info.value.file == str(path) and info.value.video == "vid9"


def test_trajectories_shorter_than_frame_count_are_accepted_until_a_relation_needs_them():
    obj = _anno()
    obj["frame_count"] = 10  # VidVRD-helper PR #3: some files have fewer trajectory frames
    assert len(data.VideoAnnotation.from_json(obj).trajectories) == 6
    obj["relation_instances"][0]["end_fid"] = 8
    with pytest.raises(FormatError, match="no box in frame 4 .*trajectories has 6 frames|no box in frame 4"):
        data.VideoAnnotation.from_json(obj)


def _pred(score=0.9, n=2, begin=3, triplet=("dog", "chase", "ball")):
    return {"triplet": list(triplet), "score": score, "duration": [begin, begin + n],
            "sub_traj": [[0, 0, 10, 10]] * n, "obj_traj": [[1.5, 2, 3, 4]] * n}


@pytest.mark.parametrize("name", ["pred.json", "pred.json.xz"])
def test_prediction_roundtrip(tmp_path, name):
    obj = {"version": "VERSION 1.0", "results": {"a": [_pred(), _pred(0.5, 3, 0)], "b": []},
           "external_data": {"used": False, "details": ""}}
    obj["results"]["a"][0]["sub_duration"] = [3, 5]  # VidVRD-II's non-official key survives
    path = tmp_path / name
    data.write_predictions(data.parse_predictions(copy.deepcopy(obj)), path)
    if name.endswith(".xz"):
        assert json.loads(lzma.open(path, "rt").read()) == obj
    back = data.read_predictions(path)
    assert back.to_json() == obj and back.version == "VERSION 1.0" and not back.bare
    r = back.results["a"][0]
    assert r.triplet == ("dog", "chase", "ball") and r.score == 0.9 and r.extra == {"sub_duration": [3, 5]}
    assert r.sub_traj.dtype == np.int64 and r.obj_traj.dtype == np.float64
    # a bare {vid: [...]} mapping round-trips as a bare mapping
    (tmp_path / "bare.json").write_text(json.dumps({"a": [_pred()]}))
    bare = data.read_predictions(tmp_path / "bare.json")
    assert bare.bare and bare.version is None and bare.to_json() == {"a": [_pred()]}
    # plain mappings of Relation are wrapped
    data.write_predictions({"a": bare.results["a"]}, tmp_path / "w.json", extra={"external_data": {"used": True}})
    assert json.loads((tmp_path / "w.json").read_text()) == {
        "version": "VERSION 1.0", "results": {"a": [_pred()]}, "external_data": {"used": True}}


@pytest.mark.parametrize("mutate, field, message", [
    (lambda p: p.pop("score"), "score", "missing"),
    (lambda p: p.update(score=float("nan")), "score", "NaN"),
    (lambda p: p.update(triplet=["a", "b"]), "triplet", "subject, predicate, object"),
    (lambda p: p.update(duration=[5, 5]), "duration", "begin < end"),
    (lambda p: p.update(sub_traj=[[0, 0, 1, 1]]), "sub_traj", "1 boxes for the 2 frames"),
    (lambda p: p.update(obj_traj=[[0, 0, 1]] * 2), "obj_traj", "shape"),
])
def test_prediction_errors(tmp_path, mutate, field, message):
    bad = _pred()
    mutate(bad)
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"version": "VERSION 1.0", "results": {"vx": [_pred(), bad]}}))
    for read in (data.read_predictions, data.read_prediction_table):
        with pytest.raises(FormatError, match=rf"^{path}: video vx: relation\[1\].{field}: .*{message}"):
            read(path)
    path.write_text("{not json")
    for read in (data.read_predictions, data.read_prediction_table):
        with pytest.raises(ValueError, match="not valid JSON"):
            read(path)
    path.write_text(json.dumps({"version": "VERSION 1.0", "results": {"vx": {"not": "a list"}}}))
    for read in (data.read_predictions, data.read_prediction_table):
        with pytest.raises(FormatError, match=rf"^{path}: video vx: must be a list of relations"):
            read(path)


def test_load_groundtruth_accepts_annotations_and_the_relation_view(tmp_path):
    annos = {v: data.VideoAnnotation.from_json(_anno(v)) for v in ("v1", "v2")}
    data.write_annotations(annos, tmp_path / "gt")
    from_folder = data.load_groundtruth(tmp_path / "gt")
    view = {vid: [r.to_json() for r in rels] for vid, rels in from_folder.items()}
    (tmp_path / "view.json").write_text(json.dumps(view))
    from_view = data.load_groundtruth(tmp_path / "view.json")
    for gt in (from_view, data.load_groundtruth(annos)):
        assert list(gt) == ["v1", "v2"]
        for vid in gt:
            for a, b in zip(gt[vid], from_folder[vid]):
                assert a.triplet == b.triplet and a.duration == b.duration and a.subject_tid == b.subject_tid
                np.testing.assert_array_equal(a.sub_traj, b.sub_traj)


def test_vocabulary_is_installed_package_data():
    vocab = data.load_vocabulary("vidvrd")
    assert len(vocab.objects) == 35 and len(vocab.predicates) == 132
    assert {"red_panda", "domestic_cat", "person", "zebra"} <= set(vocab.objects)
    assert {"next_to", "stand_next_to", "lie_with", "jump_with", "chase"} <= set(vocab.predicates)
    assert len(vocab.static_predicates) == 45 and "walk_away" not in vocab.static_predicates
    assert vocab.predicate_index()["above"] == 0
    # the files come from the installed package, not the source tree
    root = Path(data.__file__).parent
    assert "site-packages" in str(root) and (root / "vocab" / "vidvrd_objects.txt").is_file()
    assert Path(pyvrel.__file__).parent == root.parent
    vidor = data.load_vocabulary("vidor")
    assert len(vidor.objects) == 80 and len(vidor.predicates) == 50 and not vidor.static_predicates
    assert {"adult", "child", "baby", "ball/sports_ball", "screen/monitor"} <= set(vidor.objects)
    assert {"lean_on", "play(instrument)", "in_front_of", "towards", "hold_hand_of"} <= set(vidor.predicates)
    with pytest.raises(ValueError, match="unknown dataset 'vidvrd2'; shipped: vidvrd, vidor"):
        data.load_vocabulary("vidvrd2")


def test_feature_store(tmp_path):
    store = data.FeatureStore(tmp_path / "feats")
    store.write("v1", {"proposal_boxes": np.ones((2, 3, 4), np.float32), "proposal_frames": np.arange(2)})
    store.write("v2", {"proposal_frames": np.arange(3)}, compress=True)
    assert list(store) == ["v1", "v2"] and len(store) == 2 and "v1" in store and "v3" not in store
    got = store.load("v1", ["proposal_boxes"])
    assert got["proposal_boxes"].shape == (2, 3, 4)
    with pytest.raises(FormatError, match=r"v2.npz: video v2: proposal_boxes: missing"):
        store.load("v2", ["proposal_boxes"])
    with pytest.raises(KeyError, match="no feature file"):
        store["v3"]


def test_fast_trajectory_parsing_matches_the_json_parser(tmp_path):
    """read_predictions parses trajectories straight to arrays; values equal Python's float()."""
    rels = [{"triplet": ["a", "p", "b"], "score": 0.5, "duration": [0, 3],
             "sub_traj": [[0.1, 2e-3, 1e2, -4.5], [1, 2, 3, 4], [0.30000000000000004, 1.7976931348623157e308, 5, 6]],
             "obj_traj": [[1, 2, 3, 4]] * 3},
            {"triplet": ["a", "p", "b"], "score": 0.25, "duration": [1, 2],
             "sub_traj": [[float("nan"), 0, 1, 1]], "obj_traj": [[0, 0, 1, 1]]}]
    path = tmp_path / "pretty.json"
    path.write_text(json.dumps({"version": "VERSION 1.0", "results": {"v": rels}}, indent=2))  # newlines, spaces
    got = data.read_predictions(path).results["v"]
    want = json.loads(path.read_text())["results"]["v"]
    np.testing.assert_array_equal(got[0].sub_traj, np.array(want[0]["sub_traj"], dtype=np.float64))
    assert got[0].sub_traj[2, 0] == 0.30000000000000004 and got[0].obj_traj.dtype == np.int64
    assert np.isnan(got[1].sub_traj[0, 0])  # NaN is not for the fast path: parsed by json, kept
    assert [r.to_json() for r in got][0] == want[0]
    table = data.read_prediction_table(path)  # the same values in the columnar form
    for a, b in zip(got, table.relations()["v"], strict=True):
        np.testing.assert_array_equal(a.sub_traj, b.sub_traj)
        np.testing.assert_array_equal(a.obj_traj, b.obj_traj)


def test_fast_number_path_is_correctly_rounded(tmp_path):
    """The C++ pass parses short decimals by one exact division; every value must equal float(text)."""
    rng = np.random.default_rng(0)
    def decimal():  # up to 7 + 9 digits: the fast path and, past 15 digits, std::from_chars
        whole, frac = int(rng.integers(-10**6, 10**6)), int(rng.integers(1, 10))
        return f"{whole}.{int(rng.integers(0, 10**frac)):0{frac}d}"

    texts = [decimal() for _ in range(4000)]
    texts += ["-0", "-0.0", "0.1", "123456789012345", "1234567890123456", "0.000000000000001", "1.5e3", "1E-2",
              "9007199254740993", "0.30000000000000004", "-12.50"]
    texts += [f"{rng.random() * 10 ** int(rng.integers(-5, 6)):.{int(rng.integers(1, 17))}f}" for _ in range(4000)]
    texts = texts[: len(texts) // 4 * 4]
    boxes = ",".join("[" + ",".join(texts[i: i + 4]) + "]" for i in range(0, len(texts), 4))
    n = len(texts) // 4
    path = tmp_path / "numbers.json"
    path.write_text('{"v": [{"triplet": ["a", "p", "b"], "score": 1, "duration": [0, %d], "sub_traj": [%s], '
                    '"obj_traj": [%s]}]}' % (n, boxes, boxes))
    from pyvrel.data._json import load_cut

    assert load_cut(path)[1].count.tolist() == [n, n]  # both lists went through the C++ pass
    got = data.read_prediction_table(path).boxes[:n].ravel()
    want = np.array([float(t) for t in texts])
    assert np.array_equal(got, want) and np.array_equal(np.signbit(got), np.signbit(want))


def test_fast_trajectory_parsing_edge_cases(tmp_path):
    from pyvrel.data._json import load, load_with_trajectories

    text = ('{"version": "VERSION 1.0", "external_data": {"sub_traj": [[1, 2, 3, 4]]},'
            ' "results": {"v": [{"triplet": ["sub_traj", "p", "o"], "score": 1, "duration": [0, 1],'
            ' "sub_traj": [ [ -0 ,2,3, 4.5e1 ] ], "obj_traj": [], "note": "\\"obj_traj\\": [[9, 9, 9, 9]]"},'
            ' {"triplet": ["a", "p", "o"], "score": 1, "duration": [0, 1], "sub_traj": [[1, 2, 3]],'
            ' "obj_traj": [[1, 2, 3, 4], [5, 6, 7, Infinity]]}]}}')
    path = tmp_path / "edge.json"
    path.write_text(text)
    # a trajectory key outside the relations: the file is read plainly (lists everywhere)
    assert load_with_trajectories(path) == load(path)
    path.write_text(text.replace('"external_data": {"sub_traj": [[1, 2, 3, 4]]},', ""))
    got, want = load_with_trajectories(path), load(path)
    r0, r1 = got["results"]["v"]
    assert r0["sub_traj"].tolist() == [[0.0, 2.0, 3.0, 45.0]] and r0["sub_traj"].dtype == np.float64
    assert r0["obj_traj"].shape == (0, 4) and r0["note"] == want["results"]["v"][0]["note"]
    assert r1["sub_traj"] == [[1, 2, 3]] and r1["obj_traj"][1][3] == float("inf")  # left to the JSON parser
    assert r0["triplet"] == ["sub_traj", "p", "o"]


def test_fast_trajectory_parsing_falls_back_without_address_space(tmp_path, monkeypatch):
    from pyvrel.data import _json

    path = tmp_path / "pred.json"
    path.write_text(json.dumps({"v": [_pred()]}))
    assert _json.load_cut(path)[1] is not None

    def refuse(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(_json.np, "empty", refuse)  # the system refuses the C++ pass's buffers
    obj, cut = _json.load_cut(path)
    assert cut is None and obj == _json.load(path) == {"v": [_pred()]}
