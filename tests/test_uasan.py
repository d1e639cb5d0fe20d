"""UASAN: text encoders, the open-vocabulary world, network shapes and losses, the base-only
training data, prompt embeddings of unseen names, training steps, detection through the registry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pyvrel.data.synthetic import SynthConfig, World, generate_video
from pyvrel.data.synthetic.streams.openvocab import name_words
from pyvrel.data.tracklets import Tracklet
from pyvrel.data.text import (CallableTextEncoder, HashedTextEncoder, MiniLMEncoder, minilm_available, text_encoder,
                              word_vectors)
from pyvrel.models.uasan import UASAN, UASANConfig, distillation_loss, segment_inputs, union_features
from pyvrel.models.uasan.features import GRID_KEY, gt_tracklets
from pyvrel.models.uasan.task import collate, training_items

TINY = UASANConfig(visual_dim=8, text_dim=16, hidden=16, tokens=2, context=2, heads=2)
WORLD = SynthConfig(seed=0, num_videos=6, frames=(60, 90), entities=(3, 4), min_run=16, open_vocab=8)


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a, b, dim=0))


def test_hashed_encoder_is_deterministic_cached_and_compositional():
    enc = HashedTextEncoder(64)
    v = enc.encode(["walk_behind", "walk_left", "run_behind", "fly_above", "walk_behind"])
    assert v.shape == (5, 64) and v.dtype == torch.float32
    assert torch.equal(v[0], v[4]) and torch.equal(v[0], HashedTextEncoder(64).encode(["walk_behind"])[0])
    assert torch.allclose(v.norm(dim=1), torch.ones(5))
    # a name never seen anywhere lies near the names it shares words with
    assert min(_cos(v[0], v[1]), _cos(v[0], v[2])) > _cos(v[0], v[3]) + 0.2
    assert _cos(*HashedTextEncoder(64).encode(["bicycle", "motorcycle"])) > 0.2  # shared n-grams
    assert enc.encode([]).shape == (0, 64)
    with pytest.raises(TypeError, match="names: expected a sequence of non-empty strings"):
        enc.encode("dog")


def test_text_encoder_specs_callables_and_word_vectors():
    calls = []

    def tower(names):
        calls.append(list(names))
        return np.stack([[len(n), 1.0, 0.0] for n in names])

    enc = text_encoder(tower)
    assert isinstance(enc, CallableTextEncoder) and enc.dim == 3
    out = enc.encode(["dog", "cat", "dog"])
    assert out.tolist() == [[3, 1, 0], [3, 1, 0], [3, 1, 0]] and calls[-1] == ["cat", "dog"]
    enc.encode(["dog"])
    assert calls[-1] == ["cat", "dog"]  # cached: no new call
    words = text_encoder("words", 16)
    np.testing.assert_array_equal(words.encode(["red_panda"]).numpy()[0], word_vectors(["red_panda"], 16)[0])
    assert text_encoder(enc) is enc
    with pytest.raises(ValueError, match="text encoder: expected 'hashed'"):
        text_encoder("bert")
    with pytest.raises(ValueError, match=r"expected a \(1, D\) array"):
        text_encoder(lambda names: np.zeros(3))


@pytest.mark.skipif(minilm_available() is not None, reason=f"all-MiniLM-L6-v2: {minilm_available()}")
def test_minilm_encoder_runs_offline(tmp_path):
    enc = MiniLMEncoder(cache=tmp_path)
    v = enc.encode(["walk_behind", "run_behind", "sofa"])
    assert v.shape == (3, 384) and torch.allclose(v.norm(dim=1), torch.ones(3), atol=1e-4)
    assert _cos(v[0], v[1]) > _cos(v[0], v[2])


def test_open_vocab_world_split_features_and_union_regions():
    world = World(WORLD)
    split = world.split["predicates"]
    assert len(split["base"]) == 71 and len(split["novel"]) == 61
    base_words = {w for p in split["base"] for w in name_words(p)}
    assert all(set(name_words(p)) <= base_words for p in split["novel"])  # novel = new combinations
    assert len(world.split["objects"]["novel"]) == 10 and "person" in world.split["objects"]["base"]
    v = generate_video(WORLD, 0, world)
    n, T = v.features["tracklet_boxes"].shape[:2]
    assert v.features["tracklet_concept"].shape == (n, T, 8)
    assert v.features[GRID_KEY].shape == (v.annotation.frame_count, 9, 16, 8)
    # the union region of a related pair, over the relation's frames, carries its predicate's concept
    stream = next(s for s in world.streams if s.option == "open_vocab")
    tracks = {t.tid: t for t in gt_tracklets(v.annotation, v.features)}
    own, other = [], []
    for r in v.annotation.relations:
        s, o = (tracks[t] for t in (r.subject_tid, r.object_tid))
        s, o = (Tracklet(t.category, 1.0, r.begin_fid, t.boxes[r.begin_fid - t.start: r.end_fid - t.start],
                         t.features) for t in (s, o))
        u = union_features(v.features[GRID_KEY], s, o)
        own.append(float(u @ stream.concepts[r.predicate]))
        other += [float(u @ stream.concepts[p]) for p in world.vocab.predicates
                  if not set(name_words(p)) & set(name_words(r.predicate))]
    assert np.mean(own) > np.mean(other) + 0.5


def _batch(cfg: UASANConfig = TINY, N: int = 5, P: int = 6, C: int = 4) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    labels = torch.zeros(P, C)
    labels[:3, 0], labels[1, 2] = 1.0, 1.0
    return {"traj": torch.randn(N, cfg.visual_dim, generator=g), "traj_label": torch.tensor([0, 1, 2, -1, 0]),
            "pairs": torch.tensor([[0, 1], [1, 0], [2, 3], [3, 4], [4, 0], [0, 2]]),
            "union": torch.randn(P, cfg.visual_dim, generator=g), "motion": torch.randn(P, 15, generator=g),
            "labels": labels}


@pytest.mark.parametrize("variant", ["full", "A"])
def test_shapes_and_losses(variant):
    torch.manual_seed(0)
    cfg = UASANConfig(**{**TINY.__dict__, "variant": variant})
    net = UASAN(cfg)
    b = _batch(cfg)
    objects, preds = torch.randn(3, 16), torch.randn(4, 16)
    out = net.relation_logits(b["traj"], b["pairs"], b["union"], b["motion"], net.predicate_embeddings(preds))
    assert out["pair"].shape == (6, 4)
    assert ("union" in out) == (variant == "full") and (variant == "A" or out["union"].shape == (6, 4))
    assert net.trajectory_logits(b["traj"], net.object_embeddings(objects)).shape == (5, 3)
    assert net.scores(out).shape == (6, 4) and bool(((net.scores(out) > 0) & (net.scores(out) < 1)).all())
    losses = net(b, objects, preds)
    expected = {"traj", "fg", "loss"} | ({"dis", "union"} if variant == "full" else set())
    assert set(losses) == expected
    assert torch.allclose(losses["loss"], sum(v for k, v in losses.items() if k != "loss"))


def test_distillation_loss_is_zero_when_matched_and_leaves_the_teacher_fixed():
    teacher = torch.randn(3, 2, 16, requires_grad=True)
    student = teacher.detach().clone().requires_grad_(True)
    assert distillation_loss(student, teacher).item() == 0.0
    moved = student + torch.tensor([3.0] + [0.0] * 15)  # one coordinate off by 3 in every token
    loss = distillation_loss(moved, teacher)
    assert loss.item() == pytest.approx(3 / 4)  # L2 distance 3, over sqrt(16)
    loss.backward()
    assert teacher.grad is None and student.grad is not None


def test_prompt_embeddings_of_an_unseen_predicate():
    torch.manual_seed(0)
    net = UASAN(UASANConfig(visual_dim=8, text_dim=64, hidden=16, tokens=2, context=2, heads=2)).eval()
    enc = HashedTextEncoder(64)
    seen = enc.encode(["walk_left", "run_behind", "fly_above"])
    with torch.no_grad():
        pair, union = net.predicate_embeddings(enc.encode(["walk_behind"]))  # never trained on
        again, _ = net.predicate_embeddings(torch.cat([seen, enc.encode(["walk_behind"])]))
    assert pair.shape == union.shape == (1, 16) and torch.allclose(pair.norm(dim=1), torch.ones(1))
    assert torch.allclose(again[3], pair[0], atol=1e-6)  # one name's embedding does not depend on the others
    assert not torch.allclose(pair, union)  # the two branches have their own context tokens


def test_training_items_never_carry_novel_labels():
    world = World(WORLD)
    split = world.split
    segs = []
    for i in range(WORLD.num_videos):
        v = generate_video(WORLD, i, world)
        segs += segment_inputs(gt_tracklets(v.annotation, v.features), v.features[GRID_KEY],
                               v.annotation.frame_count, (1280, 720), annotation=v.annotation)
    novel = set(split["predicates"]["novel"])
    assert any(novel & labels for s in segs for labels in s.labels)  # the data do have novel relations
    items = training_items(segs, split)
    assert items and all(it["labels"].shape[1] == 71 for it in items)
    n_base_labels = sum(len(set(ls) - novel) for s in segs for ls, (i, j) in zip(s.labels, s.pairs.tolist())
                        if {s.tracklets[i].category, s.tracklets[j].category} <= set(split["objects"]["base"]))
    assert sum(int(it["labels"].sum()) for it in items) == n_base_labels
    assert all(int(it["traj_label"].max()) < 25 and int(it["traj_label"].min()) >= 0 for it in items)
    # the check itself: a base predicate of the data also listed as novel is caught
    seen = [split["predicates"]["base"][int(torch.nonzero(items[0]["labels"])[0, 1])]]  # a trained label
    both = {"objects": split["objects"], "predicates": {"base": split["predicates"]["base"],
                                                        "novel": split["predicates"]["novel"] + seen[:1]}}
    with pytest.raises(RuntimeError, match="novel category or predicate reached the training data"):
        training_items(segs, both)


def test_a_few_steps_reduce_the_loss():
    torch.manual_seed(0)
    net = UASAN(TINY)
    b, objects, preds = _batch(), torch.randn(3, 16), torch.randn(4, 16)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    first = net(b, objects, preds)["loss"].item()
    for _ in range(12):
        opt.zero_grad()
        loss = net(b, objects, preds)["loss"]
        loss.backward()
        opt.step()
    assert loss.item() < 0.6 * first


def test_collate_offsets_pairs():
    items = [{k: v[:3] if k in ("traj", "traj_label") else v[:1] for k, v in _batch().items()} for _ in range(2)]
    for it in items:
        it["pairs"] = torch.tensor([[0, 2]])
    out = collate(items)
    assert out["traj"].shape[0] == 6 and out["pairs"].tolist() == [[0, 2], [3, 5]]


def test_train_detect_and_evaluate_through_the_registry(tmp_path):
    from pyvrel.cli import main
    from pyvrel.data import read_predictions

    out = tmp_path / "run"
    world = ["--set", "model.world.num_videos=6", "--set", "model.world.frames=[60,90]", "--set", "model.hidden=16",
             "--set", "model.tokens=2"]
    assert main(["train", "--model", "uasan", "--data", "synthetic", "--out", str(out), "--set", "train.epochs=1",
                 "--set", "train.progress=false", "--set", "train.batch_size=4", *world]) == 0
    pred = tmp_path / "pred.json"
    assert main(["detect", "--checkpoint", str(out / "checkpoints" / "last.pt"), "--data", "synthetic",
                 "--out", str(pred)]) == 0
    results = read_predictions(pred).results
    assert results and all(r.triplet[0] in World(WORLD).vocab.objects for rs in results.values() for r in rs)


def test_union_modes_and_a_written_world_needs_its_split(tmp_path):
    import json

    from pyvrel.cli import main
    from pyvrel.engine import ConfigError
    from pyvrel.models.uasan.task import build_task

    v = generate_video(WORLD, 1)
    tracks = gt_tracklets(v.annotation, v.features)
    box = segment_inputs(tracks, v.features[GRID_KEY], v.annotation.frame_count, (1280, 720))
    seg = segment_inputs(tracks, v.features[GRID_KEY], v.annotation.frame_count, (1280, 720), union="segment")
    assert len(box) == len(seg) and len(box[0].pairs) > 1
    assert torch.allclose(torch.from_numpy(seg[0].union), torch.from_numpy(box[0].union.mean(0)).expand_as(
        torch.from_numpy(seg[0].union)), atol=1e-6)  # the code's: one vector per segment
    with pytest.raises(ValueError, match="union: expected 'box'"):
        segment_inputs(tracks, v.features[GRID_KEY], v.annotation.frame_count, (1280, 720), union="pair")
    out = tmp_path / "world"
    assert main(["synth", str(out), "--videos", "5", "--open-vocab", "8"]) == 0
    meta = json.loads((out / "world.json").read_text())
    assert meta["config"]["open_vocab"] == 8 and meta["split"] == World(SynthConfig(num_videos=5, open_vocab=8)).split
    small = {"hidden": 16, "tokens": 2}
    with pytest.raises(ConfigError, match="give the base/novel split") as e:
        build_task(small, str(out))
    assert e.value.key == "split"
    task = build_task({**small, "split": meta["split"], "eval_split": None}, str(out))
    assert len(task.train_set) > 0 and task.model.net.cfg.visual_dim == 8
