"""DLL (pyvrel.models.dll): pattern tables, gradient reversal, PDL and KDL losses on hand-worked inputs."""

import math

import pytest
import torch

from pyvrel.data.synthetic import SynthConfig, generate
from pyvrel.models.dll.kdl import KnowledgeDecoupling, head_predicates
from pyvrel.models.dll.patterns import (PatternTable, PatternTableError, build_pattern_table, pattern_table,
                                        read_pattern_table)
from pyvrel.models.dll.pdl import PatternDecoupling, PatternMapping, bernoulli_kl, grad_reverse

# hand-made: actions (sit, walk), spatials (left, past)
PREDS = ("walk_left", "walk_past", "sit_left", "left", "walk")


def test_build_pattern_table_splits_names():
    t = build_pattern_table(PREDS, ("left", "past", "next_to"))
    assert t.actions == ("sit", "walk") and t.spatials == ("left", "past")
    assert t.action_of == (1, 1, 0, -1, 1) and t.spatial_of == (0, 1, 0, 0, -1)
    assert t.patterns("left") == (None, "left") and t.patterns("walk") == ("walk", None)
    assert build_pattern_table(["stand_next_to", "fall_off"], ("next_to", "to")).patterns("stand_next_to") == \
        ("stand", "next_to")


def test_shipped_tables_match_paper_counts():
    vrd = pattern_table("vidvrd")
    assert (len(vrd.actions), len(vrd.spatials), len(vrd.predicates)) == (28, 12, 132)  # the paper's 28 / 12
    assert vrd.patterns("taller") == ("taller", None) and vrd.patterns("fall_off") == ("fall_off", None)
    assert vrd.patterns("sit_inside") == ("sit", "inside")
    vidor = pattern_table("vidor")
    assert (len(vidor.actions), len(vidor.spatials)) == (42, 8) and vidor.counts()["both"] == 0


def test_mapping_and_inverse_by_hand():
    t = build_pattern_table(PREDS, ("left", "past"))
    m = PatternMapping(t, ratio=0.25)
    za, zs = torch.tensor([[1.0, 2.0]]), torch.tensor([[4.0, 8.0]])  # sit, walk | left, past
    p = m(za, zs)
    # walk_left .25*2+.75*4, walk_past .25*2+.75*8, sit_left .25*1+.75*4, left 4, walk 2
    assert torch.allclose(p, torch.tensor([[3.5, 6.5, 3.25, 4.0, 2.0]]))
    ca, cs = m.inverse(p)
    # sit: mean(sit_left); walk: mean(walk_left, walk_past, walk); left: mean(walk_left, sit_left, left); past
    assert torch.allclose(ca, torch.tensor([[3.25, 4.0]])) and torch.allclose(cs, torch.tensor([[3.5833333, 6.5]]))
    za2, zs2 = m.calibrate(za, zs, theta=0.5, steps=1)
    assert torch.allclose(za2, 0.5 * za + 0.5 * ca) and torch.allclose(zs2, 0.5 * zs + 0.5 * cs)
    assert torch.equal(m.calibrate(za, zs, theta=0.5, steps=0)[0], za)


def test_gradient_reversal_flips_and_scales():
    x = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = grad_reverse(x, 0.3)
    assert torch.equal(y, x)
    (y * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert torch.allclose(x.grad, torch.tensor([-0.3, -0.6, -0.9]))


def test_bernoulli_kl_by_hand():
    # target σ(log 3) = .75, input σ(0) = .5: .75 ln 1.5 + .25 ln .5, averaged over the 2 logits (same)
    want = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    got = bernoulli_kl(torch.zeros(1, 2), torch.full((1, 2), math.log(3.0)))
    assert abs(got.item() - want) < 1e-6
    assert bernoulli_kl(torch.zeros(0, 2), torch.zeros(0, 2)).item() == 0.0


def test_pdl_loss_by_hand_and_adversarial_gradient():
    t = build_pattern_table(PREDS, ("left", "past"))
    pdl = PatternDecoupling(4, t, dim=3, adversarial=0.5, grl=1.0, theta=0.0, steps=0)
    for mod in (pdl.action_to_spatial, pdl.spatial_to_action):  # mapping nets: zero -> the wrong logits are 0
        torch.nn.init.zeros_(mod.weight)
        torch.nn.init.zeros_(mod.bias)
    pf = torch.randn(2, 4)
    logits, losses = pdl(pf)
    za, zs, _, _ = pdl.pattern_logits(pf)
    want = 0.5 * (bernoulli_kl(torch.zeros_like(zs), zs) + bernoulli_kl(torch.zeros_like(za), za))
    assert torch.allclose(losses["pdl"], want) and torch.allclose(logits, pdl.mapping(za, zs))
    # the adversarial loss reaches the feature extractors only through the reversal: compare with grl = -1
    for mod in (pdl.action_to_spatial, pdl.spatial_to_action):
        torch.nn.init.normal_(mod.weight)
    pdl(pf)[1]["pdl"].backward()
    g = pdl.action_feature[0].weight.grad.clone()
    pdl.zero_grad()
    pdl.grl = -1.0
    pdl(pf)[1]["pdl"].backward()
    assert g.abs().sum() > 0 and torch.allclose(pdl.action_feature[0].weight.grad, -g)
    pdl.eval()
    assert pdl(pf)[1] == {}


def test_head_predicates_and_kdl_loss_by_hand():
    t = build_pattern_table(("walk_left", "left", "walk"), ("left",))  # tail walk_left shares left and walk
    freq = [1, 10, 5]
    sp, act = head_predicates(t, freq)
    assert sp == [[1], [1], []] and act == [[2], [], [2]]
    kdl = KnowledgeDecoupling(t, freq, alpha=0.5, alpha_growth=0.0, gamma=0.9, epoch_steps=1)
    with torch.no_grad():
        kdl.correlation.copy_(torch.tensor([[0.0, 1.0, 2.0], [3.0, 0.0, 1.0], [0.0, 2.0, 0.0]]))
    logits = torch.tensor([[0.0, 1.0, -1.0], [2.0, 2.0, 2.0]])
    targets = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    out = kdl(logits, targets)
    # positive (0, walk_left): p_res = log_softmax([1, -1]); q = (C[left] + C[walk]) / 2 = [1.5, 1, .5] -> [1, .5]
    p = torch.log_softmax(torch.tensor([1.0, -1.0]), 0)
    q = torch.log_softmax(torch.tensor([1.0, 0.5]), 0)
    tail = torch.log_softmax(torch.tensor([1.0, 2.0]), 0)
    nt = (q.exp() * (q - p)).sum() / 2  # averaged over the P-1 = 2 entries of the one positive
    cm = (p.exp() * (p - tail)).sum() / 2
    assert torch.allclose(out["kdl_nt"], 0.5 * nt) and torch.allclose(out["kdl_cm"], cm)  # step 0: γ = 1
    assert int(kdl.step) == 1 and kdl.gamma() == pytest.approx(0.9)


def test_kdl_without_positives_is_finite_and_zero():
    t = build_pattern_table(PREDS, ("left", "past"))
    kdl = KnowledgeDecoupling(t, [5, 4, 3, 2, 1])
    logits = torch.randn(3, 5, requires_grad=True)
    out = kdl(logits, torch.zeros(3, 5))
    total = out["kdl_cm"] + out["kdl_nt"]
    assert torch.isfinite(total) and total.item() == 0.0
    total.backward()  # still part of the graph
    assert kdl(torch.zeros(0, 5), torch.zeros(0, 5))["kdl_nt"].item() == 0.0


def test_correlation_matrix_learns_the_non_target_distribution():
    t = build_pattern_table(PREDS, ("left", "past"))
    torch.manual_seed(0)
    kdl = KnowledgeDecoupling(t, [5, 4, 3, 2, 1])
    logits = torch.tensor([[0.0, 3.0, 1.0, -1.0, 0.5]]).repeat(4, 1)
    targets = torch.zeros(4, 5)
    targets[:, 0] = 1
    first = None
    for _ in range(200):  # plain gradient descent on C (torch.optim's first use is slow to import)
        loss = kdl(logits, targets)["kdl_cm"]
        first = loss.item() if first is None else first
        kdl.correlation.grad = None
        loss.backward()
        with torch.no_grad():
            kdl.correlation -= 4.0 * kdl.correlation.grad
    assert loss.item() < 0.01 * first
    row = torch.softmax(kdl.correlation.detach()[0, 1:], 0)
    assert torch.allclose(row, torch.softmax(logits[0, 1:], 0), atol=0.02)


def test_bad_tables_give_clear_errors(tmp_path):
    with pytest.raises(PatternTableError, match="'walk_left' and 'walk_left2' have the same patterns"):
        PatternTable(("walk_left", "walk_left2"), ("walk",), ("left",), (0, 0), (0, 0))
    with pytest.raises(PatternTableError, match="'x' has neither"):
        PatternTable(("x",), ("walk",), (), (-1,), (-1,))
    with pytest.raises(PatternTableError, match="used by no predicate: sit"):
        PatternTable(("walk",), ("sit", "walk"), (), (1,), (-1,))
    f = tmp_path / "relation.txt"
    f.write_text("walk_left walk left\n# comment\nleft - left\n")
    assert read_pattern_table(f, ["left", "walk_left"]).patterns("walk_left") == ("walk", "left")
    with pytest.raises(PatternTableError, match=r"relation.txt: no patterns for 1 predicate.*'walk'"):
        read_pattern_table(f, ["left", "walk_left", "walk"])
    with pytest.raises(PatternTableError, match="not found"):
        read_pattern_table(tmp_path / "missing.txt", ["left"])
    f.write_text("walk_left walk\n")
    with pytest.raises(PatternTableError, match=r"relation.txt:1: expected 'predicate action spatial'"):
        read_pattern_table(f, ["walk_left"])
    with pytest.raises(PatternTableError, match="missing 'walk'"):
        build_pattern_table(["left"], ("left",)).check_vocabulary(["left", "walk"])


def test_synthetic_predicate_tail_thins_training_labels_only():
    base = dict(num_videos=12, frames=(60, 120), entities=(3, 4), min_run=10, features=False)
    plain = list(generate(SynthConfig(**base)))
    tail = list(generate(SynthConfig(**base, predicate_tail=3.0)))
    n_train = [sum(len(v.annotation.relations) for v in vs if v.split == "train") for vs in (plain, tail)]
    assert n_train[1] < n_train[0]
    key = lambda r: (r.subject_tid, r.object_tid, r.predicate, r.begin_fid, r.end_fid)  # noqa: E731
    boxes = lambda v: [[(fb.tid, fb.bbox) for fb in frame] for frame in v.annotation.trajectories]  # noqa: E731
    for a, b in zip(plain, tail):
        ra, rb = list(map(key, a.annotation.relations)), list(map(key, b.annotation.relations))
        assert (ra == rb) if a.split == "test" else set(rb) <= set(ra)
        assert boxes(a) == boxes(b)


@pytest.mark.parametrize("variant", ["base", "pdl", "kdl", "dll"])
def test_head_variants_follow_the_interface(variant):
    from pyvrel.models.dll.head import DLLConfig, DLLHead

    t = build_pattern_table(PREDS, ("left", "past"))
    torch.manual_seed(0)
    head = DLLHead(6, t, [5, 4, 3, 2, 1], DLLConfig(variant=variant, pattern_dim=4), epoch_steps=2)
    pf, bias = torch.randn(3, 6), torch.randn(3, 5)
    s, o = torch.randn(3, 4), torch.randn(3, 4)
    targets = torch.zeros(3, 5)
    targets[0, 1] = 1
    logits, extra = head(pf, s, o, bias, targets)
    assert logits.shape == (3, 5)
    want = {"base": set(), "pdl": {"pdl"}, "kdl": {"kdl_cm", "kdl_nt"}, "dll": {"pdl", "kdl_cm", "kdl_nt"}}[variant]
    assert set(extra) == want
    sum(extra.values(), logits.sum()).backward()
    # no positives: finite
    _, extra = head(pf, s, o, bias, torch.zeros(3, 5))
    assert all(torch.isfinite(v) for v in extra.values())
    head.eval()
    with torch.no_grad():
        eval_logits, extra = head(pf, s, o, bias)
    assert extra == {} and torch.allclose(eval_logits - bias, head(pf, s, o, torch.zeros(3, 5))[0])
    with pytest.raises(ValueError, match="variant: expected one of base, pdl, kdl, dll"):
        DLLConfig(variant="both")


def test_per_predicate_recall_is_what_mean_recall_averages():
    import numpy as np

    from pyvrel.data import Relation
    from pyvrel.eval import evaluate_relations

    box = np.tile([[0.0, 0.0, 10.0, 10.0]], (5, 1))
    far = np.tile([[50.0, 50.0, 60.0, 60.0]], (5, 1))
    gt = {"v": [Relation(("dog", p, "cat"), (0, 5), box, far, None) for p in ("walk_left", "left", "left")]}
    pred = {"v": [Relation(("dog", "left", "cat"), (0, 5), box, far, 0.9)]}
    r = evaluate_relations(gt, pred, mean_recall=True, per_predicate=True)
    assert r["per_predicate"] == {"walk_left": {"n_gt": 1, "R@50": 0.0, "R@100": 0.0},
                                  "left": {"n_gt": 2, "R@50": 0.5, "R@100": 0.5}}
    assert r["RelDet"]["mR@50"] == pytest.approx(0.25) and "per_predicate" not in evaluate_relations(gt, pred)


def _tiny_classifier(variant):
    from pyvrel.models.dll.head import DLLConfig, DLLHead
    from pyvrel.models.vidvrd2.config import VidVRD2Config
    from pyvrel.models.vidvrd2.model import IterativeClassifier

    t = build_pattern_table(PREDS, ("left", "past"))
    cfg = VidVRD2Config(feature_dim=4, num_objects=3, num_predicates=5, hidden=8)
    head = DLLHead(8, t, [5, 4, 3, 2, 1], DLLConfig(variant=variant, pattern_dim=6))
    return IterativeClassifier(cfg, head)


def _pairs(n, positives):
    from pyvrel.models.vidvrd2.model import PairBatch

    g = torch.Generator().manual_seed(0)
    targets = torch.zeros(n, 5)
    targets[:positives, 0] = 1
    return PairBatch(torch.randn(n, 4, generator=g), torch.randn(n, 4, generator=g), torch.randn(n, 12, generator=g),
                     torch.zeros(n, dtype=torch.long), torch.ones(n, dtype=torch.long), targets)


def test_dll_on_vidvrd2_trains_and_each_parameter_is_stepped_once():
    from pyvrel.engine.optim import param_groups

    model = _tiny_classifier("dll")
    groups = param_groups(model, 5e-4)
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len([p for p in model.parameters() if p.requires_grad])  # the code's bug
    corr = [g for g in groups if any(p is model.predicate_head.kdl.correlation for p in g["params"])]
    assert corr[0]["weight_decay"] == 0.0
    opt = torch.optim.AdamW(groups, lr=1e-2)
    before = model.predicate_head.kdl.correlation.detach().clone()
    for positives in (3, 0):  # a batch without positives: finite loss, no crash
        out = model(_pairs(6, positives))
        assert torch.isfinite(out["loss"]) and {"pdl", "kdl_cm", "kdl_nt"} <= set(out)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    assert not torch.equal(before, model.predicate_head.kdl.correlation)
    model.eval()
    s, o, p = model.logits(_pairs(2, 0)._replace(subject_labels=None, object_labels=None, predicate_targets=None))
    assert p.shape == (2, 5) and torch.isfinite(p).all()  # inference runs the head (the code's was broken)
