"""The synthetic world: determinism, its rules checked independently on the written geometry,
splits, long tail, detector-like outputs, and the `pyvrel synth` / `pyvrel eval` commands."""

import collections
import json

import numpy as np
import pytest
import torch

import pyvrel.data as data
from pyvrel.cli import main
from pyvrel.data.synthetic import CATEGORIES, SynthConfig, World, generate, generate_video
from pyvrel.ops import Tubes, temporal_iou, tube_iou

CFG = SynthConfig(seed=7, num_videos=12, features=False)


def test_generation_is_deterministic():
    a = generate_video(SynthConfig(seed=3), 5)
    b = generate_video(SynthConfig(seed=3), 5)
    assert a.annotation.to_json() == b.annotation.to_json()
    assert a.features.keys() == b.features.keys()
    for k in a.features:
        np.testing.assert_array_equal(a.features[k], b.features[k])
    c = generate_video(SynthConfig(seed=4), 5)
    assert c.annotation.to_json() != a.annotation.to_json()
    # video i does not depend on how many videos are generated
    assert generate_video(SynthConfig(seed=3, num_videos=1000), 5).annotation.to_json()["relation_instances"] == \
        a.annotation.to_json()["relation_instances"]


def _geometry(track):
    """Independent per-frame geometry: {frame: (x1, y1, x2, y2, cx, cy, vx, vy)} with the
    documented central-difference velocity over up to 4 frames each side, within the track."""
    frames = sorted(track)
    first, last = frames[0], frames[-1]
    assert frames == list(range(first, last + 1)), "entities live on contiguous spans"
    out = {}
    for f in frames:
        lo, hi = max(first, f - 4), min(last, f + 4)
        c = lambda g: ((track[g][0] + track[g][2]) / 2, (track[g][1] + track[g][3]) / 2)  # noqa: E731
        dt = max(hi - lo, 1)
        vx, vy = (c(hi)[0] - c(lo)[0]) / dt, (c(hi)[1] - c(lo)[1]) / dt
        out[f] = (*track[f], *c(f), vx, vy)
    return out


def _cos(ax, ay, bx, by):
    n = (ax * ax + ay * ay) ** 0.5 * (bx * bx + by * by) ** 0.5
    return (ax * bx + ay * by) / n if n > 0 else 0.0


def _holds(pred, s, o, cat_s, cat_o):
    """Independent checks of the documented rules for one frame (a subset of each rule: the
    geometric part; e.g. 'walk_left' checks 'left' and that the subject moves)."""
    x1, y1, x2, y2, cx, cy, vx, vy = s
    X1, Y1, X2, Y2, CX, CY, VX, VY = o
    speed = (vx * vx + vy * vy) ** 0.5
    moving = speed >= 0.5
    dist = ((CX - cx) ** 2 + (CY - cy) ** 2) ** 0.5
    mean_w = ((x2 - x1) + (X2 - X1)) / 2
    base = pred.split("_")[-1] if pred not in ("next_to",) and not pred.endswith("next_to") else "next_to"
    action = pred[: -len(base) - 1] if pred != base else None
    ok = {
        "left": x2 <= CX, "right": x1 >= CX, "above": y2 <= CY, "beneath": y1 >= CY,
        "front": y2 > Y2, "behind": y2 < Y2, "next_to": min(x2, X2) - max(x1, X1) <= 0 or min(y2, Y2) - max(y1, Y1) <= 0,
        "inside": x1 >= X1 and y1 >= Y1 and x2 <= X2 and y2 <= Y2,
        "toward": moving and _cos(vx, vy, CX - cx, CY - cy) >= 0.8 - 1e-12,
        "away": moving and _cos(vx, vy, CX - cx, CY - cy) <= -0.8 + 1e-12,
        "past": moving and dist <= 3 * mean_w + 1e-9,
        "taller": (y2 - y1) >= 1.3 * (Y2 - Y1) - 1e-9,
        "larger": (x2 - x1) * (y2 - y1) >= 2 * (X2 - X1) * (Y2 - Y1) - 1e-9,
        "faster": moving and speed >= 1.5 * (VX * VX + VY * VY) ** 0.5 + 0.5 - 1e-9,
        "follow": moving and _cos(vx, vy, VX, VY) >= 0.8 - 1e-12,
        "chase": moving and _cos(vx, vy, VX, VY) >= 0.8 - 1e-12,
        "with": dist <= 2 * mean_w + 1e-9,
        "ride": cat_s == "person" and CATEGORIES[cat_o].rideable and y2 <= Y2 and cy < CY,
    }[base]
    if action in ("walk", "run", "jump", "fly", "swim", "creep", "move"):
        ok = ok and moving
    if action in ("stand", "sit", "lie", "stop"):
        ok = ok and not moving
    if action in ("fly", "swim", "creep"):
        ok = ok and CATEGORIES[cat_s].locomotion == action
    if action in ("sit", "lie"):
        ok = ok and action in CATEGORIES[cat_s].postures
    return ok


def test_generated_relations_hold_in_the_written_geometry():
    vocab = set(data.load_vocabulary().predicates)
    checked = collections.Counter()
    for video in generate(CFG):
        # the written JSON is valid official format (spans inside both objects' boxes, known tids)
        anno = data.VideoAnnotation.from_json(json.loads(json.dumps(video.annotation.to_json())))
        cats = anno.category_of()
        geo = {tid: _geometry(track) for tid, track in anno.boxes_by_tid().items()}
        assert 2 <= len(cats) <= 6 and 60 <= anno.frame_count <= 300
        seen = set()
        for r in anno.relations:
            assert r.predicate in vocab and r.end_fid - r.begin_fid >= CFG.min_run and r.subject_tid != r.object_tid
            key = (r.subject_tid, r.object_tid, r.predicate)
            for f in range(r.begin_fid, r.end_fid):
                assert _holds(r.predicate, geo[r.subject_tid][f], geo[r.object_tid][f], cats[r.subject_tid],
                              cats[r.object_tid]), (anno.video_id, r, f)
            # maximal: instances of one (pair, predicate) never touch or overlap
            seen.add((key, r.begin_fid, r.end_fid))
            checked[r.predicate] += 1
        by_key = collections.defaultdict(list)
        for key, b, e in seen:
            by_key[key].append((b, e))
        for spans in by_key.values():
            spans.sort()
            assert all(e0 < b1 for (_, e0), (b1, _) in zip(spans, spans[1:]))
    assert len(checked) >= 30 and sum(checked.values()) >= 200  # the checks saw a varied world


def test_runs_are_maximal():
    """A bare spatial relation's run cannot be extended: the rule fails (or an entity is absent)
    in the frame before and after (checked with the geometric part of the rule)."""
    for video in generate(CFG):
        anno = video.annotation
        geo = {tid: _geometry(track) for tid, track in anno.boxes_by_tid().items()}
        for r in anno.relations:
            if r.predicate != "taller":
                continue
            s, o = geo[r.subject_tid], geo[r.object_tid]
            for f in (r.begin_fid - 1, r.end_fid):
                if f in s and f in o:
                    x1, y1, x2, y2, cx, cy = s[f][:6]
                    X1, Y1, X2, Y2, CX, CY = o[f][:6]
                    near = ((CX - cx) ** 2 + (CY - cy) ** 2) ** 0.5 <= (x2 - x1 + X2 - X1)
                    assert not ((y2 - y1) >= 1.3 * (Y2 - Y1) and near)


def test_splits_and_long_tail():
    world = World(SynthConfig())
    so, sp = world.split["objects"], world.split["predicates"]
    assert (len(so["base"]), len(so["novel"]), len(sp["base"]), len(sp["novel"])) == (25, 10, 71, 61)
    assert not set(so["base"]) & set(so["novel"]) and not set(sp["base"]) & set(sp["novel"])

    def top_share(tail):
        cats = collections.Counter(o.category for v in generate(SynthConfig(num_videos=40, tail=tail, features=False))
                                   for o in v.annotation.objects)
        return cats.most_common(1)[0][1] / sum(cats.values())

    assert top_share(2.0) > 2 * top_share(0.0)


def test_detector_like_outputs():
    video = generate_video(SynthConfig(seed=1, feature_dim=16, proposals=8), 2)
    f, anno = video.features, video.annotation
    n = len(f["tracklet_tid"])
    assert f["tracklet_boxes"].shape[0] == n and f["tracklet_features"].shape[::2] == (n, 16)
    assert f["tracklet_scores"].shape == (n, 35)
    np.testing.assert_allclose(f["tracklet_scores"].sum(1)[f["tracklet_tid"] >= 0], 1, rtol=1e-5)
    # every real tracklet lies inside its entity's span, with a high mean per-frame IoU
    tids, gt = anno.object_tubes()
    det = Tubes(torch.from_numpy(f["tracklet_boxes"]).double(), torch.from_numpy(f["tracklet_start"]),
                torch.from_numpy(f["tracklet_length"]))
    iou3dt = tube_iou(det, gt, 1, mode="iou3dt")
    tiou = temporal_iou(torch.stack([det.start, det.end], 1), torch.stack([gt.start, gt.end], 1)).double()
    real = np.flatnonzero(f["tracklet_tid"] >= 0)
    tid = torch.from_numpy(f["tracklet_tid"][real])
    assert (det.start[real] >= gt.start[tid]).all() and (det.end[real] <= gt.end[tid]).all()
    assert (iou3dt[real, tid] / tiou[real, tid] > 0.6).all()
    # appearance: a tracklet is closer to its own category's prototype than to the others'
    world = World(SynthConfig(seed=1, feature_dim=16))
    cidx = world.vocab.object_index()
    for i in real:
        mean = f["tracklet_features"][i, : f["tracklet_length"][i]].mean(0)
        cat = anno.objects[f["tracklet_tid"][i]].category
        assert int(np.argmax(world.prototypes @ mean)) == cidx[cat]
    assert (np.diff(f["det_frame"]) >= 0).all() and len(f["det_boxes"]) == len(f["det_scores"])
    # proposals: entity slots hold a box near the entity's box in that sampled frame
    boxes = anno.boxes_by_tid()
    for si, frame in enumerate(f["proposal_frames"].tolist()):
        for m in np.flatnonzero(f["proposal_tid"][si] >= 0):
            x1, y1, x2, y2 = boxes[int(f["proposal_tid"][si, m])][frame]
            p = f["proposal_boxes"][si, m]
            assert abs(p[0] - x1) + abs(p[2] - x2) < 0.5 * (x2 - x1) + 4
    assert f["proposal_boxes"].shape[1:] == (8, 4) and f["proposal_features"].shape[1:] == (8, 16)


def test_synth_and_eval_commands(tmp_path, capsys):
    out = tmp_path / "world"
    assert main(["synth", str(out), "--videos", "6", "--seed", "2", "--feature-dim", "8", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["videos"] == {"train": 5, "test": 1} and summary["relations"] > 0
    meta = json.loads((out / "world.json").read_text())
    assert meta["config"]["seed"] == 2 and len(meta["videos"]["train"]) == 5
    assert set(data.FeatureStore(out / "features")) == set(meta["videos"]["train"]) | set(meta["videos"]["test"])
    gt = data.load_groundtruth(out / "annotations" / "train")
    # ground truth scored as predictions is perfect
    perfect = {vid: [data.Relation(r.triplet, r.duration, r.sub_traj, r.obj_traj, 1.0 - 0.001 * i)
                     for i, r in enumerate(rels)] for vid, rels in gt.items()}
    data.write_predictions(perfect, tmp_path / "pred.json.xz")
    assert main(["eval", str(out / "annotations" / "train"), str(tmp_path / "pred.json.xz"), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["RelDet"]["mAP"] == 1.0 and res["RelDet"]["R@100"] > 0.5 and res["RelTag"]["P@1"] == 1.0
    # a mapping file of annotations works as GT too; the table mode prints the metrics
    data.write_annotations(data.read_annotations(out / "annotations" / "train"), tmp_path / "gt.json", layout="file")
    assert main(["eval", str(tmp_path / "gt.json"), str(tmp_path / "pred.json.xz"), "--variant", "vru",
                 "--train-gt", str(out / "annotations" / "test"), "--per-video", "--mean-recall"]) == 0
    table = capsys.readouterr().out
    assert "RelDet mAP" in table and "100.00%" in table and "zero shot" in table and "per video" in table


def test_synth_command_passes_the_label_options(tmp_path, capsys):
    """--predicate-tail, --pair-relations and --twins reach SynthConfig (recorded in world.json); a bad
    value is named by its option."""
    out = tmp_path / "world"
    args = ["synth", str(out), "--videos", "4", "--no-features"]
    assert main(args + ["--predicate-tail", "2", "--pair-relations", "1", "--twins", "1"]) == 0
    config = json.loads((out / "world.json").read_text())["config"]
    assert config["predicate_tail"] == 2.0 and config["pair_relations"] == 1 and config["twins"] == 1
    assert main(args + ["--pair-relations", "-1", "--overwrite"]) == 2
    assert "--pair-relations" in capsys.readouterr().err


def test_eval_command_normalises_ground_truth_for_vidvrd2_outputs(tmp_path, capsys):
    """VidVRD-II writes "VERSION 2.1" files with coordinates in [0, 1]: the ground truth is then
    divided by each video's width/height before scoring."""
    video = generate_video(SynthConfig(seed=4, features=False), 1)
    data.write_annotations([video.annotation], tmp_path / "gt")
    anno = video.annotation
    scale = np.array([anno.width, anno.height, anno.width, anno.height], dtype=np.float64)
    rels = [data.Relation(r.triplet, r.duration, r.sub_traj / scale, r.obj_traj / scale, 1.0)
            for r in anno.relation_view()]
    data.write_predictions({anno.video_id: rels}, tmp_path / "p.json", version="VERSION 2.1")
    assert main(["eval", str(tmp_path / "gt"), str(tmp_path / "p.json"), "--variant", "vidvrd2", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["RelDet"]["mAP"] == 1.0 and res["RelTag"]["P@1"] == 1.0


def test_eval_command_reports_bad_files(tmp_path, capsys):
    (tmp_path / "pred.json").write_text(json.dumps({"results": {"v": [{"triplet": ["a", "b", "c"]}]}}))
    assert main(["eval", str(tmp_path / "missing"), str(tmp_path / "pred.json")]) == 1
    assert "video v: relation[0].duration: missing" in capsys.readouterr().err
    (tmp_path / "pred.json").write_text(json.dumps({"results": {}}))
    assert main(["eval", str(tmp_path / "missing"), str(tmp_path / "pred.json")]) == 1
    assert "no such file or folder" in capsys.readouterr().err


def _world_digest(root) -> str:
    """sha256 over a written world: every file's relative path, JSON files byte for byte, and the
    key, dtype, shape and bytes of every array of each ``.npz`` (not the zip container's layout)."""
    import hashlib
    from pathlib import Path

    h = hashlib.sha256()
    for p in sorted(Path(root).rglob("*")):
        if not p.is_file():
            continue
        h.update(p.relative_to(root).as_posix().encode())
        if p.suffix == ".npz":
            with np.load(p) as z:
                for k in sorted(z.files):
                    a = z[k]
                    h.update(f"{k}{a.dtype.str}{a.shape}".encode())
                    h.update(np.ascontiguousarray(a).tobytes())
        else:
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize(("clip_dim", "digest"), [
    (0, "7750950a1f31171ffec53ff58a3ac01f152fc499d7df0819c3da7b4cef944242"),
    (8, "3ded06260f16d4324fd11bbd28a07a3398c129caf824db7280186deedd69c023"),
])
def test_written_worlds_stay_identical(tmp_path, clip_dim, digest):
    """A small world (with and without the clip stream) is exactly what pyvrel wrote when the
    synthetic world was one module (checksum taken then): new streams must not change old worlds."""
    from pyvrel.data.synthetic import write_world

    write_world(tmp_path, SynthConfig(seed=3, num_videos=6, frames=(40, 90), clip_dim=clip_dim))
    assert _world_digest(tmp_path) == digest


def test_grounding_worlds_without_twins_stay_identical(tmp_path):
    """A grounding world written without twins is what pyvrel wrote before the option (checksum taken
    then; world.json does not mention it)."""
    from pyvrel.data.synthetic import write_world

    write_world(tmp_path, SynthConfig(seed=3, num_videos=6, frames=(40, 90), grounding=True, proposals=8,
                                      sampled_frames=12, feature_dim=8, pair_relations=1))
    assert _world_digest(tmp_path) == "27ce36b1bf22340c295f68f8c7c756609e6e16de3c3a54a31a2aa5651bde20dd"
    assert "twins" not in json.loads((tmp_path / "world.json").read_text())["config"]
