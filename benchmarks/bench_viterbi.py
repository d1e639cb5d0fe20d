"""Seq-NMS and Viterbi linking: reference vs C++ (vs CUDA where a GPU exists).

Run with ``pytest benchmarks/bench_linking.py --benchmark-only``. Outputs are checked against
the reference (or an exact NumPy DP) once, outside the timed region.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pyvrel.ops as ops
from shapes import SEQ_NMS_SHAPES, VITERBI_SHAPES

HAS_GPU = torch.cuda.is_available()
PROVIDERS = ["reference", "cpp", pytest.param("cuda", marks=pytest.mark.skipif(not HAS_GPU, reason="no GPU"))]
TRITON = pytest.param("triton", marks=pytest.mark.skipif(
    not HAS_GPU, reason="Triton timings need a GPU (the CPU interpreter is no benchmark)"))


def synthetic_video(T: int, N: int, objects: int = 30, per_object: int = 8, seed: int = 0):
    """30 moving objects x 8 jittered detections + clutter in a 480 x 480 frame; uniform scores."""
    g = torch.Generator().manual_seed(seed)
    start = torch.rand(objects, 2, generator=g) * 400
    vel = torch.randn(objects, 2, generator=g) * 3
    size = torch.rand(objects, 2, generator=g) * 80 + 20
    t = torch.arange(T, dtype=torch.float32)[:, None, None]
    k = min(objects * per_object, N)
    centers = (start[None] + vel[None] * t)[:, :, None].expand(T, objects, per_object, 2).reshape(T, -1, 2)[:, :k]
    wh = size[None, :, None].expand(T, objects, per_object, 2).reshape(T, -1, 2)[:, :k]
    centers = centers + torch.randn(T, k, 2, generator=g) * 4
    wh = wh * (1 + torch.randn(T, k, 2, generator=g) * 0.08)
    centers = torch.cat([centers, torch.rand(T, N - k, 2, generator=g) * 480], 1)
    wh = torch.cat([wh, torch.rand(T, N - k, 2, generator=g) * 80 + 10], 1)
    boxes = torch.cat([centers - wh / 2, centers + wh / 2], -1)
    perm = torch.argsort(torch.rand(T, N, generator=g), dim=1)
    return torch.gather(boxes, 1, perm[..., None].expand(T, N, 4)), torch.rand(T, N, generator=g)


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


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("T,N", SEQ_NMS_SHAPES, ids=[f"{t}x{n}" for t, n in SEQ_NMS_SHAPES])
def test_seq_nms(benchmark, provider, T, N):
    benchmark.group = f"seq_nms-{T}x{N}"
    if provider == "reference" and N > 100:
        pytest.skip("the plain-Python reference needs minutes at this size (O(K·T·N²) Python loops)")
    boxes, scores = synthetic_video(T, N)
    dev = "cuda" if provider == "cuda" else "cpu"
    boxes, scores = boxes.to(dev), scores.to(dev)
    out = benchmark(lambda: ops.seq_nms(boxes, scores, backend=provider))
    if provider != "reference" and N <= 100:  # exact equality with the reference, untimed
        expected = ops.seq_nms(boxes.cpu(), scores.cpu(), backend="reference")
        assert torch.equal(out.scores.cpu(), expected.scores)
        assert torch.equal(out.box_index.cpu(), expected.box_index)


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
