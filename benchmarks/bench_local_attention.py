"""Benchmarks of windowed local attention (forward, and forward + backward w.r.t. q, k, v).

Providers:
  ``reference``  dense ``F.scaled_dot_product_attention`` with a boolean band + key-padding mask
                 (the baseline the kernels are measured against);
  ``unfold``     explicit gather: pad, ``unfold`` the keys/values into (B, H, L, W, D) windows;
  ``cpp``        pyvrel's fused C++ kernel; ``triton`` and ``cuda`` only with a CUDA device.
All use truncated windows, padded keys dropped and padded query rows zeroed; every provider is
checked against the cpp result before timing. Shapes: ``benchmarks/shapes.py`` (LOCAL_ATTENTION).

pytest-benchmark: ``pytest benchmarks/bench_local_attention.py`` (current torch thread count).
Side-by-side table with 1 and 2 threads and peak memory, each case in a fresh process:
``python benchmarks/bench_local_attention.py [--shapes vidor_d32 ...] [--reps 10]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import pytest
import torch
import torch.nn.functional as F
from harness import check, device_of, provider_params, record, run, skip_reason
from shapes import LOCAL_ATTENTION, LocalAttentionShape

from pyvrel.ops import local_attention, window_extents

PROVIDERS = ("reference", "unfold", "cpp", "triton", "cuda")
MODES = ("fwd", "fwd+bwd")


def make_inputs(shape: LocalAttentionShape, device: str = "cpu", seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    dims = (shape.batch, shape.heads, shape.length, shape.head_dim)
    q, k, v = (torch.randn(*dims, generator=g).to(device) for _ in range(3))
    lengths = torch.tensor(shape.lengths if shape.lengths else [shape.length] * shape.batch, device=device)
    return q, k, v, lengths


def dense_sdpa(q, k, v, window, lengths):
    """Dense SDPA with a band mask; rows without key attend everywhere, then are zeroed."""
    L = q.shape[2]
    left, right = window_extents(window)
    i = torch.arange(L, device=q.device)
    band = (i[None, :] >= i[:, None] - left) & (i[None, :] <= i[:, None] + right)
    q_ok = i[None, :] < lengths[:, None]  # (B, L)
    mask = band[None] & q_ok[:, None, :]
    mask = mask | ~mask.any(-1, keepdim=True)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None])
    return out * q_ok[:, None, :, None]


def unfold_attention(q, k, v, window, lengths):
    """Gather each query's window with ``unfold`` and attend over it."""
    B, H, L, D = q.shape
    left, right = window_extents(window)
    W = left + right + 1
    kw = F.pad(k, (0, 0, left, right)).unfold(2, W, 1)  # (B, H, L, D, W)
    vw = F.pad(v, (0, 0, left, right)).unfold(2, W, 1)
    j = torch.arange(L, device=q.device)[:, None] + torch.arange(W, device=q.device)[None, :] - left  # (L, W)
    valid = (j[None] >= 0) & (j[None] < lengths[:, None, None])  # (B, L, W)
    q_ok = torch.arange(L, device=q.device)[None, :] < lengths[:, None]
    valid = valid & q_ok[:, :, None]
    scores = torch.einsum("bhld,bhldw->bhlw", q, kw) * D ** -0.5
    scores = scores.masked_fill(~valid[:, None], float("-inf"))
    p = torch.softmax(scores, dim=-1).nan_to_num(0.0)
    return torch.einsum("bhlw,bhldw->bhld", p, vw)


def provider_fn(provider: str):
    if provider == "reference":
        return dense_sdpa
    if provider == "unfold":
        return unfold_attention
    return lambda q, k, v, window, lengths: local_attention(q, k, v, window, q_lengths=lengths,
                                                            kv_lengths=lengths, backend=provider)


def make_step(provider: str, shape: LocalAttentionShape, mode: str):
    """A no-argument callable running one timed step, and the tensors it returns."""
    q, k, v, lengths = make_inputs(shape, device_of(provider))
    fn = provider_fn(provider)
    if mode == "fwd":
        def step():
            with torch.no_grad():
                return (fn(q, k, v, shape.window, lengths),)
        return step
    leaves = [t.clone().requires_grad_() for t in (q, k, v)]
    grad = torch.randn(q.shape, generator=torch.Generator().manual_seed(1)).to(q.device)

    def step():
        out = fn(*leaves, shape.window, lengths)
        return (out.detach(), *torch.autograd.grad(out, leaves, grad))

    return step


def _sync(provider: str) -> None:
    if device_of(provider) == "cuda":
        torch.cuda.synchronize()


# ---- pytest-benchmark ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", LOCAL_ATTENTION, ids=lambda s: s.name)
@pytest.mark.parametrize("provider", provider_params(*PROVIDERS))
def test_local_attention(benchmark, provider, shape, mode):
    record(benchmark, provider, shape, mode=mode)
    got = run(benchmark, make_step(provider, shape, mode), provider)
    if provider != "cpp":
        check(got, make_step("cpp", shape, mode)(), atol=1e-4, rtol=1e-4)


# ---- side-by-side table (each case in its own process) -------------------------------------


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _run_one(provider: str, shape_name: str, mode: str, reps: int) -> dict:
    """Median/min time of ``reps`` steps after one warm-up, and the peak RSS growth over the
    inputs already built (the op's working memory, CPU only)."""
    shape = next(s for s in LOCAL_ATTENTION if s.name == shape_name)
    step = make_step(provider, shape, mode)
    base = _current_rss_mb()
    step()
    _sync(provider)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        step()
        _sync(provider)
        times.append((time.perf_counter() - t0) * 1e3)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB
    return dict(median_ms=statistics.median(times), min_ms=min(times), extra_peak_mb=max(0.0, peak - base))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="*", default=[s.name for s in LOCAL_ATTENTION])
    parser.add_argument("--providers", nargs="*", default=list(PROVIDERS))
    parser.add_argument("--threads", nargs="*", type=int, default=[1, 2])
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--one", nargs=3, metavar=("PROVIDER", "SHAPE", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(_run_one(*args.one, args.reps)))
        return
    print(f"load average before: {os.getloadavg()}")
    print("| shape | provider | threads | fwd ms (median / min) | fwd+bwd ms (median / min) | peak extra RSS MB (fwd / fwd+bwd) |")
    print("|---|---|---|---|---|---|")
    for name in args.shapes:
        for threads in args.threads:
            for provider in args.providers:
                if skip_reason(provider):
                    continue
                cells, mem = [], []
                for mode in MODES:
                    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
                    out = subprocess.run([sys.executable, __file__, "--one", provider, name, mode, "--reps",
                                          str(args.reps)], env=env, capture_output=True, text=True, check=True)
                    r = json.loads(out.stdout.strip().splitlines()[-1])
                    cells.append(f"{r['median_ms']:.2f} / {r['min_ms']:.2f}")
                    mem.append(f"{r['extra_peak_mb']:.0f}")
                print(f"| {name} | {provider} | {threads} | {cells[0]} | {cells[1]} | {mem[0]} / {mem[1]} |", flush=True)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
