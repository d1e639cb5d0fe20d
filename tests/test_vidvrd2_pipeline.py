"""VidVRD-II's pipeline: gap filling vs its reference, seqnms tracklets, labels by vIoU, inference
(propagation, candidates, relation NMS, association) on tiny inputs, and the pyvrel commands."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pyvrel.data import VideoAnnotation
from pyvrel.data.annotations import FrameBox, ObjectInfo, RelationInstance
from pyvrel.data.errors import FormatError
from pyvrel.data.tracklets import Tracklet
from pyvrel.eval.association import Track, cubic_iou
from pyvrel.ops import fill_gaps, seq_nms
from pyvrel.ops.reference import fill_gaps_ref
from pyvrel.models.vidvrd2 import IterativeClassifier, VidVRD2Config
from pyvrel.models.vidvrd2.inference import (predict_video, propagation_matrix, relation_nms, segment_candidates,
                                             video_segments)
from pyvrel.models.vidvrd2.samples import segment_samples
from pyvrel.models.vidvrd2.tracklets import seqnms_segments


def _boxes(seed, B, T, N, dtype):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(B, T, N, 2, generator=g) * 50
    wh = torch.rand(B, T, N, 2, generator=g) * 20 + 1
    boxes = torch.cat([xy, xy + wh], -1).to(dtype)
    return boxes, torch.rand(B, T, N, generator=g).to(dtype), torch.rand(B, T, N, generator=g) < 0.4, g


@pytest.mark.parametrize("seed", range(6))
def test_fill_gaps_equals_the_reference(seed):
    boxes, scores, valid, g = _boxes(seed, 2, 12, 4, torch.float64 if seed % 2 else torch.float32)
    labels = torch.randint(-1, 3, boxes.shape[:3], generator=g) if seed % 3 else None
    got = fill_gaps(boxes, scores, valid=valid, labels=labels, tolerance=6)
    want = fill_gaps_ref(boxes, scores, valid, labels, tolerance=6)
    for a, b in zip(got, want):
        assert (a is None and b is None) or torch.equal(a, b)


def test_fill_gaps_bridges_a_missed_frame_by_hand():
    boxes = torch.tensor([[[0.0, 0, 10, 10], [0, 0, 0, 0]], [[0, 0, 0, 0], [0, 0, 0, 0]],
                          [[0, 0, 0, 0], [0, 0, 0, 0]], [[30, 0, 40, 10], [0, 0, 100, 1]]])
    counts = torch.tensor([1, 0, 0, 2])
    out = fill_gaps(boxes, torch.ones(4, 2), counts, tolerance=30)
    # frames 1 and 2 get the box interpolated towards frame 3's first box (the second is too thin)
    assert out.valid.sum(1).tolist() == [1, 1, 1, 2] and out.boxes.shape == (4, 3, 4)  # N + one insertion
    torch.testing.assert_close(out.boxes[1, 2], torch.tensor([10.0, 0, 20, 10]))
    torch.testing.assert_close(out.boxes[2, 2], torch.tensor([20.0, 0, 30, 10]))
    assert out.scores[1, 2] == 0 and out.source[:, 0].tolist() == [0, -1, -1, 0] and out.source[1, 2] == -1
    assert fill_gaps(boxes, torch.ones(4, 2), counts, tolerance=3).valid.sum().item() == 3  # gap too long
    # then Seq-NMS links the four frames into one tracklet
    r = seq_nms(out.boxes, out.scores, valid=out.valid, variant="vidvrd2", suppress_threshold=0.7, link_threshold=0.0)
    assert int(r.tracklets.length[0]) == 4
    with pytest.raises(ValueError, match="scale_ratio"):
        fill_gaps(boxes, torch.ones(4, 2), counts, scale_ratio=0.5)


def _annotation(frames=60):
    traj = [[FrameBox(0, (10.0 + f, 10.0, 40.0 + f, 50.0)), FrameBox(1, (100.0, 20.0, 150.0, 80.0))]
            for f in range(frames)]
    return VideoAnnotation("v0", frames, 30.0, 320, 240, [ObjectInfo(0, "dog"), ObjectInfo(1, "person")], traj,
                           [RelationInstance(0, 1, "chase", 0, 45)])


def _gt_tracklets(anno, D=4):
    by = anno.boxes_by_tid()
    return [Tracklet(c, 1.0, 0, np.array([by[t][f] for f in range(anno.frame_count)]),
                     np.full((anno.frame_count, D), float(t), np.float32), tid=t) for t, c in ((0, "dog"), (1, "person"))]


def test_labels_by_viou():
    anno = _annotation()
    gts = _gt_tracklets(anno)
    far = Tracklet("cat", 0.5, 0, np.tile([200.0, 150, 260, 200], (60, 1)), np.zeros((60, 4), np.float32))
    cfg = VidVRD2Config(feature_dim=4, num_objects=3, num_predicates=2, hidden=8, min_overlap=20)
    segs = segment_samples(anno, gts, [gts[0], far], cfg, {"dog": 0, "person": 1, "cat": 2}, {"chase": 0, "ride": 1})
    assert len(segs) == 2  # segments [0, 30) and [15, 45); [30, 60) shares only 15 frames with the relation
    s = segs[0]
    rows = {tuple(p): k for k, p in enumerate(s.pairs.tolist())}
    # tracks: gt dog 0, gt person 1, detected dog 2 (a copy of the dog), far 3 (background)
    assert s.predicates[rows[(0, 1)]].tolist() == [True, False] and s.predicates[rows[(2, 1)]].tolist() == [True, False]
    assert (0, 2) not in rows and (2, 0) not in rows  # both follow the same object
    assert s.subject_labels[rows[(3, 0)]] == 3 and s.object_labels[rows[(3, 0)]] == 0  # background subject
    assert not s.predicates[rows[(1, 0)]].any()  # matched objects without a relation
    assert (s.position.shape, s.features.shape) == ((len(s.pairs), 12), (4, 4))


def test_candidates_and_relation_nms():
    ps = torch.tensor([[0.7, 0.1, 0.2], [0.1, 0.1, 0.8], [0.45, 0.3, 0.25]])  # 2 classes + background
    po = torch.tensor([[0.1, 0.8, 0.1], [0.9, 0.0, 0.1], [0.5, 0.4, 0.1]])
    pp = torch.tensor([[0.9, 0.3], [0.9, 0.9], [0.5, 0.1]])
    c = segment_candidates(ps, po, pp, 0.2, 10)
    # pair 1 is dropped (subject argmax is background); pair 2: subjects 0,1 x predicate 0 x objects 0,1
    assert [x[:4] for x in c] == [(0, 0, 0, 1), (0, 0, 1, 1), (2, 0, 0, 0), (2, 0, 0, 1), (2, 1, 0, 0), (2, 1, 0, 1)]
    assert c[0][4] == pytest.approx(0.7 * 0.9 * 0.8)
    assert len(segment_candidates(ps, po, pp, 0.2, 2)) == 2
    pairs = np.array([[0, 1], [2, 3], [0, 2]])  # pair 1 duplicates pair 0 (vIoU 0.95 both)
    viou = np.eye(4)
    viou[0, 2] = viou[2, 0] = viou[1, 3] = viou[3, 1] = 0.95
    cands = [(0, 0, 0, 1, 0.9), (1, 0, 0, 1, 0.8), (2, 0, 0, 1, 0.7), (1, 1, 0, 1, 0.6)]
    assert relation_nms(cands, pairs, viou, 0.9) == [cands[0], cands[2], cands[3]]


def _still(start, L, box, D=4, value=1.0):
    return Tracklet("dog", 1.0, start, np.tile(np.asarray(box, np.float64), (L, 1)), np.full((L, D), value, np.float32))


def test_propagation_matrix():
    cur = [_still(15, 30, [0, 0, 10, 10]), _still(15, 30, [50, 50, 60, 60])]
    prev = [_still(0, 30, [0, 0, 10, 10]), _still(0, 30, [0, 0, 10, 9]), _still(0, 30, [90, 90, 99, 99])]
    T = propagation_matrix(cur, prev, 0.7)
    assert T[1].tolist() == [0.0, 0.0, 0.0] and T[0, 2] == 0 and T[0].sum() == pytest.approx(1.0)
    assert T[0, 0] > T[0, 1] > 0


def test_propagation_matrix_equals_the_pair_at_a_time_softmax():
    rng = np.random.default_rng(0)

    def tracklet(start):
        xy = rng.uniform(0, 20, 2) + np.cumsum(rng.normal(0, 1, (30, 2)), 0)
        return Tracklet("dog", 1.0, start, np.concatenate([xy, xy + 30], 1).astype(np.float32), np.zeros((30, 4)))

    cur, prev = [tracklet(15) for _ in range(8)], [tracklet(0) for _ in range(9)]
    want = np.zeros((8, 9))
    for i, a in enumerate(cur):
        iou = np.array([cubic_iou(Track(a.start, a.boxes), Track(b.start, b.boxes), 0) for b in prev])
        linked = iou > 0.5
        if linked.any():
            w = np.exp(iou[linked] - iou[linked].max())
            want[i, linked] = w / w.sum()
    assert 0 < (want > 0).sum() < want.size
    assert propagation_matrix(cur, prev, 0.5).tolist() == want.tolist()


def test_predict_video_associates_segments():
    """Two still objects over 60 frames (3 segments); a model whose tables force dog-chase-person
    gives one video relation spanning the video, scored by the sum of its segment scores."""
    cfg = VidVRD2Config(feature_dim=4, num_objects=2, num_predicates=2, hidden=8, dropout=0.0, inference_steps=1)
    model = IterativeClassifier(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.object_predictor[3].weight[0, :] = 0.0  # all-zero features: object logits from the tables only
        model.preference.po2s.view(2, 3, 3)[0, :, 0] = 9.0  # predicate 0 -> subject class 0
        model.preference.sp2o.view(3, 2, 3)[:, 0, 1] = 9.0  # predicate 0 -> object class 1
        model.preference.so2p[:, 0], model.preference.so2p[:, 1] = 9.0, -9.0  # any subject/object: predicate 0
    tracks = [_still(0, 60, [0, 0, 10, 10]), _still(0, 60, [50, 50, 60, 60])]
    segs = video_segments(tracks, 60, 30, 15)
    assert [s for s, _ in segs] == [(0, 30), (15, 45), (30, 60)]
    rels = predict_video(model, segs, ["dog", "person"], ["chase", "ride"], 320, 240)
    top = [r for r in rels if r.triplet == ("dog", "chase", "person")]
    # both orders of the pair (the tables see only classes), each one relation over the whole video
    assert len(top) == 2 and all(r.duration == (0, 60) for r in top)
    assert all(r.score > 2.5 for r in top)  # a segment scores at most 1: the sum over the 3 segments
    assert all(r.triplet != ("dog", "ride", "person") for r in rels)


def _detections(D=4):
    """Two objects over 40 frames, the first missed in frames 10-12, the second detected twice; clutter in frame 5."""
    rows = []
    for f in range(40):
        if not 10 <= f <= 12:
            rows.append((f, [10.0 + f, 10, 40 + f, 50], 0.9, 0, 1.0))
        rows.append((f, [100.0, 20, 150, 80], 0.8, 1, 2.0))
        rows.append((f, [108.0, 28, 158, 88], 0.5, 1, 2.0))  # IoU 0.57: the detector's NMS removes it, Seq-NMS would not
    rows.append((5, [200.0, 200, 210, 210], 0.3, 0, 9.0))
    return {"det_frame": np.array([r[0] for r in rows]), "det_boxes": np.array([r[1] for r in rows], np.float32),
            "det_scores": np.array([r[2] for r in rows], np.float32), "det_labels": np.array([r[3] for r in rows]),
            "det_features": np.array([[r[4]] * D for r in rows], np.float32)}


def test_seqnms_tracklets_bridge_the_gap():
    anno = _annotation(40)
    segs = seqnms_segments(_detections(), anno, ["dog", "person"], 4, 30, 15, "f.npz")
    assert [s for s, _ in segs] == [(0, 30)]
    tracks = segs[0][1]
    full = [t for t in tracks if len(t.boxes) == 30]
    assert sorted(t.category for t in full) == ["dog", "person"]  # one tracklet per object
    dog = next(t for t in full if t.category == "dog")
    np.testing.assert_allclose(dog.boxes[11], [21, 10, 51, 50])  # interpolated over the missed frames
    assert dog.features[0, 0] == pytest.approx(1.0)  # mean over real detections only
    bad = {k: v for k, v in _detections().items() if k != "det_features"}
    with pytest.raises(FormatError, match="det_features"):
        seqnms_segments(bad, anno, ["dog", "person"], 4, 30, 15, "f.npz")
    with pytest.raises(FormatError, match="det_labels"):
        seqnms_segments({**_detections(), "det_labels": np.full(118, 5)}, anno, ["dog", "person"], 4, 30, 15, "f.npz")
    with pytest.raises(FormatError, match="expected 8 values per detection"):
        seqnms_segments(_detections(), anno, ["dog", "person"], 8, 30, 15, "f.npz")


TINY = ["--set", "model.world.num_videos=6", "--set", "model.world.frames=[60,100]", "--set", "train.epochs=1",
        "--set", "train.batch_size=4", "--set", "train.progress=false"]


@pytest.mark.filterwarnings("ignore:evaluate_relations. no prediction")  # one tiny epoch may predict nothing
def test_train_detect_and_errors_through_the_cli(tmp_path, capsys):
    from pyvrel.cli import main
    from pyvrel.data import read_predictions
    from pyvrel.engine import load_checkpoint

    out = tmp_path / "run"
    assert main(["train", "--model", "vidvrd2", "--data", "synthetic", "--out", str(out), *TINY]) == 0
    records = [json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if r["type"] == "eval"]
    assert {"RelDet_mAP", "RelDet_mR@50", "RelDet_Mean", "RelTag_P@5"} <= evals[-1].keys()
    train = [r for r in records if r["type"] == "train"]
    assert np.isfinite(train[-1]["loss"]) and {"subject", "object", "predicate"} <= train[-1].keys()
    ckpt = load_checkpoint(out / "checkpoints" / "last.pt")
    assert ckpt["meta"]["model_config"]["num_predicates"] == 132
    pred = tmp_path / "pred.json"
    assert main(["detect", "--checkpoint", str(out / "checkpoints" / "last.pt"), "--data", "synthetic",
                 "--out", str(pred)]) == 0
    assert all(v.startswith("synth0000_") for v in read_predictions(pred).results)
    empty = tmp_path / "empty"  # a new or empty folder is an object detector's output only
    empty.mkdir()
    capsys.readouterr()
    assert main(["detect", "--checkpoint", str(out / "checkpoints" / "last.pt"), "--data", "synthetic",
                 "--out", str(empty)]) == 2
    assert f"pyvrel detect: error: --out {empty}: is a folder; give a file name\n" in capsys.readouterr().err
    # the seqnms tracklets on a world that writes per-frame detection features (HVR-Net's stream)
    from pyvrel.data.dataset import open_dataset
    from pyvrel.engine import load_detector
    from pyvrel.models.vidvrd2.task import VidVRD2Detector

    trained = load_detector(ckpt)
    world = open_dataset("synthetic", {**ckpt["meta"]["model_config"]["world"], "hvrnet": True})
    seqnms = VidVRD2Detector(trained.model, trained.vocabulary, "seqnms").detect(world, "test")
    assert set(seqnms) == set(trained.detect(world, "test"))
    capsys.readouterr()
    args = ["train", "--model", "vidvrd2", "--data", "synthetic", "--out", str(tmp_path / "bad"), *TINY]
    assert main(args + ["--set", "model.tracklets=boxes"]) == 2
    assert "model.tracklets" in capsys.readouterr().err
    assert main(args + ["--set", "model.num_predicates=3"]) == 2
    assert "model.num_predicates: the vocabulary has 132" in capsys.readouterr().err
