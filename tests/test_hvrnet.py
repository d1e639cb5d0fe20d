"""HVR-Net (pyvrel.models.hvrnet) and its synthetic stream: the stream leaves every other array alone
and makes single frames of confusable categories ambiguous; box coding; the video-triplet sampler;
windowed inference with NMS; the metrics on perfect detections; training through `pyvrel train`;
malformed RoI arrays name file and key."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from pyvrel.cli import main
from pyvrel.data import FormatError, load_vocabulary
from pyvrel.data.dataset import open_dataset
from pyvrel.data.synthetic import SynthConfig, World, generate_video
from pyvrel.data.synthetic.streams.hvrnet import BURST, CONFUSABLE, CUE, HVRNetStream
from pyvrel.models.hvrnet import HVRNet, HVRNetConfig, decode_boxes, encode_boxes
from pyvrel.models.hvrnet.task import (FrameDetections, TripletSamples, confusable_labels, detect_video,
                                       evaluate_detections, label_video, load_videos)
from pyvrel.nn import mine_hard_videos, video_descriptor
from pyvrel.ops import box_iou

OBJECTS = list(load_vocabulary("vidvrd").objects)
TINY = {"num_videos": 8, "frames": [30, 40], "entities": [2, 3], "proposals": 8, "sampled_frames": 40,
        "hvrnet": True, "feature_dim": 16}


@pytest.fixture(scope="module")
def videos():
    cfg = dataclasses.replace(HVRNetConfig.synthetic(), feature_dim=16, dim=16, window=3, negatives=2)
    dataset = open_dataset("synthetic", TINY)
    return cfg, list(load_videos(dataset, "train", cfg, OBJECTS))


def test_stream_changes_no_other_array_and_confuses_single_frames():
    plain = SynthConfig(seed=1, num_videos=3, frames=(30, 40))
    with_stream = dataclasses.replace(plain, hvrnet=True)
    a, b = generate_video(plain, 1), generate_video(with_stream, 1)
    assert set(b.features) - set(a.features) == {"det_features", "roi_frames", "roi_boxes", "roi_features"}
    for key, value in a.features.items():
        np.testing.assert_array_equal(b.features[key], value, err_msg=key)
    assert b.features["det_features"].shape == (len(a.features["det_frame"]), plain.feature_dim)
    stream, index = HVRNetStream(World(with_stream)), World(with_stream).vocab.object_index()
    for first, second in CONFUSABLE:  # without their cues the two categories look the same
        np.testing.assert_array_equal(stream.shared[index[first]], stream.shared[index[second]])
        np.testing.assert_allclose(stream.cue[index[first]], -stream.cue[index[second]])
        assert np.linalg.norm(stream.cue[index[first]]) > 0.5
    assert not stream.cue[index["person"]].any()


def test_cue_bursts_leave_the_default_stream_alone_and_show_the_cue_in_one_run():
    import hashlib

    from pyvrel.engine.config import ConfigError

    def digest(config):
        h = hashlib.sha256()
        for i in range(3):
            for key, a in sorted(generate_video(config, i).features.items()):
                h.update(f"{key}{a.dtype.str}{a.shape}".encode() + np.ascontiguousarray(a).tobytes())
        return h.hexdigest()

    frames = SynthConfig(seed=2, num_videos=3, frames=(30, 40), hvrnet=True, proposals=8, feature_dim=16)
    # taken before hvrnet_cue existed: the default world is unchanged
    assert digest(frames) == "89f8ea4dc38cc143cca1497c73e68b1b495034ecdfcf198c733050a0fd96370e"
    with pytest.raises(ConfigError, match="hvrnet_cue"):
        dataclasses.replace(frames, hvrnet_cue="windows")
    runs, faint = [], []
    for mode in ("frames", "bursts"):
        config = SynthConfig(seed=4, num_videos=20, frames=(60, 80), entities=(4, 4), tail=0.0, hvrnet=True,
                             hvrnet_cue=mode)
        stream = HVRNetStream(World(config))
        index = World(config).vocab.object_index()
        confusable = {index[c] for pair in CONFUSABLE for c in pair}
        shown, offsets = [], []
        for i in range(config.num_videos):
            video = generate_video(config, i)
            anno, f = video.annotation, video.features
            category = anno.category_of()
            for tid in {t for t, c in category.items() if index[c] in confusable}:
                c = index[category[tid]]
                cue = []
                for s, frame in enumerate(f["roi_frames"].tolist()):
                    box = next((b.bbox for b in anno.trajectories[frame] if b.tid == tid), None)
                    if box is None:
                        continue
                    tight = box_iou(torch.tensor([box], dtype=torch.float32), torch.from_numpy(f["roi_boxes"][s])).argmax()
                    along = float((f["roi_features"][s, tight] - stream.shared[c]) @ stream.cue[c]) / CUE
                    cue.append((frame, along))
                on = [frame for frame, a in cue if a > 0.7 * CUE]
                offsets += [a for _, a in cue if a <= 0.7 * CUE]
                shown.append((len(on) / max(len(cue), 1), (max(on) - min(on)) / anno.frame_count if on else 0.0))
        runs.append(np.array(shown))
        faint.append(np.mean(offsets))
    frames_runs, burst_runs = runs
    assert len(burst_runs) >= 8
    assert burst_runs[:, 0].mean() < 0.2 < frames_runs[:, 0].mean()  # the cue is rarer in bursts
    assert (burst_runs[:, 1] <= BURST + 0.02).all() and frames_runs[:, 1].mean() > 0.5  # and in one run
    assert faint[1] > 0.05 > abs(faint[0])  # the faint category offset outside the run


def test_box_coding_round_trip(gen):
    p = torch.tensor([[10.0, 20.0, 50.0, 80.0], [0.0, 0.0, 5.0, 5.0]])
    t = torch.tensor([[12.0, 18.0, 60.0, 70.0], [1.0, 2.0, 4.0, 9.0]])
    torch.testing.assert_close(decode_boxes(p, encode_boxes(p, t)), t)
    assert encode_boxes(p, p).abs().max() == 0


def test_labels_and_the_triplet_sampler(videos):
    cfg, vids = videos
    for v in vids:  # foreground proposals overlap a ground-truth box of their label with IoU >= fg_iou
        for s, (g, gl) in enumerate(v.gt):
            fg = v.labels[s] > 0
            if fg.any():
                iou = box_iou(v.boxes[s][fg], g)
                assert ((iou >= cfg.fg_iou) & (gl[None, :] == v.labels[s][fg][:, None])).any(1).all()
    samples = TripletSamples(vids, cfg)
    item = samples[0]
    V, T, M = 1 + cfg.positives + cfg.negatives, cfg.window, vids[0].labels.shape[1]
    assert item["features"].shape == (V, T, M, 16) and item["targets"].shape == (V, T, M, 4)
    assert item["mask"].all() and item["labels"].dtype == torch.int64
    for i in range(len(samples)):  # the candidate positives have the item's category, the negatives not
        (v, c), (target, *rest) = samples.items[i], samples.draw(i)[0]
        positives, negatives = rest[: cfg.positives], rest[cfg.positives:]
        assert target == v and all(c in vids[u].categories for u in positives)
        assert all(c not in vids[u].categories for u in negatives) or all(c in x.categories for x in vids)
    samples.set_epoch(1)
    assert not torch.equal(samples[0]["features"], item["features"])  # redrawn each epoch


@pytest.mark.parametrize(("relations", "mining"), [("none", {}), ("intra", {}), ("inter", {}),
                                                   ("inter", {"triplet_mining": "semihard", "mining_descriptor": "object",
                                                              "triplet_similarity": "cosine"}),
                                                   ("inter", {"triplet_mining": "attention"})])
def test_training_step_and_windowed_inference(videos, relations, mining):
    cfg, vids = videos
    cfg = dataclasses.replace(cfg, relations=relations, max_per_frame=5, score_threshold=0.0, **mining)
    torch.manual_seed(0)
    model = HVRNet(cfg)
    batch = torch.utils.data.default_collate([TripletSamples(vids, cfg)[i] for i in range(2)])
    out = model(batch)
    assert set(out) >= {"loss", "loss_cls", "loss_bbox", "acc"} and ("loss_triplet" in out) == (relations == "inter")
    out["loss"].backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    d = detect_video(model, vids[0])
    S, M = vids[0].labels.shape
    assert d.probs.shape == (S, M, len(OBJECTS) + 1)
    assert d.features.shape == (len(d.frame), cfg.dim) and (d.labels >= 1).all()
    frames, counts = d.frame.unique(return_counts=True)
    assert counts.max() <= 5 and set(frames.tolist()) <= set(vids[0].frames.tolist())
    for f in frames.tolist():  # no two kept boxes of one class and frame overlap above the NMS threshold
        for c in d.labels[d.frame == f].unique().tolist():
            b = d.boxes[(d.frame == f) & (d.labels == c)]
            iou = box_iou(b, b) - torch.eye(len(b))
            assert iou.max() <= cfg.nms_threshold + 1e-6


def test_object_mining_picks_the_negative_window_of_the_most_similar_category():
    """mining_descriptor="object": the target and positives are described by the item's category's
    proposals, a negative by its most similar category (not by the mean over all its proposals)."""
    from pyvrel.models.hvrnet.model import _mine_by_object

    D = 4
    e = torch.eye(D)
    feats = torch.zeros(4, 1, 3, D)  # target, 1 positive, 2 negatives; 1 frame, 3 proposals
    labels = torch.zeros(4, 1, 3, dtype=torch.int64)
    feats[0, 0, 0], labels[0, 0, 0] = e[0], 5  # the item's category 5, other proposals background
    feats[0, 0, 1:] = 10 * e[3]
    feats[1, 0, 0], labels[1, 0, 0] = e[0], 5
    feats[2, 0, :] = 3 * e[3]  # negative 0: like the target's background, no object like its category
    feats[2, 0, 0], labels[2, 0, 0] = e[1], 7
    feats[3, 0, 0], labels[3, 0, 0] = 0.9 * e[0], 8  # negative 1: an object like the category (a confusable one)
    feats[3, 0, 1:], labels[3, 0, 1:] = e[2], 9
    mask = torch.ones(4, 1, 3, dtype=torch.bool)
    assert _mine_by_object(feats, mask, labels, 5, 1) == (0, 1)
    desc = video_descriptor(feats, mask)  # the whole-frame descriptor picks the other negative
    assert mine_hard_videos(desc[0], desc[1:2], desc[2:]) == (0, 0)
    with pytest.raises(ValueError, match="mining_descriptor: expected 'video' or 'object'"):
        HVRNetConfig(mining_descriptor="frames")
    with pytest.raises(ValueError, match="triplet_similarity: expected 'affinity' or 'cosine'"):
        HVRNetConfig(triplet_similarity="distance")
    with pytest.raises(ValueError, match="triplet_mining='attention' .* expected triplet_similarity='affinity'"):
        HVRNetConfig(triplet_mining="attention", triplet_similarity="cosine")


def test_detector_refuses_data_of_other_categories(videos, tmp_path):
    from pyvrel.models.hvrnet.task import HVRNetDetector

    cfg, _ = videos
    detector = HVRNetDetector(HVRNet(cfg).eval(), OBJECTS[::-1])  # the checkpoint's categories in another order
    with pytest.raises(ValueError, match=r"synthetic: its 35 object categories are not the checkpoint's 35 \(in the same"):
        detector.write_detections(open_dataset("synthetic", TINY), "test", tmp_path)
    assert not any(tmp_path.iterdir())


def test_metrics_of_perfect_detections(videos):
    cfg, vids = videos
    dets = []
    for v in vids:
        frame = torch.cat([v.frames[s].repeat(len(g)) for s, (g, _) in enumerate(v.gt)])
        boxes = torch.cat([g for g, _ in v.gt])
        labels = torch.cat([gl for _, gl in v.gt])
        probs = torch.nn.functional.one_hot(v.labels, len(OBJECTS) + 1).float()
        dets.append(FrameDetections(frame, boxes, torch.ones(len(frame)), labels, torch.zeros(len(frame), 1), probs))
    m = evaluate_detections(vids, dets, confusable_labels(OBJECTS))
    assert m["mAP"] == pytest.approx(1.0) and m["acc"] == 1.0
    dets[0].probs[..., 0] = 2.0  # every proposal of video 0 called background
    assert evaluate_detections(vids, dets, confusable_labels(OBJECTS))["acc"] < 1.0


def test_train_command_on_the_synthetic_world(tmp_path):
    run = tmp_path / "run"
    world = json.dumps({**TINY, "num_videos": 6})
    assert main(["train", "--model", "hvrnet", "--data", "synthetic", "--out", str(run), "--set",
                 f"model.world={world}", "--set", "model.feature_dim=16", "--set", "model.dim=16", "--set", "model.window=3", "--set",
                 "train.epochs=1", "--set", "train.progress=false", "--set", "train.log_every=1"]) == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert "loss_triplet" in records[0] and records[-1]["type"] == "eval" and 0 <= records[-1]["mAP"] <= 1
    import runpy  # the study's attention measurement on this run
    from pathlib import Path

    spread = runpy.run_path(str(Path(__file__).parents[1] / "scripts" / "hvrnet_attention.py"))["attention_spread"]
    r = spread(run)
    assert r["std"] > 0 and 0 < r["entropy"] <= 1 + 1e-6
    assert 0 <= r["same"] <= 1 and 0 < r["share"] <= 1 and 0 <= r["same_confusable"] <= 1


def test_malformed_roi_arrays_name_file_and_key(videos):
    from pyvrel.models.hvrnet.task import _check_rois

    cfg, _ = videos
    dataset = open_dataset("synthetic", TINY)
    anno, arrays, file = next(dataset.arrays("train", lambda k: k.startswith("roi_")))
    with pytest.raises(FormatError, match="video synth0000_00000: roi_features: missing"):
        _check_rois({k: v for k, v in arrays.items() if k != "roi_features"}, anno, cfg, file)
    with pytest.raises(FormatError, match=r"roi_features: expected shape \(S, M, 16\)"):
        _check_rois({**arrays, "roi_features": arrays["roi_features"][..., :3]}, anno, cfg, file)
    with pytest.raises(FormatError, match="roi_frames: expected increasing frames"):
        _check_rois({**arrays, "roi_frames": arrays["roi_frames"][::-1].copy()}, anno, cfg, file)
    assert label_video(anno, *_check_rois(arrays, anno, cfg, file), OBJECTS, 0.5).labels.max() > 0


def test_a_demo_function_in_the_registry_is_what_pyvrel_demo_runs(tmp_path, monkeypatch):
    """HVR-Net's entry gives a function as its demo: `pyvrel demo NAME` calls it with the command's options."""
    from pyvrel.engine import MODELS, ModelEntry
    from pyvrel.engine.registry import model_part

    assert model_part("hvrnet", "demo").__name__ == "run_demo"
    calls = []
    monkeypatch.setitem(MODELS, "toy", ModelEntry("Toy", train="engine_toy:build_task",
                                                  demo=lambda out, quick, threads: calls.append((out, quick, threads))))
    assert main(["demo", "toy", "--quick", "--threads", "2", "--out", str(tmp_path)]) == 0
    assert calls == [(str(tmp_path), True, 2)]
