"""Seq-NMS: reference vs C++ (vs CUDA where a GPU exists).

Run with ``pytest benchmarks/bench_seq_nms.py --benchmark-only``. Outputs are checked against
the reference once, outside the timed region.
"""

from __future__ import annotations

import pytest
import torch
from harness import check, device_of, provider_params, record, run
from shapes import SEQ_NMS_SHAPES

import pyvrel.ops as ops

PROVIDERS = provider_params("reference", "cpp", "cuda")  # Seq-NMS has no Triton backend


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


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("T,N", SEQ_NMS_SHAPES, ids=[f"{t}x{n}" for t, n in SEQ_NMS_SHAPES])
def test_seq_nms(benchmark, provider, T, N):
    benchmark.group = f"seq_nms-{T}x{N}"
    if provider == "reference" and N > 100:
        pytest.skip("the plain-Python reference needs minutes at this size (O(K·T·N²) Python loops)")
    boxes, scores = synthetic_video(T, N)
    dev = device_of(provider)
    boxes, scores = boxes.to(dev), scores.to(dev)
    record(benchmark, provider, frames=T, boxes_per_frame=N)
    out = run(benchmark, lambda: ops.seq_nms(boxes, scores, backend=provider), provider)
    if provider != "reference" and N <= 100:  # exact equality with the reference, untimed
        expected = ops.seq_nms(boxes.cpu(), scores.cpu(), backend="reference")
        check((out.scores, out.box_index), (expected.scores, expected.box_index), exact=True)
