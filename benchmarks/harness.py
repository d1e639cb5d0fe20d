"""The harness of every ``bench_*.py``: which providers can run here (and on which device), how
long a case is timed, the check of a result against its expected value, and ``extra_info``.
Shapes and inputs are in ``shapes.py``.

Every case checks its result once, outside the timed region; ``--benchmark-disable`` makes each
case a single plain call (the smoke run: ``pytest benchmarks --benchmark-disable -q``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import torch

from pyvrel import _ext

ROUND_BUDGET_S = 1.0  # each case runs about this long (between min_rounds and MAX_ROUNDS rounds)
MIN_ROUNDS, MAX_ROUNDS = 3, 50
KERNEL_PROVIDERS = ("reference", "cpp", "cuda", "triton")  # pyvrel's backends; other names are baselines


def skip_reason(provider: str) -> str:
    """Empty if ``provider`` can be benchmarked here, else why not. Baselines always can."""
    if provider not in KERNEL_PROVIDERS:
        return ""
    if provider in ("reference", "cpp"):
        return "" if provider == "reference" or _ext.has_cpu_ext() else "pyvrel._C is not built"
    if not torch.cuda.is_available():
        extra = "; the Triton CPU interpreter is far too slow to benchmark" if provider == "triton" else ""
        return f"needs a CUDA device (none present{extra})"
    if provider == "cuda":
        return "" if _ext.has_cuda_ext() else "pyvrel._cuda is not built"
    ok, why = _ext.triton_can_run(torch.device("cuda"))
    return "" if ok else why


def provider_params(*providers: str, missing: dict[str, str] | None = None) -> list:
    """``pytest.param`` per provider. Kernel providers that cannot run here (cuda and triton
    without a GPU) and those in ``missing`` (provider -> why the op lacks it) skip with a visible
    reason; other names (baselines) always run."""
    params = []
    for p in providers:
        reason = (missing or {}).get(p) or skip_reason(p)
        marks = [pytest.mark.skipif(bool(reason), reason=f"{p}: {reason}")]
        if p in ("cuda", "triton"):
            marks.append(getattr(pytest.mark, "gpu" if p == "cuda" else "triton"))
        params.append(pytest.param(p, id=p, marks=marks))
    return params


def device_of(provider: str) -> str:
    """Where ``provider``'s inputs live: ``"cuda"`` for the cuda and triton backends, else ``"cpu"``."""
    return "cuda" if provider in ("cuda", "triton") else "cpu"


def run(benchmark, fn: Callable[[], Any], provider: str, *, min_rounds: int = MIN_ROUNDS) -> Any:
    """Time ``fn`` with ``benchmark.pedantic``, ~ROUND_BUDGET_S of rounds (at least ``min_rounds``;
    one untimed warm-up call sizes them); GPU providers synchronize inside the timed call.
    Returns fn's result."""
    gpu = device_of(provider) == "cuda"

    def call():
        out = fn()
        if gpu:
            torch.cuda.synchronize()
        return out

    if getattr(benchmark, "disabled", False):  # --benchmark-disable: a single plain call
        return benchmark.pedantic(call, rounds=1, iterations=1)
    t0 = time.perf_counter()
    call()
    elapsed = time.perf_counter() - t0
    rounds = max(min_rounds, min(MAX_ROUNDS, int(ROUND_BUDGET_S / max(elapsed, 1e-9))))
    return benchmark.pedantic(call, rounds=rounds, iterations=1, warmup_rounds=0)


def check(got: Any, expected: Any, *, exact: bool = False, **tolerances: float) -> None:
    """``got`` (a tensor or a sequence of them, on any device) equals ``expected`` (on the CPU):
    bitwise with ``exact``, else within ``torch.testing.assert_close``'s (or the given) tolerances."""
    if isinstance(got, torch.Tensor):
        got, expected = (got,), (expected,)
    assert len(got) == len(expected), (len(got), len(expected))
    if exact:
        tolerances = {"rtol": 0.0, "atol": 0.0}
    for g, e in zip(got, expected):
        torch.testing.assert_close(g.cpu(), e.cpu(), **tolerances)


def median_s(benchmark) -> float | None:
    """Median time of the finished benchmark in seconds (None with --benchmark-disable)."""
    stats = getattr(benchmark, "stats", None)
    return None if stats is None else stats.stats.median


def record(benchmark, provider: str, shape: Any = None, **extra: Any) -> None:
    """Fill ``benchmark.extra_info``: provider, device, CPU threads, the shape config (and its
    dtype, when it has one) and ``extra``."""
    info: dict[str, Any] = {"provider": provider, "device": device_of(provider), "threads": torch.get_num_threads()}
    if shape is not None:
        info["shape"] = repr(shape)
        if hasattr(shape, "dtype"):
            info["dtype"] = str(shape.dtype)
    benchmark.extra_info.update(info, **extra)
