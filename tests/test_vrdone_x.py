"""VrdONE-X end to end: the extra per-entity stream ``tracklet_clip`` written by the synthetic world,
read from dataset folders (required exactly when ``clip_dim > 0``), fed to training and detection."""

import json
import shutil

import numpy as np
import pytest

from pyvrel.cli import main
from pyvrel.data import FeatureStore, FormatError, read_predictions
from pyvrel.data.folder import check_tracklets, split_annotations
from pyvrel.data.synthetic import SynthConfig, World, generate_video, write_world
from pyvrel.data.synthetic.streams import ClipStream
from pyvrel.engine import load_checkpoint
from pyvrel.models.vrdone import VrdONEConfig, entity_features, pair_samples
from pyvrel.data.dataset import DEMO_WORLD

DC = 8
SMALL = ["--set", "model.embd_dim=16", "--set", "model.fpn_dim=8", "--set", "model.dec_dim=8", "--set",
         "model.dec_hidden=16", "--set", "train.epochs=1", "--set", "train.batch_size=4", "--set",
         "train.progress=false", "--set", f"model.clip_dim={DC}"]


@pytest.fixture(scope="module")
def clip_world(tmp_path_factory):
    """The ``world_dir`` world (6 videos, 60-100 frames) written with an 8-wide clip stream."""
    out = tmp_path_factory.mktemp("clip_world")
    write_world(out, SynthConfig(**{**DEMO_WORLD, "num_videos": 6, "frames": (60, 100), "entities": (2, 4),
                                    "clip_dim": DC}))
    return out


def test_synthetic_clip_stream_is_category_semantic_and_changes_nothing_else():
    plain, with_clip = SynthConfig(seed=5, num_videos=3), SynthConfig(seed=5, num_videos=3, clip_dim=DC)
    world = World(with_clip)
    cidx = world.vocab.object_index()
    text = ClipStream(world).text_vectors
    for i in range(3):
        a, b = generate_video(plain, i).features, generate_video(with_clip, i, world)
        assert set(b.features) - set(a) == {"tracklet_clip"}
        assert all(np.array_equal(a[k], b.features[k]) for k in a)
        clip, tid, length = b.features["tracklet_clip"], b.features["tracklet_tid"], b.features["tracklet_length"]
        assert clip.shape == b.features["tracklet_boxes"].shape[:2] + (DC,) and clip.dtype == np.float32
        cats = [o.category for o in b.annotation.objects]
        for k in range(len(tid)):
            L = int(length[k])
            assert not clip[k, L:].any()
            if tid[k] >= 0:  # the true category's text vector plus small noise, frame by frame
                err = np.linalg.norm(clip[k, :L] - text[cidx[cats[tid[k]]]], axis=1)
                assert err.max() < 0.4 and err.mean() < 0.2
    # no instance identity: two entities of one category share the vector; categories of one
    # locomotion class are closer than others on average (clear in 64 dimensions)
    t = ClipStream(World(SynthConfig(seed=5, clip_dim=64))).text_vectors
    assert t.shape == (35, 64) and np.allclose(np.linalg.norm(t, axis=1), 1, atol=1e-6)
    legged = [cidx[c] for c in ("dog", "fox", "lion", "tiger", "horse")]
    vehicles = [cidx[c] for c in ("car", "bus", "train", "bicycle", "motorcycle")]
    same = (t[legged] @ t[legged].T)[np.triu_indices(5, 1)].mean()
    assert same > (t[legged] @ t[vehicles].T).mean() + 0.2


def test_check_tracklets_clip_required_only_with_clip_dim():
    f = generate_video(SynthConfig(seed=2, num_videos=1, clip_dim=DC), 0).features
    N, T = f["tracklet_boxes"].shape[:2]
    assert "tracklet_clip" not in check_tracklets(f, 35, file="f.npz", video="v")  # ignored at clip_dim 0
    assert check_tracklets(f, 35, file="f.npz", video="v", clip_dim=DC)["tracklet_clip"].shape == (N, T, DC)
    without = {k: v for k, v in f.items() if k != "tracklet_clip"}
    with pytest.raises(FormatError, match=f"f.npz: video v: tracklet_clip: missing: the model's clip_dim={DC} needs "
                                          f"the extra per-entity stream, shape \\(N, T, {DC}\\)"):
        check_tracklets(without, 35, file="f.npz", video="v", clip_dim=DC)
    with pytest.raises(FormatError, match=f"tracklet_clip: expected shape \\({N}, {T}, 16\\), got \\({N}, {T}, {DC}\\) "
                                          "\\(16 = the model's clip_dim\\)"):
        check_tracklets(f, 35, file="f.npz", video="v", clip_dim=16)
    with pytest.raises(FormatError, match=f"tracklet_clip: expected shape \\({N}, {T}, {DC}\\), got \\({N}, 3, {DC}\\)"):
        check_tracklets({**f, "tracklet_clip": f["tracklet_clip"][:, :3]}, 35, file="f.npz", video="v", clip_dim=DC)


def test_pair_samples_carry_the_clip_stream():
    v = generate_video(SynthConfig(seed=3, num_videos=1, frames=(70, 90), entities=(3, 3), clip_dim=DC), 0)
    cfg = VrdONEConfig.synthetic(max_seq_len=32, feat_stride=1, num_classes=132, max_preds=99, clip_dim=DC)
    feats, clip = entity_features(v.features, v.annotation), entity_features(v.features, v.annotation, "tracklet_clip")
    assert clip.keys() == feats.keys() and all(c.shape == (v.annotation.frame_count, DC) for c in clip.values())
    index = {p: i + 1 for i, p in enumerate(World(SynthConfig()).vocab.predicates)}
    samples = pair_samples(v.annotation, feats, cfg, index, clip=clip)
    assert samples and all(x.shape[0] == cfg.in_channels for x, _ in samples)
    # channels [2D, 2D + 2Dc) are the subject's then the object's stream on the same (strided,
    # cropped) frames: with the first Dc appearance values as the stream, they repeat them
    cfg = VrdONEConfig.synthetic(max_seq_len=32, feat_stride=2, num_classes=132, max_preds=99, clip_dim=DC)
    D = cfg.visual_dim
    echo = pair_samples(v.annotation, feats, cfg, index, np.random.default_rng(1),
                        clip={t: f[:, :DC] for t, f in feats.items()})
    assert echo
    for x, _ in echo:
        assert np.array_equal(x[2 * D: 2 * D + DC], x[:DC]) and np.array_equal(x[2 * D + DC: 2 * D + 2 * DC], x[D: D + DC])
    with pytest.raises(ValueError, match="pair_samples: clip features are missing but cfg.clip_dim=8"):
        pair_samples(v.annotation, feats, cfg, index)


def test_train_detect_eval_vrdone_x(clip_world, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--model", "vrdone", "--data", str(clip_world), "--out", str(run), *SMALL]) == 0
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt")
    assert ckpt["meta"]["model_config"]["clip_dim"] == DC and ckpt["step"] > 0
    assert ckpt["model"]["vrdone.backbone.clip_embd.convs.0.conv.weight"].shape[1] == DC
    train = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["loss"]) and r["loss"] > 0 for r in train if r["type"] == "train")
    pred = tmp_path / "pred.json"
    assert main(["detect", "--checkpoint", str(run / "checkpoints" / "last.pt"), "--data", str(clip_world),
                 "--out", str(pred)]) == 0
    results = read_predictions(pred).results
    assert set(results) == set(split_annotations(clip_world, "test")) and any(results.values())
    capsys.readouterr()
    assert main(["eval", str(clip_world / "annotations" / "test"), str(pred), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert 0 <= scores["RelDet"]["mAP"] <= 1 and 0 <= scores["RelTag"]["P@1"] <= 1


def test_vrdone_x_on_data_without_the_stream_names_file_and_key(world_dir, clip_world, tmp_path, capsys):
    args = ["train", "--model", "vrdone", "--out", str(tmp_path / "run"), *SMALL]
    vid = sorted(split_annotations(world_dir, "train"))[0]
    assert main(args[:3] + ["--data", str(world_dir)] + args[3:]) == 1
    path = FeatureStore(world_dir / "features").path(vid)
    assert f"{path}: video {vid}: tracklet_clip: missing: the model's clip_dim={DC} needs" in capsys.readouterr().err
    assert main(args[:3] + ["--data", str(clip_world)] + args[3:] + ["--set", "model.clip_dim=16"]) == 1
    err = capsys.readouterr().err
    assert "tracklet_clip: expected shape (" in err and f", 16), got (" in err and "(16 = the model's clip_dim)" in err
    # a plain VrdONE ignores the stream
    data = tmp_path / "data"
    shutil.copytree(clip_world, data)
    assert main(["train", "--model", "vrdone", "--data", str(data), "--out", str(tmp_path / "plain"),
                 *SMALL[:-2], "--set", "model.eval_split=null"]) == 0
    assert "clip_embd" not in " ".join(load_checkpoint(tmp_path / "plain" / "checkpoints" / "last.pt")["model"])


def test_vrdone_x_on_the_builtin_synthetic_world(tmp_path):
    """``--data synthetic --set model.clip_dim=N``: the world writes the stream of that width by default."""
    run = tmp_path / "run"
    tiny = ["--set", "model.world.num_videos=4", "--set", "model.world.frames=[60,80]", "--set",
            "model.eval_split=null"]
    assert main(["train", "--model", "vrdone", "--data", "synthetic", "--out", str(run), *SMALL, *tiny]) == 0
    meta = load_checkpoint(run / "checkpoints" / "last.pt")["meta"]
    assert meta["model_config"]["world"]["clip_dim"] == DC
    pred = tmp_path / "pred.json"
    assert main(["detect", "--checkpoint", str(run / "checkpoints" / "last.pt"), "--data", "synthetic",
                 "--out", str(pred)]) == 0
    assert read_predictions(pred).results


def test_synth_command_writes_the_stream_on_request(tmp_path, capsys):
    for clip_dim in (0, 4):
        out = tmp_path / f"w{clip_dim}"
        assert main(["synth", str(out), "--videos", "2", "--seed", "1", "--clip-dim", str(clip_dim), "--json"]) == 0
        meta = json.loads((out / "world.json").read_text())
        assert meta["config"].get("clip_dim", 0) == clip_dim and ("clip_dim" in meta["config"]) == (clip_dim > 0)
        for vid in FeatureStore(out / "features"):
            f = FeatureStore(out / "features")[vid]
            assert ("tracklet_clip" in f.files) == (clip_dim > 0)
            if clip_dim:
                assert f["tracklet_clip"].shape == f["tracklet_boxes"].shape[:2] + (clip_dim,)
    capsys.readouterr()
