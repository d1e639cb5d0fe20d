"""A tiny regression task for the engine tests, importable as ``engine_toy`` (tests/ is on sys.path).

``pyvrel train --model engine_toy:build_task --data synthetic`` trains it, in-process or under
torchrun (with ``PYTHONPATH`` pointing at tests/, as :func:`torchrun_pyvrel` does).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

from pyvrel.engine import EvalContext, TrainTask, config_from_dict


@dataclass
class ToyConfig:
    in_dim: int = 4
    hidden: int = 16
    samples: int = 48
    dropout: float = 0.0
    fail_at_step: int | None = None    # forward call (1-based) that raises RuntimeError: a crash
    nan_at_step: int | None = None     # forward call (1-based) whose loss is NaN: divergence
    raise_in_eval: bool = False        # the evaluation raises ValueError


class ToyRegression(nn.Module):
    """float64 MLP with a LayerNorm; ``forward(batch)`` returns the engine's loss mapping."""

    def __init__(self, config: ToyConfig) -> None:
        super().__init__()
        self.config = config
        self.net = nn.Sequential(nn.Linear(config.in_dim, config.hidden), nn.LayerNorm(config.hidden), nn.Tanh(),
                                 nn.Dropout(config.dropout), nn.Linear(config.hidden, 1)).double()
        self.calls = 0

    def forward(self, batch: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        self.calls += 1
        if self.calls == self.config.fail_at_step:
            raise RuntimeError(f"simulated crash at forward call {self.calls}")
        x, y = batch
        mse = (self.net(x).squeeze(-1) - y).pow(2).mean()
        loss = mse * math.nan if self.calls == self.config.nan_at_step else mse
        return {"loss": loss, "mse": mse.detach()}


def regression_data(samples: int, in_dim: int, seed: int = 0) -> TensorDataset:
    """``y = sin(x @ w) + x_0 / 2`` for Gaussian ``x`` drawn with ``seed`` (``w`` is fixed): float64."""
    w = torch.randn(in_dim, generator=torch.Generator().manual_seed(1234), dtype=torch.float64)
    x = torch.randn(samples, in_dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return TensorDataset(x, torch.sin(x @ w) + x[:, 0] / 2)


def evaluate(model: nn.Module, ctx: EvalContext) -> dict[str, float] | None:
    if model.config.raise_in_eval:
        raise ValueError("simulated evaluation failure")
    if not ctx.is_main:
        return None
    x, y = regression_data(32, model.config.in_dim, seed=1).tensors
    return {"mse": float((model.net(x.to(ctx.device)).squeeze(-1) - y.to(ctx.device)).pow(2).mean())}


def build_task(model_config: dict, data: str) -> TrainTask:
    if data != "synthetic":
        raise ValueError(f"{data}: the toy task only trains on 'synthetic'")
    config = config_from_dict(ToyConfig, model_config)
    return TrainTask(model=ToyRegression(config), train_set=regression_data(config.samples, config.in_dim),
                     evaluate=evaluate, model_config=asdict(config), eval_metrics=("mse",),
                     train_defaults={"lr": 0.02, "epochs": 2, "batch_size": 8, "weight_decay": 0.01,
                                     "progress": False, "log_every": 1})


def torchrun_pyvrel(args: list[str], cwd: Path, nproc: int = 2, timeout: float = 600) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node nproc -m pyvrel ARGS`` on gloo over 127.0.0.1 (one thread each).

    ``--standalone`` lets the launcher's own store bind a free port and hand it to the workers, so two
    suites running at once cannot race for a port picked here and released before torchrun binds it.
    """
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent), "OMP_NUM_THREADS": "1"}
    if sys.platform.startswith("linux"):
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")  # the processes meet on 127.0.0.1
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           "--local_addr", "127.0.0.1", "-m", "pyvrel", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
