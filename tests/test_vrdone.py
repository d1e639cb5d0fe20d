"""VrdONE: inputs (θ_r, θ_a, padding, targets), model shapes at the presets, masks, losses,
matching, a few optimisation steps, torch.compile, inference to the official JSON, baseline."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from pyvrel.data import FrameBox, ObjectInfo, RelationInstance, VideoAnnotation
from pyvrel.data.tracklets import Tracklet, build_pairs, deduplicate
from pyvrel.models.baselines import FrequencyPrior
from pyvrel.models.vrdone import (
    SetCriterion,
    Target,
    VrdONEConfig,
    absolute_position,
    build_vrdone,
    fuzzy_mask,
    hungarian_match,
    mask_spans,
    match_costs,
    pad_batch,
    pair_samples,
    pair_tensor,
    predict_video,
    relative_position,
    segment_mask,
    segment_to_grid,
    sigmoid_focal,
    truncate,
)
from pyvrel.models.vrdone.model import SOSLayer


def tiny(base: VrdONEConfig, **kw) -> VrdONEConfig:
    """A preset's structure (arch, window, heads, strides, queries, classes) at small widths."""
    small = dict(visual_dim=6, clip_dim=4 if base.clip_dim else 0, embd_dim=16, fpn_dim=8, dec_dim=8, dec_hidden=16)
    return replace(base, **{**small, **kw})


# ---- inputs ---------------------------------------------------------------------------------------


def test_relative_position_hand_computed():
    s = np.array([[10, 20, 30, 60]], float)
    o = np.array([[40, 40, 80, 100]], float)
    # s: centre (20, 40), w 20, h 40; o: centre (60, 70), w 40, h 60
    want = [(20 - 60) / 60, (40 - 70) / 70, math.log(20 / 40), math.log(40 / 60), math.log(800 / 2400)]
    np.testing.assert_allclose(relative_position(s, o, 1000, 1000)[0], want, rtol=1e-6)
    # clamping to the image: x2 = 120 -> 99 in a 100-wide image, x1 = -10 -> 0
    s2 = np.array([[-10, 0, 120, 50]], float)
    o2 = np.array([[0, 0, 50, 50]], float)
    got = relative_position(s2, o2, 100, 100)[0]
    np.testing.assert_allclose(got[0], (49.5 - 25) / 25, rtol=1e-6)
    np.testing.assert_allclose(got[2], math.log(99 / 50), rtol=1e-6)


def test_absolute_position_hand_computed():
    boxes = np.array([[0, 0, 10, 20], [10, 0, 20, 20], [30, 0, 40, 40]], float)
    a = absolute_position(boxes, 100, 200)
    cx = [0.05, 0.15, 0.35]
    dcx = [0.1 - (0.2 - 0.1), 0.1, 0.2]  # linear extrapolation for t = 0
    h = [0.1, 0.1, 0.2]
    dh = [0.0 - (0.1 - 0.0), 0.0, 0.1]
    np.testing.assert_allclose(a[:, 0], cx, atol=1e-7)
    np.testing.assert_allclose(a[:, 1], dcx, atol=1e-7)
    np.testing.assert_allclose(a[:, 2], [0.05, 0.05, 0.1], atol=1e-7)
    np.testing.assert_allclose(a[:, 4], [0.1] * 3, atol=1e-7)
    np.testing.assert_allclose(a[:, 6], h, atol=1e-7)
    np.testing.assert_allclose(a[:, 7], dh, atol=1e-7)
    two = absolute_position(boxes[:2], 100, 200)
    np.testing.assert_allclose(two[:, 1], [0.1, 0.1], atol=1e-7)  # L == 2: d[0] = d[1]
    one = absolute_position(boxes[:1], 100, 200)
    np.testing.assert_allclose(one[0, 1::2], 0.0)
    with pytest.raises(ValueError, match=r"\(L, 4\)"):
        absolute_position(np.zeros((3, 3)), 1, 1)


def test_pair_tensor_order_stride_offset():
    L, D = 11, 3
    sv, ov = np.arange(L * D).reshape(L, D).astype(np.float32), -np.ones((L, D), np.float32)
    sb = np.tile([10.0, 10, 50, 60], (L, 1)) + np.arange(L)[:, None]
    ob = np.tile([20.0, 30, 70, 90], (L, 1))
    x = pair_tensor(sv, ov, sb, ob, 640, 360, stride=4, offset=1)
    assert x.shape == (2 * D + 5 + 16, 3)  # frames 1, 5, 9
    np.testing.assert_array_equal(x[:D].T.numpy(), sv[1::4])
    np.testing.assert_array_equal(x[D:2 * D].numpy(), -1)
    np.testing.assert_allclose(x[2 * D: 2 * D + 5].T.numpy(), relative_position(sb[1::4], ob[1::4], 640, 360))
    np.testing.assert_allclose(x[2 * D + 5: 2 * D + 13].T.numpy(), absolute_position(sb[1::4], 640, 360))
    np.testing.assert_allclose(x[2 * D + 13:].T.numpy(), absolute_position(ob[1::4], 640, 360))
    with pytest.raises(ValueError, match="obj_vis"):
        pair_tensor(sv, ov[:3], sb, ob, 640, 360)


def test_pad_batch_lengths():
    feats = [torch.ones(4, 5), torch.ones(4, 30)]
    x, m = pad_batch(feats, 32, 12)
    assert x.shape == (2, 4, 32) and m.shape == (2, 1, 32) and m.dtype == torch.bool
    assert m.sum().item() == 35 and x[0, :, 5:].abs().sum() == 0
    x, m = pad_batch([torch.ones(4, 70)], 32, 12)
    assert x.shape[-1] == 72  # a multiple of the division factor


def test_targets_grid_fuzzy_truncate():
    assert segment_to_grid(10, 30, 2, 1, 4) == (2, 7)  # ceil(7/4), ceil(27/4)
    assert segment_mask(2, 5, 8).tolist() == [0, 0, 1, 1, 1, 0, 0, 0]
    f = fuzzy_mask(10, 20, 18, 24, 0.85)
    c, n = 14.5, 10
    for t in range(24):
        d = abs(t - c)
        want = 1.0 if d < n / 2 * 0.85 else (math.sqrt(max(math.cos(math.pi * (t - c) / (n / 0.85)), 0))
                                             if d < n / 2 / 0.85 else 0.0)
        want = 0.0 if t >= 18 else want
        assert f[t].item() == pytest.approx(want, abs=1e-6), t
    rng = np.random.default_rng(0)
    assert truncate(10, [(0, 5)], 16, rng) == (0, [0])
    start, kept = truncate(100, [(0, 10), (80, 100)], 32, rng)
    assert 0 <= start <= 68 and kept
    for i in kept:
        lo, hi = [(0, 10), (80, 100)][i]
        assert min(hi, start + 32) - max(lo, start) >= 0.5 * (hi - lo)


# ---- config and shapes ----------------------------------------------------------------------------


def test_presets_values():
    vidor, vidvrd = VrdONEConfig.vidor(), VrdONEConfig.vidvrd()
    assert vidor.in_channels == 2069 and VrdONEConfig.vidor(clip_dim=512).in_channels == 3093
    assert vidor.max_div_factor == 64 and vidvrd.max_div_factor == 48
    assert (vidvrd.max_seq_len, vidvrd.window, vidvrd.n_head, vidvrd.topk, vidvrd.feat_stride) == (96, 7, 4, 8, 1)
    assert vidvrd.with_fuzzy and not vidor.with_fuzzy and vidor.topk == 6
    with pytest.raises(ValueError, match="division factor"):
        VrdONEConfig.vidor(max_seq_len=100)


@pytest.mark.parametrize("preset", ["vidor", "vidvrd", "vidor_x", "synthetic"])
def test_full_preset_module_tree(preset):
    cfg = VrdONEConfig.vidor(clip_dim=512, num_queries=10) if preset == "vidor_x" else getattr(VrdONEConfig, preset)()
    m = build_vrdone(cfg)
    assert len(m.backbone.stem) == cfg.arch[1] and len(m.backbone.branch) == cfg.arch[2]
    assert m.decoder.class_embed.out_channels == cfg.num_classes + 1
    assert tuple(m.decoder.query_embed.weight.shape) == (cfg.num_queries, cfg.dec_dim)
    assert m.backbone.vis_embd.convs[0].conv.in_channels == cfg.visual_dim
    assert hasattr(m.backbone, "clip_embd") == (preset == "vidor_x")
    torch.testing.assert_close(m.decoder.class_embed.bias, torch.full((cfg.num_classes + 1,), -math.log(99.0)))


@pytest.mark.parametrize("preset", ["vidor", "vidvrd", "vidor_x", "synthetic"])
def test_shapes_through_every_module(preset):
    base = VrdONEConfig.vidor(clip_dim=512, num_queries=10) if preset == "vidor_x" else getattr(VrdONEConfig, preset)()
    cfg = tiny(base)
    m = build_vrdone(cfg).eval()
    T = cfg.max_seq_len
    x = torch.randn(2, cfg.in_channels, T)
    mask = torch.zeros(2, 1, T, dtype=torch.bool)
    mask[0, 0, :T] = True
    mask[1, 0, : T // 3] = True
    feats, masks = m.backbone(x, mask)
    assert [f.shape[-1] for f in feats] == [T // 2 ** i for i in range(cfg.num_levels)]
    assert all(f.shape[:2] == (2, cfg.embd_dim) for f in feats)
    mf = m.neck(feats, masks)
    assert mf.shape == (2, cfg.fpn_dim, T)
    out = m(x, mask)
    assert out["pred_logits"].shape == (2, cfg.num_queries, cfg.num_classes + 1)
    assert out["pred_masks"].shape == (2, cfg.num_queries, T)
    assert len(out["aux_outputs"]) == cfg.dec_layers - 1
    assert (out["pred_masks"][1, :, T // 3:] == -10).all()
    with pytest.raises(ValueError, match="channels"):
        m(torch.randn(1, cfg.in_channels + 1, T), mask[:1])
    with pytest.raises(ValueError, match="multiple"):
        m(x[..., :T - 4], mask[..., :T - 4])


@pytest.mark.parametrize("sos_window,cross_window,double", [(None, None, True), (5, 3, True), (None, None, False)])
def test_padding_never_changes_valid_outputs(sos_window, cross_window, double):
    cfg = tiny(VrdONEConfig.synthetic(max_seq_len=32), sos_window=sos_window, dec_cross_window=cross_window,
               sos_double_residual=double)
    torch.manual_seed(0)
    m = build_vrdone(cfg).eval()
    for p in m.parameters():  # move every parameter off its (often zero) init
        p.data.add_(0.05 * torch.randn_like(p))
    L = 21
    seq = torch.randn(cfg.in_channels, L)
    other = torch.randn(cfg.in_channels, 64)
    x1, m1 = pad_batch([seq], 32, cfg.max_div_factor)
    x2, m2 = pad_batch([seq, other], 32, cfg.max_div_factor)  # padded to 64, next to a longer pair
    x2[0, :, L:] = 0
    o1, o2 = m(x1, m1), m(x2, m2)
    torch.testing.assert_close(o1["pred_logits"][0], o2["pred_logits"][0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(o1["pred_masks"][0, :, :L], o2["pred_masks"][0, :, :L], atol=1e-5, rtol=1e-4)
    # garbage in the padded positions changes nothing either
    x3 = x1.clone()
    x3[0, :, L:] = 100 * torch.randn(cfg.in_channels, 32 - L)
    o3 = m(x3, m1)
    torch.testing.assert_close(o1["pred_masks"][0, :, :L], o3["pred_masks"][0, :, :L])


def test_sos_layer_returns_its_residual_and_quirk_option():
    layer = SOSLayer(8, 2, 0.0, None)
    for attn in (layer.self_attn, layer.cross_attn):
        torch.nn.init.zeros_(attn.proj.weight)
    tgt, mem = torch.randn(1, 8, 12), torch.randn(1, 8, 12)
    mask = torch.ones(1, 1, 12, dtype=torch.bool)
    torch.testing.assert_close(layer(tgt, mem, mask), tgt)  # Δ = 0 -> the layer returns tgt itself
    a = build_vrdone(tiny(VrdONEConfig.synthetic(max_seq_len=32))).eval()
    b = build_vrdone(tiny(VrdONEConfig.synthetic(max_seq_len=32), sos_double_residual=False)).eval()
    b.load_state_dict(a.state_dict())
    x, m = torch.randn(1, a.cfg.in_channels, 32), torch.ones(1, 1, 32, dtype=torch.bool)
    assert not torch.allclose(a.backbone(x, m)[0][0], b.backbone(x, m)[0][0])


# ---- matching and losses --------------------------------------------------------------------------


def _focal(x: float, t: float) -> float:
    p = 1 / (1 + math.exp(-x))
    ce = -(t * math.log(p) + (1 - t) * math.log(1 - p))
    p_t = p * t + (1 - p) * (1 - t)
    return (0.25 * t + 0.75 * (1 - t)) * ce * (1 - p_t) ** 2


def test_sigmoid_focal_matches_formula():
    x = torch.tensor([-2.0, 0.3, 1.5], dtype=torch.float64)
    t = torch.tensor([1.0, 0.0, 0.4], dtype=torch.float64)
    got = sigmoid_focal(x, t)
    for i in range(3):
        assert got[i].item() == pytest.approx(_focal(x[i].item(), t[i].item()), rel=1e-12)


def test_match_costs_and_hungarian_hand_worked():
    logits = torch.tensor([[0.0, 3.0, 0.0], [0.0, 0.0, 3.0]])  # query 0 -> class 1, query 1 -> class 2
    masks = torch.tensor([[5.0, 5.0, -5.0, -5.0], [-5.0, -5.0, 5.0, 5.0]])
    valid = torch.tensor([True, True, True, False])
    tgt = Target(torch.tensor([2, 1]), torch.tensor([[0.0, 0, 1, 1], [1.0, 1, 0, 0]]))
    cc, cm, cd = match_costs(logits, masks, valid, tgt)
    lse = math.log(math.exp(3) + 2)
    assert cc[0, 0].item() == pytest.approx(lse - 0.0, rel=1e-5) and cc[0, 1].item() == pytest.approx(lse - 3, rel=1e-5)
    want = sum(_focal(masks[0, t].item(), tgt.masks[0, t].item()) for t in range(3)) / 3
    assert cm[0, 0].item() == pytest.approx(want, rel=1e-5)
    s = 1 / (1 + math.exp(-5))
    p = [s, s, 1 - s]  # query 0 over the 3 valid steps
    t = [0, 0, 1]
    want_dice = 1 - (2 * sum(a * b for a, b in zip(p, t)) + 1) / (sum(p) + sum(t) + 1)
    assert cd[0, 0].item() == pytest.approx(want_dice, rel=1e-5)
    q, g = hungarian_match(logits, masks, valid, tgt, (2.0, 2.0, 5.0))
    assert sorted(zip(q.tolist(), g.tolist())) == [(0, 1), (1, 0)]
    q, g = hungarian_match(logits, masks, valid, Target(torch.zeros(0, dtype=torch.long), torch.zeros(0, 4)), (1, 1, 1))
    assert len(q) == len(g) == 0


def test_set_criterion_hand_worked():
    cfg = VrdONEConfig.synthetic(num_classes=2, deep_supervision=False)
    crit = SetCriterion(cfg)
    logits = torch.tensor([[[0.0, 2.0, 0.0], [1.0, 0.0, 0.0]]])  # (B=1, Nq=2, C+1=3)
    masks = torch.tensor([[[2.0, 1.0, -1.0, -10.0], [0.0, 0.0, 0.0, -10.0]]])
    mask = torch.tensor([[[True, True, True, False]]])
    tgt = [Target(torch.tensor([1]), torch.tensor([[1.0, 1.0, 0.0, 0.0]]))]
    out = crit({"pred_logits": logits, "pred_masks": masks}, tgt, mask)
    # query 0 matches (right class, right mask); query 1 gets background with weight eos_coef
    ce0 = -torch.log_softmax(logits[0, 0], -1)[1].item()
    ce1 = -torch.log_softmax(logits[0, 1], -1)[0].item()
    want_class = (1.0 * ce0 + cfg.eos_coef * ce1) / (1.0 + cfg.eos_coef)
    assert out["loss_class"].item() == pytest.approx(cfg.loss_class * want_class, rel=1e-5)
    foc = sum(_focal(masks[0, 0, t].item(), tgt[0].masks[0, t].item()) for t in range(3))
    assert out["loss_mask"].item() == pytest.approx(cfg.loss_mask * foc / 4, rel=1e-5)  # mean over all T (quirk)
    p = [1 / (1 + math.exp(-v)) for v in (2.0, 1.0, -1.0)]
    dice = 1 - (2 * (p[0] + p[1]) + 1) / (sum(p) + 2 + 1)
    assert out["loss_dice"].item() == pytest.approx(cfg.loss_dice * dice, rel=1e-5)
    fixed = SetCriterion(replace(cfg, mask_focal_over_padding=False))
    out2 = fixed({"pred_logits": logits, "pred_masks": masks}, tgt, mask)
    assert out2["loss_mask"].item() == pytest.approx(cfg.loss_mask * foc / 3, rel=1e-5)  # valid steps only
    assert out["loss"].item() == pytest.approx(sum(out[k].item() for k in ("loss_class", "loss_mask", "loss_dice")))


def test_deep_supervision_terms_and_few_steps_reduce_loss():
    torch.manual_seed(0)
    cfg = tiny(VrdONEConfig.synthetic(max_seq_len=32, num_classes=5, num_queries=4))
    m = build_vrdone(cfg)
    crit = SetCriterion(cfg)
    x = torch.randn(3, cfg.in_channels, 32)
    mask = torch.zeros(3, 1, 32, dtype=torch.bool)
    for b, n in enumerate((32, 20, 9)):
        mask[b, 0, :n] = True
    targets = [Target(torch.tensor([1, 3]), torch.stack([segment_mask(0, 10, 32), segment_mask(12, 30, 32)])),
               Target(torch.tensor([2]), segment_mask(4, 15, 32)[None]),
               Target(torch.tensor([5]), segment_mask(0, 9, 32)[None])]
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        out = crit(m(x, mask), targets, mask)
        assert {f"loss_dice_aux{i}" for i in range(cfg.dec_layers - 1)} <= out.keys()
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
    assert losses[-1] < 0.85 * losses[0], losses


def _loss_batch(cfg: VrdONEConfig):
    """A fixed float64 batch of 4 pairs with 2, 0, 1 and 1 targets; the model in eval mode (no drop path)."""
    torch.manual_seed(0)
    model = build_vrdone(cfg).double().eval()
    x = torch.randn(4, cfg.in_channels, 32, dtype=torch.float64)
    mask = torch.zeros(4, 1, 32, dtype=torch.bool)
    for b, n in enumerate((32, 20, 9, 27)):
        mask[b, 0, :n] = True
    targets = [Target(torch.tensor([1, 3]), torch.stack([segment_mask(0, 10, 32), segment_mask(12, 30, 32)])),
               Target(torch.zeros(0, dtype=torch.long), torch.zeros(0, 32)),
               Target(torch.tensor([5]), segment_mask(0, 9, 32)[None]),
               Target(torch.tensor([2]), segment_mask(3, 20, 32)[None])]
    return model, x, mask, [Target(t.labels, t.masks.double()) for t in targets]


def _old_single_process_terms(cfg, w, logits, masks, targets, valid):
    """The loss before the torchrun fix: CE as torch's weighted mean (class weights ``w``), masks
    and dice / the local count."""
    classes = torch.zeros(logits.shape[:2], dtype=torch.long)
    focal, dice = [], []
    for b, t in enumerate(targets):
        q, g = hungarian_match(logits[b].detach(), masks[b].detach(), valid[b], t,
                               (cfg.cost_class, cfg.cost_mask, cfg.cost_dice))
        classes[b, q] = t.labels[g]
        m, tm, v = masks[b, q], t.masks[g], valid[b].expand(len(q), -1).to(masks.dtype)
        focal.append((sigmoid_focal(m, tm) * v).mean(1))
        p = torch.sigmoid(m) * v
        dice.append(1 - (2 * (p * tm).sum(1) + 1) / (p.sum(1) + (tm * v).sum(1) + 1))
    n = max(sum(len(t.labels) for t in targets), 1)
    return {"loss_class": cfg.loss_class * torch.nn.functional.cross_entropy(logits.transpose(1, 2), classes, weight=w),
            "loss_mask": cfg.loss_mask * torch.cat(focal).sum() / n, "loss_dice": cfg.loss_dice * torch.cat(dice).sum() / n}


def test_set_criterion_one_process_equals_the_old_formula():
    cfg = tiny(VrdONEConfig.synthetic(max_seq_len=32, num_classes=5, num_queries=4))
    model, x, mask, targets = _loss_batch(cfg)
    out = model(x, mask)
    crit = SetCriterion(cfg).double()
    got = crit(out, targets, mask)
    layers = [("", out)] + [(f"_aux{i}", aux) for i, aux in enumerate(out["aux_outputs"])]
    assert len(got) == 3 * len(layers) + 1
    for suffix, o in layers:
        want = _old_single_process_terms(cfg, crit.class_weight, o["pred_logits"], o["pred_masks"], targets, mask[:, 0])
        for k, v in want.items():
            torch.testing.assert_close(got[k + suffix], v, rtol=1e-13, atol=0)


def test_set_criterion_two_ranks_average_to_the_one_process_gradient(monkeypatch):
    """DDP averages the ranks' gradients: with the global normalisers, the average over a 2 + 2
    split (3 and 1 targets, one pair without any) is the one-process gradient of the 4-pair batch (float64, exact)."""
    import pyvrel.models.vrdone.loss as loss_module

    cfg = tiny(VrdONEConfig.synthetic(max_seq_len=32, num_classes=5, num_queries=4))
    model, x, mask, targets = _loss_batch(cfg)
    crit = SetCriterion(cfg).double()

    def grads(rows):
        model.zero_grad()
        crit(model(x[rows], mask[rows]), [targets[i] for i in rows], mask[rows])["loss"].backward()
        return [p.grad.clone() for p in model.parameters()]

    full = grads([0, 1, 2, 3])
    halves = ([0, 2], [1, 3])
    seen: list[list[torch.Tensor]] = [[], []]  # what each rank would all-reduce, call by call
    for rank, rows in enumerate(halves):
        monkeypatch.setattr(loss_module.dist, "mean_over_ranks", lambda v, r=rank: seen[r].append(v.detach()) or v)
        grads(rows)
    assert len(seen[0]) == len(seen[1]) == 1 + cfg.dec_layers  # num_masks, then one CE weight sum per layer
    assert [float(seen[r][0]) for r in (0, 1)] == [3.0, 1.0]  # local target counts
    monkeypatch.setattr(loss_module.dist, "world_size", lambda: 2)
    per_rank = []
    for rank, rows in enumerate(halves):
        calls = iter(range(len(seen[0])))
        monkeypatch.setattr(loss_module.dist, "mean_over_ranks", lambda v: (seen[0][(i := next(calls))] + seen[1][i]) / 2)
        per_rank.append(grads(rows))
    for g_full, g0, g1 in zip(full, *per_rank):
        torch.testing.assert_close((g0 + g1) / 2, g_full, rtol=1e-10, atol=1e-13)


def test_torch_compile_backbone():
    torch.manual_seed(0)
    cfg = tiny(VrdONEConfig.synthetic(max_seq_len=32))
    m = build_vrdone(cfg).eval()
    x = torch.randn(2, cfg.in_channels, 32)
    mask = torch.zeros(2, 1, 32, dtype=torch.bool)
    mask[0, 0, :32], mask[1, 0, :13] = True, True
    compiled = torch.compile(m.backbone, backend="aot_eager")
    want, got = m.backbone(x, mask)[0], compiled(x, mask)[0]
    for a, b in zip(want, got):
        torch.testing.assert_close(a, b)


@pytest.mark.slow
def test_torch_compile_backbone_inductor():
    torch.manual_seed(0)
    cfg = tiny(VrdONEConfig.synthetic(max_seq_len=32))
    m = build_vrdone(cfg).eval()
    x = torch.randn(2, cfg.in_channels, 32)
    mask = torch.ones(2, 1, 32, dtype=torch.bool)
    mask[1, 0, 13:] = False
    got = torch.compile(m.backbone)(x, mask)[0]
    for a, b in zip(m.backbone(x, mask)[0], got):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


# ---- samples, inference, baseline ----------------------------------------------------------------


def _video() -> VideoAnnotation:
    """Objects 0 (person, frames 0-39), 1 (dog, 10-49), 2 (person, 0-49); two relations."""
    traj: list[list[FrameBox]] = [[] for _ in range(50)]
    for f in range(50):
        if f < 40:
            traj[f].append(FrameBox(0, (10.0 + f, 10.0, 60.0 + f, 100.0)))
        if f >= 10:
            traj[f].append(FrameBox(1, (100.0, 50.0, 150.0, 90.0)))
        traj[f].append(FrameBox(2, (300.0, 20.0, 340.0, 120.0)))
    rels = [RelationInstance(0, 1, "left", 12, 30), RelationInstance(0, 1, "walk_left", 20, 40),
            RelationInstance(2, 1, "right", 10, 50)]
    return VideoAnnotation("v0", 50, 30.0, 640, 360,
                           [ObjectInfo(0, "person"), ObjectInfo(1, "dog"), ObjectInfo(2, "person")], traj, rels)


def test_pair_samples_targets():
    anno = _video()
    feats = {t: np.full((50, 6), t, np.float32) for t in range(3)}
    cfg = tiny(VrdONEConfig.synthetic(max_seq_len=32, feat_stride=2, num_classes=3))
    index = {"left": 1, "walk_left": 2, "right": 3}
    samples = pair_samples(anno, feats, cfg, index)
    assert len(samples) == 2
    x, t = samples[0]  # pair (0, 1): frames [10, 40) -> 15 steps
    assert x.shape == (cfg.in_channels, 15) and (x[:6] == 0).all() and (x[6:12] == 1).all()
    assert t.labels.tolist() == [1, 2]
    assert t.masks.shape == (2, 32)
    assert t.masks[0].nonzero().flatten().tolist() == list(range(1, 10))  # ceil(2/2)=1, ceil(20/2)=10
    assert t.masks[1].nonzero().flatten().tolist() == list(range(5, 15))
    few = pair_samples(anno, feats, replace(cfg, max_preds=1), index)
    assert len(few) == 1  # the pair with two relations is dropped


def test_mask_spans_known_masks():
    m = torch.full((3, 10), -5.0)
    m[0, 2:5] = 5.0
    m[1, [1, 6]] = 5.0  # hole filled: one span
    m[2, 8:] = 5.0  # beyond the valid length only
    assert mask_spans(m, 8, 4) == [(8, 17), (4, 25), None]
    assert mask_spans(m, 8, 1, offset=2) == [(4, 7), (3, 9), None]


def _track(cat, score, start, n, x0):
    boxes = np.tile([x0, 10.0, x0 + 40, 90.0], (n, 1))
    return Tracklet(cat, score, start, boxes, np.ones((n, 6), np.float32))


def test_deduplicate_and_pairs():
    a, b, c = _track("dog", 0.9, 0, 30, 10), _track("dog", 0.8, 5, 10, 11), _track("person", 0.7, 20, 30, 200)
    kept = deduplicate([a, b, c])
    assert kept == [a, c]  # b is inside a in time and space
    far = _track("dog", 0.8, 5, 10, 300)
    assert len(deduplicate([a, far])) == 2
    assert build_pairs([a, c], 5, 1) == [(0, 1, 20, 30), (1, 0, 20, 30)]
    assert build_pairs([a, c], 11, 1) == []


class _Fixed(torch.nn.Module):
    """Outputs fixed logits/masks (queries: 0 -> class 2 on steps [2, 6), 1 -> background-heavy)."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x, mask):
        B, T = x.shape[0], x.shape[-1]
        logits = torch.full((B, 2, self.cfg.num_classes + 1), -10.0)
        logits[:, 0, 2] = 10.0
        logits[:, 1, 0] = 10.0
        masks = torch.full((B, 2, T), -10.0)
        masks[:, :, 2:6] = 10.0
        return {"pred_logits": logits, "pred_masks": masks.masked_fill(~mask, -10.0)}


def test_predict_video_known_outputs_to_json():
    cfg = tiny(VrdONEConfig.synthetic(max_seq_len=32, feat_stride=2, num_classes=3, num_queries=2, topk=1,
                                      pred_min_frames=2, proposal_min_frames=2))
    a, c = _track("dog", 0.9, 0, 30, 10), _track("person", 0.6, 10, 30, 200)
    rels = predict_video(_Fixed(cfg), cfg, [a, c], ["left", "ride", "right"], 640, 360)
    # 2 pairs x 2 queries, top-1 each; spans of steps [2, 6) at stride 2 from frame 10: [14, 21)
    assert len(rels) == 4
    top = rels[0]
    assert top.predicate == "ride" and top.duration == (14, 21)
    assert top.score == pytest.approx((0.9 + 1.0 + 0.6) / 3, rel=1e-4)
    assert top.triplet in {("dog", "ride", "person"), ("person", "ride", "dog")}
    assert top.sub_traj.shape == (7, 4)
    j = top.to_json()
    assert set(j) == {"triplet", "score", "duration", "sub_traj", "obj_traj"}
    assert [r.score for r in rels] == sorted((r.score for r in rels), reverse=True)
    assert predict_video(_Fixed(cfg), replace(cfg, n_max_pair=3), [a, c], ["left", "ride", "right"], 640, 360)[2:] \
        and len(predict_video(_Fixed(cfg), replace(cfg, n_max_pair=3), [a, c], ["l", "r", "x"], 640, 360)) == 3
    with pytest.raises(ValueError, match="predicate names"):
        predict_video(_Fixed(cfg), cfg, [a, c], ["left"], 640, 360)


def test_frequency_prior():
    prior = FrequencyPrior(topk=2, min_frames=5).fit([_video()])
    assert prior.distribution("person", "dog") == [("left", 1 / 3), ("right", 1 / 3), ("walk_left", 1 / 3)]
    assert prior.distribution("dog", "dog")[0][1] == pytest.approx(1 / 3)  # unseen pair: global prior
    tr = [_track("person", 1.0, 0, 40, 10), _track("dog", 0.5, 10, 40, 100)]
    rels = prior.predict_video(tr)
    assert len(rels) == 4 and rels[0].triplet == ("person", "left", "dog") and rels[0].duration == (10, 40)
    assert rels[0].score == pytest.approx((1.0 + 1 / 3 + 0.5) / 3)
    with pytest.raises(RuntimeError, match="fit"):
        FrequencyPrior().predict_video(tr)


def test_synthetic_end_to_end_json(tmp_path):
    from pyvrel.data import read_predictions, write_predictions
    from pyvrel.data.synthetic import SynthConfig, World, generate_video
    from pyvrel.eval import evaluate_relations
    from pyvrel.data.tracklets import detected_tracklets, oracle_tracklets
    from pyvrel.models.vrdone import entity_features

    synth = SynthConfig(seed=3, num_videos=1, frames=(70, 90), entities=(3, 3), min_run=10, proposals=2,
                        sampled_frames=4)
    world = World(synth)
    v = generate_video(synth, 0, world)
    assert v.annotation.relations
    preds = list(world.vocab.predicates)
    cfg = tiny(VrdONEConfig.synthetic(max_seq_len=32, feat_stride=4, num_classes=len(preds), pred_min_frames=1,
                                      proposal_min_frames=1), visual_dim=synth.feature_dim)
    feats = entity_features(v.features, v.annotation)
    assert all(f.shape == (v.annotation.frame_count, synth.feature_dim) for f in feats.values())
    samples = pair_samples(v.annotation, feats, replace(cfg, with_fuzzy=True, max_preds=99),
                           {p: i + 1 for i, p in enumerate(preds)}, np.random.default_rng(0))
    assert samples and all(x.shape[0] == cfg.in_channels and t.masks.shape[1] == 32 for x, t in samples)
    assert all(((t.masks >= 0) & (t.masks <= 1)).all() for _, t in samples)
    model = build_vrdone(cfg)
    for p in model.parameters():  # a random model predicts foreground somewhere
        p.data.add_(0.3 * torch.randn_like(p))
    for tracks in (detected_tracklets(v.features, list(world.vocab.objects)), oracle_tracklets(v.annotation, feats)):
        rels = predict_video(model, cfg, tracks, preds, v.annotation.width, v.annotation.height)
        assert 0 < len(rels) <= cfg.n_max_pair
        for r in rels:
            assert len(r.sub_traj) == len(r.obj_traj) == r.duration[1] - r.duration[0] >= cfg.pred_min_frames
        write_predictions({v.annotation.video_id: rels}, tmp_path / "pred.json")
        back = read_predictions(tmp_path / "pred.json").results
        scores = evaluate_relations({v.annotation.video_id: v.annotation.relation_view()}, back)
        assert 0.0 <= scores["RelDet"]["mAP"] <= 1.0
