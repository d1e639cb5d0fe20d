"""Viterbi linking and soft Viterbi: NumPy and reference vs C++ and Triton (vs CUDA where a GPU exists).

Run with ``pytest benchmarks/bench_viterbi.py --benchmark-only``. Outputs are checked against
the reference (or an exact NumPy DP) once, outside the timed region.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from harness import check, device_of, provider_params, record, run
from shapes import VITERBI_SHAPES

import pyvrel.ops as ops

PROVIDERS = provider_params("reference", "cpp", "cuda", "triton")


def proposals(B: int, T: int, N: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(B, 1, N, 2, generator=g) * 400 + torch.cumsum(torch.randn(B, T, N, 2, generator=g) * 3, 1)
    wh = torch.rand(B, 1, N, 2, generator=g) * 100 + 20
    boxes = torch.cat([xy, xy + wh], -1)
    frames = torch.cumsum(torch.randint(3, 8, (B, T), generator=g), 1)
    return boxes, torch.rand(B, T, N, generator=g), frames


def numpy_viterbi(boxes: np.ndarray, unary: np.ndarray, frames: np.ndarray):
    """Exact vectorised NumPy DP of one problem (the spec's 16 ms baseline): (path, score)."""
    T, N = unary.shape
    area = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    V = unary[0].astype(np.float64)
    back = np.zeros((T, N), dtype=np.int64)
    for t in range(1, T):
        a, b = boxes[t - 1][:, None], boxes[t][None]
        w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
        h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
        inter = w * h
        iou = inter / (area[t - 1][:, None] + area[t][None] - inter)
        cand = V[:, None] + iou.astype(np.float64) / (frames[t] - frames[t - 1])
        back[t] = cand.argmax(0)
        V = unary[t] + cand[back[t], np.arange(N)]
    path = [int(V.argmax())]
    for t in range(T - 1, 0, -1):
        path.append(int(back[t][path[-1]]))
    return path[::-1], float(V.max())


@pytest.mark.parametrize("provider", provider_params("numpy", "reference", "cpp", "cuda", "triton"))
@pytest.mark.parametrize("B,T,N", VITERBI_SHAPES, ids=[f"{b}x{t}x{n}" for b, t, n in VITERBI_SHAPES])
def test_viterbi_link(benchmark, provider, B, T, N):
    benchmark.group = f"viterbi_link-{B}x{T}x{N}"
    boxes, unary, frames = proposals(B, T, N)
    if provider in ("numpy", "reference") and B > 1:
        pytest.skip("per-problem Python baselines are timed on single problems only")
    record(benchmark, provider, problems=B, frames=T, proposals=N)
    if provider == "numpy":
        b, u, f = boxes[0].numpy(), unary[0].numpy(), frames[0].numpy()
        path, _ = run(benchmark, lambda: numpy_viterbi(b, u, f), provider)
        check(torch.tensor(path), ops.viterbi_link(boxes[0], unary[0], frames[0], backend="reference").paths[0],
              exact=True)
        return
    dev = device_of(provider)
    args = (boxes.to(dev), unary.to(dev), frames.to(dev))
    out = run(benchmark, lambda: ops.viterbi_link(*args, backend=provider), provider)
    if provider != "reference":
        expected = ops.viterbi_link(boxes[:4], unary[:4], frames[:4], backend="reference")
        check(out.paths[:4], expected.paths, exact=True)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_soft_viterbi(benchmark, provider):
    B, T, N = VITERBI_SHAPES[0]
    benchmark.group = f"soft_viterbi-{B}x{T}x{N}"
    dev = device_of(provider)
    boxes, unary, frames = (x.to(dev) for x in proposals(B, T, N))

    def step(backend, b, u, f):
        u = u.detach().requires_grad_()
        z = ops.soft_viterbi(b, u, f, backend=backend).log_partition.sum()
        return (z.detach(), *torch.autograd.grad(z, u))

    record(benchmark, provider, problems=B, frames=T, proposals=N, mode="forward+backward")
    got = run(benchmark, lambda: step(provider, boxes, unary, frames), provider)
    check(got, step("reference", *(x.cpu() for x in (boxes, unary, frames))))
