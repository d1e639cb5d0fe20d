"""Cost of the training engine: one epoch of a small MLP with :class:`pyvrel.engine.Trainer`
(EMA, gradient-norm clipping, logging every 10 steps, no output files) against a bare PyTorch
loop doing only forward, backward and AdamW on the same batches. The difference is the engine's
per-step overhead (EMA update, gradient norm, sampler, metrics)."""

from __future__ import annotations

import math

import pytest
import torch
from harness import provider_params, record, run
from shapes import ENGINE_BATCH, ENGINE_SAMPLES, ENGINE_WIDTH, SEED
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from pyvrel.engine import TrainConfig, Trainer


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        w = ENGINE_WIDTH
        self.net = nn.Sequential(nn.Linear(w, w), nn.LayerNorm(w), nn.GELU(), nn.Linear(w, w), nn.GELU(),
                                 nn.Linear(w, 1))

    def forward(self, batch):
        x, y = batch
        return {"loss": (self.net(x).squeeze(-1) - y).pow(2).mean()}


def data() -> TensorDataset:
    g = torch.Generator().manual_seed(SEED)
    x = torch.randn(ENGINE_SAMPLES, ENGINE_WIDTH, generator=g)
    return TensorDataset(x, x[:, :8].sum(1).sin())


def bare_epoch(model: nn.Module, dataset: TensorDataset) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss = torch.zeros(())
    for batch in DataLoader(dataset, batch_size=ENGINE_BATCH, shuffle=True, drop_last=True):
        loss = model(batch)["loss"]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return float(loss.detach())


def trainer_epoch(model: nn.Module, dataset: TensorDataset) -> float:
    config = TrainConfig(epochs=1, batch_size=ENGINE_BATCH, lr=1e-3, ema_decay=0.999, clip_grad_norm=1.0,
                         log_every=10, progress=False, device="cpu")
    return Trainer(model, dataset, config).fit()["train"]["loss"]


@pytest.mark.parametrize("provider", provider_params("bare-loop", "trainer"))
def test_engine_mlp_epoch(benchmark, provider):
    dataset = data()
    fn = bare_epoch if provider == "bare-loop" else trainer_epoch
    benchmark.group = f"engine-mlp{ENGINE_WIDTH}-b{ENGINE_BATCH}x{ENGINE_SAMPLES // ENGINE_BATCH}steps"
    record(benchmark, provider, steps=ENGINE_SAMPLES // ENGINE_BATCH)
    torch.manual_seed(SEED)
    model = MLP()
    loss = run(benchmark, lambda: fn(model, dataset), provider)
    assert math.isfinite(loss)
