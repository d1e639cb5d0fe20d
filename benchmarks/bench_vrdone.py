"""VrdONE forward (eval mode) and training step (forward + SetCriterion with deep supervision +
backward) on the CPU at the presets' full widths. Shapes: ``benchmarks/shapes.py`` (VRDONE).

    pytest benchmarks/bench_vrdone.py --benchmark-only
"""

from __future__ import annotations

import pytest
import torch
from harness import provider_params, record, run
from shapes import VRDONE, VrdONEShape

from pyvrel.models.vrdone import SetCriterion, Target, VrdONEConfig, build_vrdone, segment_mask


def make(shape: VrdONEShape):
    torch.manual_seed(0)
    kw = {"max_seq_len": shape.max_seq_len} if shape.max_seq_len else {}
    cfg = getattr(VrdONEConfig, shape.preset)(**kw)
    model = build_vrdone(cfg)
    T = cfg.max_seq_len
    x = torch.randn(shape.batch, cfg.in_channels, T)
    mask = torch.zeros(shape.batch, 1, T, dtype=torch.bool)
    targets = []
    for b in range(shape.batch):
        n = shape.lengths[b % len(shape.lengths)]
        mask[b, 0, :n] = True
        masks = torch.stack([segment_mask(0, n // 2, T), segment_mask(n // 3, n, T)])
        targets.append(Target(torch.tensor([1, 2]), masks))
    return cfg, model, x, mask, targets


PROVIDERS = provider_params("cpp")  # the model's ops on the CPU, automatic backend


@pytest.mark.parametrize("shape", VRDONE, ids=lambda s: s.name)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_forward(benchmark, provider, shape):
    cfg, model, x, mask, _ = make(shape)
    model.eval()
    benchmark.group = "vrdone-forward"
    record(benchmark, provider, shape)
    with torch.no_grad():
        out = run(benchmark, lambda: model(x, mask), provider)
    assert out["pred_masks"].shape == (shape.batch, cfg.num_queries, cfg.max_seq_len)


@pytest.mark.parametrize("shape", VRDONE, ids=lambda s: s.name)
@pytest.mark.parametrize("provider", PROVIDERS)
def test_train_step(benchmark, provider, shape):
    cfg, model, x, mask, targets = make(shape)
    crit = SetCriterion(cfg)
    benchmark.group = "vrdone-train-step"
    record(benchmark, provider, shape)

    def step():
        model.zero_grad()
        loss = crit(model(x, mask), targets, mask)["loss"]
        loss.backward()
        return loss

    loss = run(benchmark, step, provider)
    assert torch.isfinite(loss)
