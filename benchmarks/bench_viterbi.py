"""Viterbi linking and soft Viterbi: NumPy and reference vs C++ and Triton (vs CUDA where a GPU exists).

Run with ``pytest benchmarks/bench_viterbi.py --benchmark-only``. Outputs are checked against
the reference (or an exact NumPy DP) once, outside the timed region.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pyvrel.ops as ops
from shapes import VITERBI_SHAPES

HAS_GPU = torch.cuda.is_available()
PROVIDERS = ["reference", "cpp", pytest.param("cuda", marks=pytest.mark.skipif(not HAS_GPU, reason="no GPU"))]
TRITON = pytest.param("triton", marks=pytest.mark.skipif(
    not HAS_GPU, reason="Triton timings need a GPU (the CPU interpreter is no benchmark)"))


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


@pytest.mark.parametrize("provider", ["numpy", *PROVIDERS, TRITON])
@pytest.mark.parametrize("B,T,N", VITERBI_SHAPES, ids=[f"{b}x{t}x{n}" for b, t, n in VITERBI_SHAPES])
def test_viterbi_link(benchmark, provider, B, T, N):
    benchmark.group = f"viterbi_link-{B}x{T}x{N}"
    boxes, unary, frames = proposals(B, T, N)
    if provider in ("numpy", "reference") and B > 1:
        pytest.skip("per-problem Python baselines are timed on single problems only")
    if provider == "numpy":
        b, u, f = boxes[0].numpy(), unary[0].numpy(), frames[0].numpy()
        path, _ = benchmark(lambda: numpy_viterbi(b, u, f))
        assert path == ops.viterbi_link(boxes[0], unary[0], frames[0], backend="cpp").paths[0].tolist()
        return
    dev = "cuda" if provider in ("cuda", "triton") else "cpu"
    args = (boxes.to(dev), unary.to(dev), frames.to(dev))
    out = benchmark(lambda: ops.viterbi_link(*args, backend=provider))
    if provider != "reference":
        expected = ops.viterbi_link(boxes[:4], unary[:4], frames[:4], backend="reference")
        assert torch.equal(out.paths[:4].cpu(), expected.paths)


@pytest.mark.parametrize("provider", [*PROVIDERS, TRITON])
def test_soft_viterbi(benchmark, provider):
    benchmark.group = "soft_viterbi-1x120x40"
    dev = "cuda" if provider in ("cuda", "triton") else "cpu"
    boxes, unary, frames = (x.to(dev) for x in proposals(1, 120, 40))
    unary.requires_grad_()

    def step():
        z = ops.soft_viterbi(boxes, unary, frames, backend=provider).log_partition.sum()
        return torch.autograd.grad(z, unary)

    benchmark(step)
