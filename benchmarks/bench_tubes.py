"""Benchmarks of the tube ops: pairwise tube IoU, aligned tube IoU (forward + backward),
interpolation.

Providers: ``reference`` (pyvrel.ops.reference), ``cpp``, ``triton`` and ``cuda`` (the last two
only with a CUDA device). The pure-Python references are timed on documented subsets (recorded
in ``extra_info["timed"]``). Pairwise tube IoU is compared with two baselines in its group:

* ``official-loop``: VidVRD-helper's evaluation ``viou``, a per-pair Python loop, which is
  exactly :func:`pyvrel.ops.reference.tube_iou_ref` (so it is also this op's reference provider),
  timed on ref_n x ref_n tubes; ``extra_info["per_pair_s"]`` gives the time per pair.
* ``numpy-outer``: :func:`numpy_outer_tube_iou` below, a vectorised numpy baseline over the
  global frame axis.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from harness import check, device_of, median_s, provider_params, record, run
from shapes import INTERPOLATE, TUBE_IOU, TUBE_IOU_ALIGNED, head, make_inputs, shape_params

from pyvrel import _ext
from pyvrel.ops import Tubes, interpolate_boxes, reference, tube_iou, tube_iou_aligned

PROVIDERS = provider_params("reference", "cpp", "triton", "cuda")
TUBE_IOU_PROVIDERS = provider_params("official-loop", "numpy-outer", "cpp", "triton", "cuda")


def numpy_outer_tube_iou(a: Tubes, b: Tubes, pixel_offset: float, video: int) -> np.ndarray:
    """Volumetric vIoU (N, M) in float64 numpy: for each frame of the video, the outer-product
    intersections of the A and B boxes valid at that frame, accumulated into an (N, M) matrix;
    volumes are the per-tube sums of box areas."""
    p = pixel_offset
    ab, a_start, a_len = a.boxes.double().numpy(), a.start.numpy(), a.length.numpy()
    bb, b_start, b_len = b.boxes.double().numpy(), b.start.numpy(), b.length.numpy()

    def volumes(boxes, length):
        area = (boxes[..., 2] - boxes[..., 0] + p) * (boxes[..., 3] - boxes[..., 1] + p)
        return np.where(np.arange(boxes.shape[1])[None, :] < length[:, None], area, 0.0).sum(axis=1)

    inter = np.zeros((len(a_len), len(b_len)))
    for f in range(video):
        ia = np.nonzero((a_start <= f) & (f < a_start + a_len))[0]  # A tubes valid at frame f
        ib = np.nonzero((b_start <= f) & (f < b_start + b_len))[0]
        if len(ia) == 0 or len(ib) == 0:
            continue
        x, y = ab[ia, f - a_start[ia]], bb[ib, f - b_start[ib]]
        w = np.minimum.outer(x[:, 2], y[:, 2]) - np.maximum.outer(x[:, 0], y[:, 0]) + p
        h = np.minimum.outer(x[:, 3], y[:, 3]) - np.maximum.outer(x[:, 1], y[:, 1]) + p
        inter[np.ix_(ia, ib)] += np.maximum(w, 0.0) * np.maximum(h, 0.0)
    union = volumes(ab, a_len)[:, None] + volumes(bb, b_len)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


@pytest.mark.parametrize("shape", shape_params("tube_iou", TUBE_IOU))
@pytest.mark.parametrize("provider", TUBE_IOU_PROVIDERS)
def test_tube_iou(benchmark, provider, shape):
    """Pairwise volumetric vIoU (the VidVRD evaluation setting: float64, pixel_offset=1)."""
    x = make_inputs(shape)
    a, b, off = x["a"], x["b"], shape.pixel_offset
    pairs = f"{shape.n}x{shape.m}"
    if provider == "official-loop":
        a, b = head(a, shape.ref_n), head(b, shape.ref_n)
        pairs = f"{shape.ref_n}x{shape.ref_n} (subset: per-pair Python loop)"
        fn = lambda: reference.tube_iou_ref(a, b, off)  # noqa: E731
    elif provider == "numpy-outer":
        fn = lambda: torch.from_numpy(numpy_outer_tube_iou(a, b, off, shape.video))  # noqa: E731
    else:
        dev = device_of(provider)
        a, b = a.to(dev), b.to(dev)
        fn = lambda: tube_iou(a, b, off, backend=provider)  # noqa: E731
    record(benchmark, provider, shape, pixel_offset=off, mode="volume", timed=pairs)
    out = run(benchmark, fn, provider).cpu()
    n, m = out.shape
    if (median := median_s(benchmark)) is not None:
        benchmark.extra_info["per_pair_s"] = median / (n * m)
        benchmark.extra_info["est_full_s"] = median / (n * m) * shape.n * shape.m

    benchmark.extra_info["nonzero_fraction"] = float((out > 0).double().mean())
    if provider == "numpy-outer" and _ext.has_cpu_ext():  # vs the C++ kernel on every pair
        check(out, tube_iou(x["a"], x["b"], off, backend="cpp"), rtol=0, atol=1e-6)
    elif provider == "official-loop" and _ext.has_cpu_ext():  # vs the C++ kernel on the subset
        check(out, tube_iou(a, b, off, backend="cpp"), rtol=0, atol=1e-6)
    else:  # vs the reference on check_n x check_n tubes
        k = shape.check_n
        want = reference.tube_iou_ref(head(x["a"], k), head(x["b"], k), off)
        check(out[:k, :k], want, rtol=0, atol=1e-6)


@pytest.mark.parametrize("shape", shape_params("tube_iou_aligned", TUBE_IOU_ALIGNED))
@pytest.mark.parametrize("provider", PROVIDERS)
def test_tube_iou_aligned(benchmark, provider, shape):
    """Aligned (pair-by-pair) vIoU, forward + backward (as in a tube-regression loss).

    The reference is timed on the first ``shape.ref_pairs`` pairs, kernels are checked against it
    there (pairs are independent, so values and gradients of those pairs must match)."""
    x = make_inputs(shape)
    k = shape.ref_pairs if provider == "reference" else shape.pairs
    dev = device_of(provider)
    a, b = head(x["a"], k).to(dev), head(x["b"], k).to(dev)
    ga, gb = a.boxes.clone().requires_grad_(), b.boxes.clone().requires_grad_()
    a, b = a._replace(boxes=ga), b._replace(boxes=gb)

    def step():
        out = tube_iou_aligned(a, b, shape.pixel_offset, backend=provider)
        return (out.detach(), *torch.autograd.grad(out.sum(), (ga, gb)))

    record(benchmark, provider, shape, mode="forward+backward",
           timed=f"{k} pairs" + (" (subset: per-pair torch loop)" if k != shape.pairs else ""))
    got = run(benchmark, step, provider)
    k = shape.ref_pairs
    ra, rb = head(x["a"], k), head(x["b"], k)
    rga, rgb = ra.boxes.clone().requires_grad_(), rb.boxes.clone().requires_grad_()
    want = reference.tube_iou_aligned_ref(ra._replace(boxes=rga), rb._replace(boxes=rgb), shape.pixel_offset)
    check([g[:k] for g in got], (want.detach(), *torch.autograd.grad(want.sum(), (rga, rgb))), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shape", shape_params("interpolate_boxes", INTERPOLATE))
@pytest.mark.parametrize("provider", PROVIDERS)
def test_interpolate_boxes(benchmark, provider, shape):
    """Linear interpolation of sampled tracks to every frame (forward).

    The reference (a Python loop per frame) is timed on the first ``shape.ref_tracks`` tracks;
    every provider is checked against it on those tracks."""
    x = make_inputs(shape)
    k = shape.ref_tracks if provider == "reference" else shape.tracks
    dev = device_of(provider)
    frames, boxes, counts = (x[key][:k].to(dev) for key in ("frames", "boxes", "counts"))
    record(benchmark, provider, shape, timed=f"{k} tracks" + (" (subset: per-frame Python loop)" if k != shape.tracks else ""))
    got = run(benchmark, lambda: interpolate_boxes(frames, boxes, counts, backend=provider), provider)
    k = shape.ref_tracks
    want = reference.interpolate_boxes_ref(x["frames"][:k], x["boxes"][:k], x["counts"][:k])
    length = want.boxes.shape[1]
    check((got.start[:k], got.length[:k]), (want.start, want.length), exact=True)
    check(got.boxes[:k, :length], want.boxes)
