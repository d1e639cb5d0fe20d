"""vRGV: networks, caption vocabulary, word vectors, grounding and its legacy switch, data checks, CLI."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from pyvrel.data import FormatError
from pyvrel.data.annotations import FrameBox, ObjectInfo, RelationInstance, VideoAnnotation
from pyvrel.data.text import hashed_vector, word_vectors
from pyvrel.models.vrgv import (
    VRGV,
    CaptionDecoder,
    CaptionVocabulary,
    VRGVConfig,
    VRGVTrainModel,
    caption_loss,
    ground_pair,
    link_segments,
    parse_query,
    temporal_segments,
)
from pyvrel.data.queries import read_queries
from pyvrel.models.vrgv.grounding import temporal_score
from pyvrel.models.vrgv.task import check_regions, collate

TINY = VRGVConfig(num_frames=6, num_clips=2, num_proposals=4, feature_dim=3, word_dim=4, embed_dim=8, hidden_dim=8,
                  dropout=0.0)


def _model(cfg: VRGVConfig = TINY, objects: int = 3) -> VRGV:
    torch.manual_seed(0)
    return VRGV(cfg, torch.randn(objects, cfg.word_dim)).eval()


def _regions(B: int = 2, cfg: VRGVConfig = TINY) -> torch.Tensor:
    return torch.randn(B, cfg.num_frames, cfg.num_proposals, cfg.visual_dim, generator=torch.Generator().manual_seed(1))


def test_forward_shapes_and_attention_sums_to_one():
    out = _model()(_regions(), torch.tensor([0, 1]), torch.tensor([2, 0]))
    assert out.video.shape == (2, 8) and out.state[0].shape == (1, 2, 8) and out.state[1].shape == (1, 2, 8)
    assert out.alpha_s.shape == out.alpha_o.shape == (2, 6, 4)
    assert out.beta_frame.shape == (2, 6) and out.beta_clip.shape == (2, 2)
    for a in (out.alpha_s, out.alpha_o, out.beta_frame, out.beta_clip):
        torch.testing.assert_close(a.sum(-1), torch.ones(a.shape[:-1]))


def test_proposal_count_is_a_parameter():
    cfg = VRGVConfig(num_frames=4, num_clips=2, num_proposals=7, feature_dim=3, word_dim=4, embed_dim=8,
                     hidden_dim=8)
    out = _model(cfg)(_regions(1, cfg), torch.tensor([0]), torch.tensor([1]))
    assert out.alpha_s.shape == (1, 4, 7)
    with pytest.raises(ValueError, match="multiple of num_clips"):
        VRGVConfig(num_frames=7, num_clips=2)


def test_attention_shift_carries_the_subject_attention_to_the_object_feature():
    """The message W_so·α_s is added to the object's attended feature: changing the subject (its
    attention) changes the object half of the fused feature, not α_o itself; without the message it
    does not."""
    model = _model()
    seen = []
    model.transform_visual.register_forward_hook(lambda m, inp, out: seen.append(inp[0][..., 8:].clone()))
    x = _regions(1)
    a = model(x, torch.tensor([0]), torch.tensor([2]))
    b = model(x, torch.tensor([1]), torch.tensor([2]))
    assert not torch.allclose(a.alpha_s, b.alpha_s)
    torch.testing.assert_close(a.alpha_o, b.alpha_o)
    assert not torch.allclose(seen[0], seen[1])
    with torch.no_grad():
        for p in model.msg_sub2obj.parameters():
            p.zero_()
    model(x, torch.tensor([0]), torch.tensor([2]))
    model(x, torch.tensor([1]), torch.tensor([2]))
    torch.testing.assert_close(seen[2], seen[3])


def test_decoder_teacher_forcing_is_causal_and_loss_ignores_padding():
    torch.manual_seed(0)
    dec = CaptionDecoder(8, 10)
    video, state = torch.randn(2, 8), (torch.randn(1, 2, 8), torch.randn(1, 2, 8))
    tokens = torch.tensor([[1, 4, 5, 6, 2], [1, 7, 8, 2, 0]])
    logits = dec(video, state, tokens)
    assert logits.shape == (2, 5, 10)
    changed = tokens.clone()
    changed[:, 3] = 9  # token 3 is an input of positions 4.. only
    logits2 = dec(video, state, changed)
    torch.testing.assert_close(logits[:, :4], logits2[:, :4])
    assert not torch.allclose(logits[:, 4], logits2[:, 4])
    lengths = torch.tensor([5, 4])
    loss, _ = caption_loss(logits, tokens, lengths)
    noisy = logits.clone()
    noisy[1, 4] = 100.0  # the padded position of caption 1
    torch.testing.assert_close(caption_loss(noisy, tokens, lengths)[0], loss)
    valid = [logits[0, :5], logits[1, :4]]
    expected = torch.nn.functional.cross_entropy(torch.cat(valid), torch.cat([tokens[0, :5], tokens[1, :4]]))
    torch.testing.assert_close(loss, expected)
    assert dec.greedy(video, state, 3).shape == (2, 3)


def test_caption_vocabulary_and_queries():
    vocab = CaptionVocabulary.build([("dog", "stand_behind", "frisbee"), ("red_panda", "sit_next_to", "dog")])
    assert vocab.words[:4] == ["<pad>", "<start>", "<end>", "<unk>"]
    ids = vocab.encode(("dog", "stand_behind", "frisbee"))
    assert vocab.words[ids[0]] == "<start>" and vocab.words[ids[-1]] == "<end>"
    assert vocab.decode(ids) == ["dog", "stand", "behind", "frisbee"]
    assert vocab.decode(vocab.encode(("dog", "stand_behind", "frisbee"), cooccurrence=True)) == ["dog", "frisbee"]
    assert vocab.encode(("cat", "jump", "dog"))[1] == CaptionVocabulary.UNK
    assert parse_query("dog-stand_behind-frisbee") == ("dog", "stand_behind", "frisbee")
    for bad in ("dog-stand_behind", "dog--frisbee", "dog-sit-on-frisbee", 3):
        with pytest.raises(ValueError, match="subject-predicate-object"):
            parse_query(bad)


def test_word_vectors_glove_compounds_and_offline_default(tmp_path):
    glove = tmp_path / "glove.txt"
    glove.write_text("red 1 0 0\npanda 0 1 0\ndog 0 0 2\n")
    v = word_vectors(["dog", "red_panda", "cat"], 3, glove)
    np.testing.assert_allclose(v, [[0, 0, 2], [0.5, 0.5, 0], [0, 0, 0]])
    z = word_vectors(["dog", "red_panda"], 3, glove, compound="zeros")  # the public code's lookup
    np.testing.assert_allclose(z, [[0, 0, 2], [0, 0, 0]])
    with pytest.raises(ValueError, match="glove.txt: vectors have 3 values"):
        word_vectors(["dog"], 300, glove)
    (tmp_path / "bad.txt").write_text("dog 1 2\ncat 1 x\n")
    with pytest.raises(ValueError, match="bad.txt: line 2"):
        word_vectors(["cat"], 2, tmp_path / "bad.txt")
    a = word_vectors(["dog", "Dog"], 16)
    np.testing.assert_array_equal(a[0], hashed_vector("dog", 16))
    np.testing.assert_array_equal(a[0], a[1])
    assert abs(float(np.linalg.norm(a[0])) - 1) < 1e-5


# ---- grounding -------------------------------------------------------------------------------------


def test_temporal_segments_groups_with_margin_and_minimum_length():
    temp = np.zeros(20)
    temp[[2, 3, 4, 6, 7, 12, 15, 16, 17, 18]] = 1.0
    # frame_count 40, 20 samples: rate 0.5, margin = min_len = int(4 * 0.5) = 2
    segs = temporal_segments(temp, 40, 0.5, 4)
    assert [s.tolist() for s in segs] == [[2, 3, 4, 6, 7], [15, 16, 17, 18]]  # [12] is too short
    # a long video: the code's margin int(4 * 20 / 400) = 0 would split every sample; adjacent ones group
    assert [s.tolist() for s in temporal_segments(temp, 400, 0.5, 4)] == [[2, 3, 4], [6, 7], [12], [15, 16, 17, 18]]


def _hand_video():
    """12 sampled frames (every 10th video frame), 3 boxes each: box 0 moves right by 1 px per frame,
    box 1 a static distractor, box 2 far away. The subject attends box 0, the object box 1, in the
    second clip only."""
    T, M = 12, 3
    frames = torch.arange(T) * 10
    boxes = torch.zeros(T, M, 4)
    for t in range(T):
        boxes[t, 0] = torch.tensor([10.0 * t, 0, 10.0 * t + 50, 50])
        boxes[t, 1] = torch.tensor([300.0, 300, 350, 350])
        boxes[t, 2] = torch.tensor([600.0, 0, 640, 40])
    alpha_s = torch.full((T, M), 0.1)
    alpha_s[:, 0] = 0.8
    alpha_o = torch.full((T, M), 0.1)
    alpha_o[:, 1] = 0.8
    beta_clip = torch.tensor([0.0, 1.0])
    beta_frame = torch.zeros(T)
    return boxes, frames, alpha_s, alpha_o, beta_frame, beta_clip


def test_ground_pair_on_a_hand_built_video_gives_the_segment_and_interpolated_tubes():
    boxes, frames, alpha_s, alpha_o, beta_frame, beta_clip = _hand_video()
    g = ground_pair(boxes, frames, 120, alpha_s, alpha_o, beta_frame, beta_clip, temporal_threshold=0.5,
                    min_segment=10)
    assert g.segment.tolist() == list(range(6, 12))
    assert g.duration == (60, 111)  # sampled frames 60..110, every video frame in between
    assert g.sub_traj.shape == g.obj_traj.shape == (51, 4)
    np.testing.assert_allclose(g.sub_traj[0], [60, 0, 110, 50])
    np.testing.assert_allclose(g.sub_traj[5], [65, 0, 115, 50])  # interpolated at frame 65
    np.testing.assert_allclose(g.sub_traj[-1], [110, 0, 160, 50])
    np.testing.assert_allclose(g.obj_traj, np.tile([300.0, 300, 350, 350], (51, 1)))


def test_frame_temporal_score_thresholds_the_frame_attention_alone():
    """β2 favours the second clip, β1 the first three sampled frames: the code's score grounds the second
    clip; ``beta_clip=None`` (``temporal_score="frame"``) grounds frames 0-2."""
    boxes, frames, alpha_s, alpha_o, _, beta_clip = _hand_video()
    beta_frame = torch.tensor([0.3, 0.3, 0.3] + [0.1 / 9] * 9)
    np.testing.assert_allclose(temporal_score(beta_frame, None), beta_frame.double().numpy())
    code = ground_pair(boxes, frames, 120, alpha_s, alpha_o, beta_frame, beta_clip, temporal_threshold=0.5,
                       min_segment=10)
    frame = ground_pair(boxes, frames, 120, alpha_s, alpha_o, beta_frame, None, temporal_threshold=0.2,
                        min_segment=10)
    assert code.segment.tolist() == list(range(6, 12)) and frame.segment.tolist() == [0, 1, 2]
    assert frame.duration == (0, 21)
    cfg = replace(TINY, temporal_score="frame")
    assert cfg.uniform_score() == pytest.approx(1 / 6) and TINY.uniform_score() == pytest.approx(1 / 2 + 1 / 6)
    with pytest.raises(ValueError, match="temporal_score"):
        replace(TINY, temporal_score="clip")


def test_link_segments_skips_repeated_frames_and_pads_paths():
    boxes, _, alpha_s, alpha_o, *_ = _hand_video()
    frames = torch.tensor([0, 0, 1, 2, 2, 3, 4, 5, 6, 7, 8, 9])  # a short video: repeats
    paths, scores, seg_boxes, seg_frames = link_segments(boxes, torch.stack([alpha_s, alpha_o]), frames,
                                                         [np.arange(0, 5), np.arange(8, 12)])
    assert paths.shape == (2, 2, 4) and seg_frames[0, :3].tolist() == [0, 1, 2]
    assert paths[0, 0].tolist() == [0, 0, 0, -1] and paths[1, 0].tolist() == [0, 0, 0, 0]
    assert paths[1, 1].tolist() == [1, 1, 1, 1] and seg_frames[1].tolist() == [6, 7, 8, 9]
    assert seg_boxes.shape == (2, 4, 3, 4)
    torch.testing.assert_close(seg_boxes[0, 1], boxes[2])  # the repeat (sample 1) was skipped


def _code_find_max_path(alpha: np.ndarray, boxes: np.ndarray, frames: list[int]):
    """The public code's DP (its tube.py::find_max_path):
    V_0 = α_0; V_k[q] = max_p V_{k-1}[p] + α_{k-1}[p] + α_k[q] + IoU_{+1}/gap over the first L-1 frames
    (the last link is never used); the last box is argmax α; score = V*/L."""
    from pyvrel.ops.reference import box_iou_ref

    L, N = alpha.shape
    V, back = alpha[0].copy(), []
    for k in range(1, L - 1):
        iou = box_iou_ref(torch.from_numpy(boxes[k - 1]), torch.from_numpy(boxes[k]), 1).numpy()
        w = alpha[k - 1][:, None] + alpha[k][None, :] + iou / (frames[k] - frames[k - 1])
        cand = V[:, None] + w
        back.append(cand.argmax(0))
        V = cand.max(0)
    path = [int(V.argmax())]
    for b in reversed(back):
        path.insert(0, int(b[path[0]]))
    return path + [int(alpha[-1].argmax())], float(V.max()) / L


def test_legacy_switch_reproduces_the_public_codes_choice():
    # 4 frames: continuity (0.45 + IoU 1) should win at the last frame, the code takes argmax α (0.55)
    boxes = torch.tensor([[[0.0, 0, 10, 10], [100, 100, 110, 110]]] * 4)
    alpha = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.9, 0.1], [0.45, 0.55]])
    frames = torch.arange(4)
    exact, *_ = link_segments(boxes, alpha[None], frames, [np.arange(4)])
    legacy, scores, *_ = link_segments(boxes, alpha[None], frames, [np.arange(4)], legacy=True)
    assert exact[0, 0].tolist() == [0, 0, 0, 0] and legacy[0, 0].tolist() == [0, 0, 0, 1]
    rng = np.random.default_rng(0)
    for _ in range(5):  # the code's DP on random cases: same path, same score
        L, N = 6, 4
        xy = rng.uniform(0, 50, (L, N, 2))
        b = np.concatenate([xy, xy + rng.uniform(10, 40, (L, N, 2))], -1)
        a = rng.dirichlet(np.ones(N), L)
        fr = np.cumsum(rng.integers(1, 4, L))
        path, score = _code_find_max_path(a, b, fr.tolist())
        got, s, *_ = link_segments(torch.from_numpy(b), torch.from_numpy(a)[None], torch.from_numpy(fr),
                                   [np.arange(L)], legacy=True)
        assert got[0, 0].tolist() == path
        assert abs(float(s[0, 0]) - score) < 1e-9


def test_greedy_linking_is_the_best_attended_box():
    boxes, frames, alpha_s, *_ = _hand_video()
    a = torch.rand(12, 3, generator=torch.Generator().manual_seed(0))
    paths, *_ = link_segments(boxes, a[None], frames, [np.arange(12)], pairwise_weight=0.0)
    assert paths[0, 0].tolist() == a.argmax(-1).tolist()


# ---- training, data, CLI --------------------------------------------------------------------------


@pytest.mark.parametrize("corrections", [{}, {"attention": "bilinear", "decoder_state": "zeros", "feature_scale": 2.0}])
def test_a_few_steps_reduce_the_reconstruction_loss(corrections):
    torch.manual_seed(0)
    model = VRGVTrainModel(replace(TINY, **corrections), 8, torch.randn(3, 4), stage=2)
    items = [(_regions(1)[0], i % 3, (i + 1) % 3, [1, 4 + i % 3, 5, 2]) for i in range(6)]
    batch = collate(items)
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    losses = []
    for _ in range(12):
        out = model(batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["loss"].detach()))
    assert losses[-1] < 0.7 * losses[0]
    stage1 = VRGVTrainModel(TINY, 8, torch.randn(3, 4), stage=1)
    assert set(stage1(batch)) == {"loss", "token_acc"}


def test_corrections_are_checked_and_the_bilinear_attention_reads_the_query():
    for key, bad in (("attention", "dot"), ("decoder_state", "video"), ("feature_scale", 0.0)):
        with pytest.raises(ValueError, match=key):
            replace(TINY, **{key: bad})
    model = _model(replace(TINY, attention="bilinear"))
    out = model(_regions(), torch.tensor([0, 1]), torch.tensor([2, 0]))
    for a in (out.alpha_s, out.alpha_o, out.beta_frame, out.beta_clip):
        torch.testing.assert_close(a.sum(-1), torch.ones(a.shape[:-1]))
    other = model(_regions(), torch.tensor([1, 1]), torch.tensor([2, 0]))  # only the first subject changes
    assert not torch.allclose(out.alpha_s[0], other.alpha_s[0]) and torch.allclose(out.alpha_s[1], other.alpha_s[1])


def test_frame_values_inputs_pools_each_frames_own_features():
    """``frame_values="inputs"``: the video embedding is β1 over the frames' own inputs (the code: over the
    frame LSTM's outputs, which carry the earlier frames), with the same β1."""
    torch.manual_seed(0)
    cfg = replace(TINY, frame_values="inputs")
    hierarchy = VRGV(cfg, torch.randn(3, cfg.word_dim)).hierarchy.eval()
    x, rel = torch.randn(2, cfg.num_frames, cfg.hidden_dim), torch.randn(2, cfg.hidden_dim)
    video, _, beta_frame, _ = hierarchy(x, rel)
    torch.testing.assert_close(video, torch.einsum("bt,bth->bh", beta_frame, x))
    frames, _ = hierarchy.frame_lstm(x)
    hierarchy.pool_inputs = False
    torch.testing.assert_close(hierarchy(x, rel)[0], torch.einsum("bt,bth->bh", beta_frame, frames))
    with pytest.raises(ValueError, match="frame_values"):
        replace(TINY, frame_values="clips")


def _annotation(frame_count: int = 20) -> VideoAnnotation:
    traj = [[FrameBox(0, (0.0, 0.0, 10.0, 10.0), {}), FrameBox(1, (20.0, 20.0, 40.0, 40.0), {})]
            for _ in range(frame_count)]
    return VideoAnnotation("v1", frame_count, 30.0, 64, 48, [ObjectInfo(0, "dog", {}), ObjectInfo(1, "cat", {})],
                           traj, [RelationInstance(0, 1, "chase", 0, 10)], {})


def test_select_threshold_returns_the_threshold_that_grounds_best(monkeypatch):
    """Only the third candidate grounds the annotated relation right: it is chosen, with AccR 1 and the others 0."""
    from pyvrel.models.vrgv import task

    anno = _annotation()
    dataset = type("Annotated", (), {"annotations": lambda self, split: {"v1": anno}})()
    right = task.THRESHOLD_FRACTIONS[2] * (1 / TINY.num_clips + 1 / TINY.num_frames)

    def fake_ground(model, cfg, objects, data, split, pairwise_weight=None):
        return {"v1": anno.relation_view()} if cfg.temporal_threshold == right else {}

    monkeypatch.setattr(task, "ground", fake_ground)
    sigma, scores = task.select_threshold(None, TINY, ["dog", "cat"], dataset)
    assert sigma == right and scores[right] == 1.0
    assert len(scores) == len(task.THRESHOLD_FRACTIONS) and sum(scores.values()) == 1.0


def test_bad_feature_files_name_the_file_and_key():
    anno = _annotation()
    ok = {"proposal_frames": np.arange(6) * 3, "proposal_boxes": np.ones((6, 4, 4), np.float32),
          "proposal_features": np.zeros((6, 4, 3), np.float32)}
    r = check_regions(ok, TINY, anno, "f.npz")
    assert r.regions.shape == (6, 4, 8)
    torch.testing.assert_close(r.regions[0, 0, 3:], torch.tensor([1 / 64, 1 / 48, 1 / 64, 1 / 48, 1 / (64 * 48)]))
    with pytest.raises(FormatError, match="f.npz: video v1: proposal_boxes: missing"):
        check_regions({k: v for k, v in ok.items() if k != "proposal_boxes"}, TINY, anno, "f.npz")
    with pytest.raises(FormatError, match=r"proposal_features: expected shape \(6, 4, 3\)"):
        check_regions({**ok, "proposal_features": np.zeros((6, 4, 5))}, TINY, anno, "f.npz")
    with pytest.raises(FormatError, match="proposal_frames: expected non-decreasing"):
        check_regions({**ok, "proposal_frames": np.array([0, 3, 2, 4, 5, 25])}, TINY, anno, "f.npz")


def test_bad_query_files_name_the_file_video_and_query(tmp_path):
    p = tmp_path / "q.json"
    p.write_text(json.dumps({"v1": ["dog-chase-cat"]}))
    assert read_queries(p) == {"v1": [("dog", "chase", "cat")]}
    p.write_text(json.dumps({"v1": ["dog-chase"]}))
    with pytest.raises(ValueError, match="q.json: video v1: query 'dog-chase'"):
        read_queries(p)
    p.write_text("[1, 2]")
    with pytest.raises(ValueError, match="q.json: expected"):
        read_queries(p)


def test_synthetic_grounding_stream():
    from pyvrel.data.synthetic import SynthConfig, generate_video

    plain = generate_video(SynthConfig(seed=1, feature_dim=16, proposals=8, sampled_frames=30), 0)
    v = generate_video(SynthConfig(seed=1, feature_dim=16, proposals=8, sampled_frames=30, grounding=True), 0)
    f, anno = v.features, v.annotation
    for k in plain.features:  # every other array is the same world's
        if not k.startswith("proposal_"):
            np.testing.assert_array_equal(plain.features[k], f[k])
    assert f["proposal_frames"].shape == (30,) and f["proposal_boxes"].shape == (30, 8, 4)
    assert f["proposal_features"].shape == (30, 8, 16) and f["proposal_tid"].shape == (30, 8)
    boxes = anno.boxes_by_tid()
    slots = set()
    for si, frame in enumerate(f["proposal_frames"].tolist()):
        visible = {b.tid for b in anno.trajectories[frame]}
        assert set(f["proposal_tid"][si][f["proposal_tid"][si] >= 0].tolist()) == visible
        for m in np.flatnonzero(f["proposal_tid"][si] >= 0):
            slots.add(int(m))
            x1, y1, x2, y2 = boxes[int(f["proposal_tid"][si, m])][frame]
            p = f["proposal_boxes"][si, m]
            assert abs(p[0] - x1) + abs(p[2] - x2) < 0.6 * (x2 - x1) + 4
    assert len(slots) > 2  # entity boxes are not always in the first slots


def test_pair_relations_keeps_the_longest_instances_of_each_pair():
    from pyvrel.data.synthetic import SynthConfig, generate_video

    world = {"seed": 0, "frames": (60, 120), "entities": (3, 3), "min_run": 8, "features": False}
    full = generate_video(SynthConfig(**world), 1).annotation.relations
    kept = generate_video(SynthConfig(**world, pair_relations=1), 1).annotation.relations
    pairs = {(r.subject_tid, r.object_tid) for r in full}
    assert len(full) > len(pairs) and len(kept) == len(pairs)
    key = lambda r: (r.subject_tid, r.object_tid, r.predicate, r.begin_fid, r.end_fid)  # noqa: E731
    for r in kept:
        same = [q.end_fid - q.begin_fid for q in full if key(q)[:2] == key(r)[:2]]
        assert key(r) in set(map(key, full)) and r.end_fid - r.begin_fid == max(same)
    with pytest.raises(ValueError, match="pair_relations"):
        SynthConfig(pair_relations=-1)


def test_twins_world_adds_same_category_entities_and_a_predicate_trace_on_the_related_ones():
    """twins=1: every entity gets one twin of its category over its span, in no relation (the relations
    are those of the world without twins); an entity's grounding features carry the traces of the
    relations it is in on their frames only, else the idle pose (a twin always), at the same norm."""
    from pyvrel.data.synthetic import SynthConfig, World, generate_video

    world = {"seed": 0, "frames": (60, 120), "entities": (3, 3), "min_run": 8, "grounding": True,
             "feature_dim": 64, "proposals": 12, "sampled_frames": 40, "pair_relations": 1}
    key = lambda r: (r.subject_tid, r.object_tid, r.predicate, r.begin_fid, r.end_fid)  # noqa: E731
    plain = generate_video(SynthConfig(**world), 6).annotation
    config = SynthConfig(**world, twins=1)
    v = generate_video(config, 6)  # a person above a bicycle on frames [23, 75) of 87, the bicycle beneath it
    anno, f = v.annotation, v.features
    assert [o.category for o in anno.objects] == [o.category for o in plain.objects] * 2
    assert list(map(key, anno.relations)) == list(map(key, plain.relations))
    above, beneath = anno.relations
    assert key(above)[1:] == (2, "above", 23, 75) and key(beneath)[1:] == (0, "beneath", 23, 75)
    boxes = anno.boxes_by_tid()
    for o in plain.objects:  # a twin lives over its entity's frames, on its own path
        assert boxes[o.tid + 3].keys() == boxes[o.tid].keys() and boxes[o.tid + 3] != boxes[o.tid]
    stream = next(s for s in World(config).streams if s.option == "grounding")
    traces = stream.traces
    for tid, pose in ((0, traces["above"][0] + traces["beneath"][1]), (2, traces["above"][1] + traces["beneath"][0])):
        pose = pose / np.linalg.norm(pose)
        for who, gain in ((tid, 1.0), (tid + 3, 0.0)):  # the entity shows it, its twin does not (idle poses: random)
            rows, slots = np.nonzero(f["proposal_tid"] == who)
            p, frames = f["proposal_features"][rows, slots] @ pose, f["proposal_frames"][rows]
            inside = (frames >= 23) & (frames < 75)
            assert inside.any() and (~inside).any()
            assert abs(p[inside].mean() - p[~inside].mean() - gain) < 0.25, (tid, who)

def test_twins_trace_sets_the_share_of_the_look_common_to_every_predicate():
    """twins_trace: the mean cosine between two predicates' traces of one role is the common share
    (0: each predicate its own look); the default 0.5 is the world of before the option, bit for bit."""
    from pyvrel.data.synthetic import SynthConfig, World

    def traces(**kw):
        stream = next(s for s in World(SynthConfig(twins=1, grounding=True, feature_dim=64, **kw)).streams
                      if s.option == "grounding")
        return np.stack(list(stream.traces.values()))  # (P, 2, D), unit rows

    for share in (0.0, 0.5, 0.8):
        t = traces(twins_trace=share)
        for role in (0, 1):
            cos = t[:, role] @ t[:, role].T
            assert abs(cos[np.triu_indices(len(cos), 1)].mean() - share) < 0.05, (share, role)
    t = np.random.default_rng([0, 1 << 30, 2]).normal(size=(len(t) + 1, 2, 64))  # the formula before the option
    t = t[1:] + t[:1] / np.linalg.norm(t[:1], axis=-1, keepdims=True) * np.linalg.norm(t[1:], axis=-1, keepdims=True)
    assert np.array_equal(traces(), t / np.linalg.norm(t, axis=-1, keepdims=True))
    with pytest.raises(ValueError, match="twins_trace"):
        SynthConfig(twins_trace=1.5)


def test_grounding_clutter_sets_the_distractors_and_confusers():
    """grounding_clutter=0: every proposal that is no entity's box is a background box (noise, unlike
    every entity and category of the frame); the default 2 puts partial copies of the entities (half
    their look) and other categories' prototypes among them. The entity boxes are the same entities."""
    from pyvrel.data.synthetic import SynthConfig, World, generate_video

    def max_cos(clutter: int) -> tuple[np.ndarray, np.ndarray]:
        config = SynthConfig(seed=3, num_videos=4, frames=(40, 60), grounding=True, twins=1, grounding_clutter=clutter,
                             feature_dim=256)  # wide: random directions are far from each other (cosine ~ 0 ± 0.06)
        f = generate_video(config, 1).features
        protos = World(config).prototypes
        out = []
        for feats, tids in zip(f["proposal_features"], f["proposal_tid"]):
            unit = feats / np.linalg.norm(feats, axis=1, keepdims=True)
            refs = np.concatenate([unit[tids >= 0], protos / np.linalg.norm(protos, axis=1, keepdims=True)])
            out.append((unit[tids < 0] @ refs.T).max(1))
        return np.concatenate(out), np.sort(np.unique(f["proposal_tid"]))

    clean, tids_clean = max_cos(0)
    cluttered, tids_cluttered = max_cos(2)
    assert clean.max() < 0.35 and (cluttered > 0.45).mean() > 0.5, ((cluttered > 0.45).mean())
    assert np.array_equal(tids_clean, tids_cluttered)
    with pytest.raises(ValueError, match="grounding_clutter"):
        SynthConfig(grounding_clutter=-1)


def test_train_ground_and_eval_commands(tmp_path, capsys):
    from pyvrel.cli import main

    run = tmp_path / "run"
    sets = ["--set", 'model.world={"num_videos": 5, "frames": [30, 50]}', "--set", "model.num_frames=12",
            "--set", "model.num_clips=2", "--set", "model.num_proposals=6", "--set", "model.hidden_dim=16",
            "--set", "model.embed_dim=8", "--set", "train.epochs=1", "--set", "train.batch_size=8",
            "--set", "train.progress=false"]
    assert main(["train", "--model", "vrgv", "--data", "synthetic", "--out", str(run), *sets]) == 0
    capsys.readouterr()
    ckpt = run / "checkpoints" / "last.pt"
    out = tmp_path / "ground.json"
    assert main(["ground", "--checkpoint", str(ckpt), "--data", "synthetic", "--out", str(out)]) == 0
    pred = json.loads(out.read_text())
    vid, rels = next(iter(pred["results"].items()))
    b, e = rels[0]["duration"]
    assert len(rels[0]["sub_traj"]) == e - b and len(rels[0]["triplet"]) == 3
    q = tmp_path / "q.json"
    q.write_text(json.dumps({vid: ["person-fly-nonexistent"]}))
    assert main(["ground", "--checkpoint", str(ckpt), "--data", "synthetic", "--queries", str(q),
                 "--out", str(out)]) == 1
    assert "unknown category 'nonexistent'" in capsys.readouterr().err


def test_train_and_ground_from_a_dataset_folder(tmp_path, capsys):
    from pyvrel.cli import main

    data = tmp_path / "world"
    assert main(["synth", str(data), "--videos", "5", "--seed", "1", "--grounding", "--proposals", "6",
                 "--sampled-frames", "24"]) == 0
    run = tmp_path / "run"
    sets = ["--set", "model.num_proposals=6", "--set", "model.hidden_dim=16", "--set", "model.embed_dim=8",
            "--set", "train.epochs=1", "--set", "train.batch_size=8", "--set", "train.progress=false"]
    assert main(["train", "--model", "vrgv", "--data", str(data), "--out", str(run), *sets]) == 0
    out = tmp_path / "g.json"
    assert main(["ground", "--checkpoint", str(run / "checkpoints" / "last.pt"), "--data", str(data), "--legacy",
                 "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["eval", "--grounding", "--json", str(data / "annotations" / "test"), str(out)]) == 0
    res = json.loads(capsys.readouterr().out)
    assert set(res) == {"0.3", "0.5", "0.7", "avg"} and res["avg"]["queries"] > 0
    assert res["0.7"]["AccR"] <= res["0.5"]["AccR"] <= res["0.3"]["AccR"] <= res["0.3"]["AccS"]
    with pytest.raises(SystemExit) as bad:
        main(["ground", "--checkpoint", str(run / "checkpoints" / "last.pt"), "--data", str(data),
              "--threshold", "-0.1", "--out", str(out)])
    assert bad.value.code == 2
    assert "--threshold" in capsys.readouterr().err
    _select_threshold_picks_the_best_on_annotated_videos(run / "checkpoints" / "last.pt", data)
    (data / "features" / f"{next(iter(json.loads(out.read_text())['results']))}.npz").write_bytes(b"junk")
    assert main(["ground", "--checkpoint", str(run / "checkpoints" / "last.pt"), "--data", str(data),
                 "--out", str(out)]) == 1
    assert "not a readable .npz file" in capsys.readouterr().err


def _select_threshold_picks_the_best_on_annotated_videos(checkpoint, data):
    from pyvrel.data.dataset import open_dataset
    from pyvrel.engine import load_checkpoint, load_grounder
    from pyvrel.models.vrgv.task import THRESHOLD_FRACTIONS, evaluate_grounding, select_threshold

    grounder = load_grounder(load_checkpoint(checkpoint))
    dataset = open_dataset(str(data))
    sigma, scores = select_threshold(grounder.model, grounder.cfg, grounder.resolved["objects"], dataset)
    uniform = 1 / grounder.cfg.num_clips + 1 / grounder.cfg.num_frames
    assert list(scores) == pytest.approx([f * uniform for f in THRESHOLD_FRACTIONS])
    assert scores[sigma] == max(scores.values())
    train_gt = {v: a.relation_view() for v, a in dataset.annotations("train").items()}
    for s in (sigma, min(scores)):  # the grounder's threshold argument is the one the selection scored
        grounded = grounder.ground(dataset, "train", temporal_threshold=s)
        assert evaluate_grounding(train_gt, grounded)["avg"]["AccR"] == scores[s]
    whole = grounder.ground(dataset, "train", temporal_threshold=2.0)  # no frame passes: each video is one segment
    assert all(r.duration == (0, dataset.annotations("train")[v].frame_count) for v, rs in whole.items() for r in rs)


def test_demo_quick_grounds_and_draws(tmp_path, capsys):
    from pyvrel.cli import main

    out = tmp_path / "demo"
    assert main(["demo", "vrgv", "--quick", "--out", str(out), "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    rows = {line.split("  ")[0].strip(): line for line in printed.splitlines()}
    assert "Grounding (%)" in printed and "vRGV" in rows and "Co-occur" in rows and "AccR" in printed
    assert "Co-occur: the same model" in printed
    for name in ("groundtruth.json", "metrics.json", "grounding.svg", "vRGV/groundings.json",
                 "Co-occur/groundings.json", "vRGV/checkpoints/last.pt"):
        assert (out / name).is_file(), name
        assert name in printed.split("written to")[1], name
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["results"]) == {"vRGV", "Co-occur"} and metrics["steps"]["vRGV"] > 0
    assert 0 <= metrics["results"]["vRGV"]["Grounding"]["AccR"] <= metrics["results"]["vRGV"]["Grounding"]["AccS"] + 1e-9
    config = json.loads((out / "Co-occur" / "config.json").read_text())
    assert config["model_config"]["cooccurrence"] is True and config["model_config"]["decoder_state"] == "zeros"
    svg = (out / "grounding.svg").read_text()
    assert svg.startswith("<svg") and "ground truth" in svg and "grounded" in svg and "attention" in svg
    assert svg.count("<polyline") == 3  # subject IoU, object IoU, temporal attention
