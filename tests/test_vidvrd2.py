"""VidVRD-II: segments and pair features, the classifier and its head interface, losses, parameter groups."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from pyvrel.data.segments import cut_tracklets, ordered_pairs, relative_position, segment_spans, tracklet_viou
from pyvrel.data.tracklets import Tracklet
from pyvrel.engine import param_groups
from pyvrel.models.vidvrd2 import (IterativeClassifier, PairBatch, VidVRD2Config, binary_focal_loss,
                                   softmax_focal_loss)


def _track(start, boxes, D=4, category="dog"):
    boxes = np.asarray(boxes, np.float64)
    return Tracklet(category, 1.0, start, boxes, np.ones((len(boxes), D), np.float32))


def _cfg(**kw):
    return VidVRD2Config(**{"feature_dim": 6, "num_objects": 3, "num_predicates": 4, "hidden": 16, "dropout": 0.0,
                            **kw})


def _batch(cfg, B=5, positives=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    p = (torch.rand(B, cfg.num_predicates, generator=g) < 0.5).float() if positives else torch.zeros(B, cfg.num_predicates)
    return PairBatch(torch.randn(B, cfg.feature_dim, generator=g), torch.randn(B, cfg.feature_dim, generator=g),
                     torch.randn(B, 12, generator=g), torch.randint(0, cfg.num_objects + 1, (B,), generator=g),
                     torch.randint(0, cfg.num_objects + 1, (B,), generator=g), p)


def test_segments_and_pairs():
    assert segment_spans(60) == [(0, 30), (15, 45), (30, 60)]
    assert ordered_pairs(3).tolist() == [[0, 1], [0, 2], [1, 0], [1, 2], [2, 0], [2, 1]]
    assert ordered_pairs(1).shape == (0, 2)
    t = _track(10, [[0, 0, 10, 10]] * 30)
    cut = cut_tracklets([t, _track(0, [[0, 0, 5, 5]] * 16)], 15, 45)
    assert [(c.start, len(c.boxes), len(c.features)) for c in cut] == [(15, 25, 25), (15, 1, 1)][:1]
    assert tracklet_viou(cut, [t])[0, 0] == pytest.approx(25 / 30)


def test_relative_position_by_hand():
    # frame 200 x 100; subject box centre (0.25, 0.5) size (0.1, 0.2); object centre (0.5, 0.5) size (0.2, 0.4)
    s = _track(3, [[40, 40, 60, 60], [40, 40, 60, 60]])
    o = _track(1, [[80, 30, 120, 70]] * 6)
    f = relative_position([s, o], np.array([[0, 1]]), 200, 100, length=30)[0]
    first = [(0.25 - 0.5) / 0.2, 0.0, math.log(0.1 / 0.2), math.log(0.2 / 0.4), math.log(0.02 / 0.08), (3 - 1) / 30]
    last = first[:5] + [(5 - 7) / 30]
    np.testing.assert_allclose(f, first + last, rtol=1e-6)
    with pytest.raises(ValueError, match="tracklet 1"):
        relative_position([s, _track(0, [[5, 5, 5, 9]])], np.array([[0, 1]]), 200, 100)


def test_focal_losses_by_hand():
    logits, target = torch.tensor([[0.0, math.log(3.0)]]), torch.tensor([1])
    assert float(softmax_focal_loss(logits, target, 2.0)) == pytest.approx(-(0.25 ** 2) * math.log(0.75))
    x, y = torch.tensor([[0.0, 2.0]]), torch.tensor([[1.0, 0.0]])
    p = 1 / (1 + math.exp(-2.0))
    want = (0.5 ** 2 * math.log(2) + p ** 2 * -math.log(1 - p)) / 2
    assert float(binary_focal_loss(x, y, 2.0)) == pytest.approx(want, rel=1e-6)


def test_classifier_shapes_losses_and_bad_inputs():
    cfg = _cfg()
    model = IterativeClassifier(cfg)
    out = model(_batch(cfg))
    assert set(out) == {"loss", "subject", "object", "predicate"}
    assert all(v.ndim == 0 and torch.isfinite(v) for v in out.values())
    none = model(_batch(cfg, positives=False))  # no positive predicate in the batch
    assert torch.isfinite(none["loss"])
    empty = model(_batch(cfg, B=0))
    assert float(empty["loss"].detach()) == 0.0
    s, o, p = model.logits(PairBatch(*_batch(cfg)[:3]))
    assert s.shape == o.shape == (5, 4) and p.shape == (5, 4)
    ps, po, pp = model.iterate(s, o, p, 3)
    assert torch.allclose(ps.sum(-1), torch.ones(5)) and ((pp > 0) & (pp < 1)).all()
    bad = _batch(cfg)._replace(position=torch.zeros(5, 11))
    with pytest.raises(ValueError, match="position must have shape"):
        model(bad)
    with pytest.raises(ValueError, match=r"subject_labels must lie in \[0, 3\]"):
        model(_batch(cfg)._replace(subject_labels=torch.full((5,), 4)))


def test_preference_tables_have_their_own_weight_decay():
    model = IterativeClassifier(_cfg(preference_weight_decay=0.01))
    groups = {g["name"]: g for g in param_groups(model, 5e-4)}
    assert groups["weight_decay=0.01"]["weight_decay"] == 0.01
    assert {id(p) for p in groups["weight_decay=0.01"]["params"]} == {id(p) for p in model.preference.parameters()}
    assert groups["decay"]["weight_decay"] == 5e-4
    bad = IterativeClassifier(_cfg())
    bad.preference.own_weight_decay = lambda: {"nope": 0.1}
    with pytest.raises(ValueError, match=r"'preference'.own_weight_decay\(\) names parameters it does not have"):
        param_groups(bad, 5e-4)


def test_iterate_uses_the_tables():
    cfg = _cfg()
    model = IterativeClassifier(cfg)
    s, o, p = torch.zeros(1, 4), torch.zeros(1, 4), torch.zeros(1, 4)
    with torch.no_grad():
        model.preference.so2p.zero_()
        model.preference.so2p[:, 2] = 8.0  # every subject/object pair prefers predicate 2
    _, _, pp = model.iterate(s, o, p, 1)
    assert float(pp[0, 2]) == pytest.approx(1 / (1 + math.exp(-8.0)), rel=1e-5)  # s ⊗ o sums to 1
    assert float(pp[0, 0]) == pytest.approx(0.5)
    _, _, p0 = model.iterate(s, o, p, 0)
    assert float(p0[0, 2]) == pytest.approx(0.5)


class _ScaledHead(nn.Module):
    """A head as DLL's plug in: own logits, an extra loss."""

    def __init__(self, hidden, P):
        super().__init__()
        self.linear = nn.Linear(hidden, P)
        self.calls = []

    def forward(self, pair_features, subject_logits, object_logits, predicate_bias, predicate_targets=None):
        self.calls.append((pair_features.shape, subject_logits.shape, predicate_targets is None))
        extra = {} if predicate_targets is None else {"extra": pair_features.pow(2).mean()}
        return self.linear(pair_features) + predicate_bias, extra


def test_replaceable_predicate_head():
    cfg = _cfg()
    head = _ScaledHead(cfg.hidden, cfg.num_predicates)
    model = IterativeClassifier(cfg, predicate_head=head)
    out = model(_batch(cfg))
    assert "extra" in out and float(out["loss"].detach()) == pytest.approx(
        float((out["subject"] + out["object"] + out["predicate"] + out["extra"]).detach()), rel=1e-6)
    model.logits(PairBatch(*_batch(cfg)[:3]))
    assert head.calls == [((5, 16), (5, 4), False), ((5, 16), (5, 4), True)]


def test_a_few_steps_reduce_the_loss():
    torch.manual_seed(0)
    cfg = _cfg()
    model = IterativeClassifier(cfg)
    batch = _batch(cfg, B=16)
    opt = torch.optim.AdamW(param_groups(model, 5e-4), lr=1e-2)
    first = float(model(batch)["loss"].detach())
    for _ in range(30):
        opt.zero_grad()
        model(batch)["loss"].backward()
        opt.step()
    assert float(model(batch)["loss"].detach()) < 0.5 * first
