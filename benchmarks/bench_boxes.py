"""Benchmarks of the frame-level box ops: box_iou, box_iou_aligned (forward + backward), NMS.

Providers: ``reference`` (pyvrel.ops.reference through the public op), ``cpp``, ``triton`` and
``cuda`` (the last two only with a CUDA device). Each case checks its result against the
reference once, outside the timed region. Shapes: benchmarks/shapes.py.
"""

from __future__ import annotations

import pytest
import torch
from harness import check, device_of, provider_params, record, run
from shapes import BOX_IOU, BOX_IOU_ALIGNED, NMS, make_inputs, shape_params

from pyvrel.ops import batched_nms, box_iou, box_iou_aligned, reference

PROVIDERS = provider_params("reference", "cpp", "triton", "cuda")
NMS_PROVIDERS = provider_params(
    "reference", "cpp", "triton", "cuda", missing={"triton": "NMS has no Triton backend (the greedy pass is serial)"}
)


@pytest.mark.parametrize("shape", shape_params("box_iou", BOX_IOU))
@pytest.mark.parametrize("provider", PROVIDERS)
def test_box_iou(benchmark, provider, shape):
    """Pairwise IoU of per-frame detections (forward)."""
    x = make_inputs(shape)
    dev = device_of(provider)
    a, b = x["a"].to(dev), x["b"].to(dev)
    record(benchmark, provider, shape, a=list(a.shape), b=list(b.shape))
    out = run(benchmark, lambda: box_iou(a, b, backend=provider), provider)
    check(out, reference.box_iou_ref(x["a"], x["b"]))


@pytest.mark.parametrize("shape", shape_params("box_iou_aligned", BOX_IOU_ALIGNED))
@pytest.mark.parametrize("provider", PROVIDERS)
def test_box_iou_aligned(benchmark, provider, shape):
    """IoU of paired boxes, forward + backward (as in a box-regression loss)."""
    x = make_inputs(shape)
    dev = device_of(provider)
    a = x["a"].to(dev).requires_grad_()
    b = x["b"].to(dev).requires_grad_()

    def step():
        out = box_iou_aligned(a, b, backend=provider)
        return (out.detach(), *torch.autograd.grad(out.sum(), (a, b)))

    record(benchmark, provider, shape, mode="forward+backward", a=list(a.shape))
    got = run(benchmark, step, provider)
    ra, rb = x["a"].clone().requires_grad_(), x["b"].clone().requires_grad_()
    want = reference.box_iou_aligned_ref(ra, rb)
    check(got, (want.detach(), *torch.autograd.grad(want.sum(), (ra, rb))))


@pytest.mark.parametrize("shape", shape_params("nms", NMS))
@pytest.mark.parametrize("provider", NMS_PROVIDERS)
def test_nms(benchmark, provider, shape):
    """Greedy NMS (class-agnostic, or batched over ``shape.classes`` classes).

    The reference provider is timed on ``shape.ref_shape()`` (ref_n boxes): its pure-Python
    loop would take minutes at 5000 boxes. Kernels are checked on that set for exact indices.
    """
    dev = device_of(provider)
    timed = shape.ref_shape() if provider == "reference" else shape

    def call(s, device):
        x = make_inputs(s)
        idxs = None if x["idxs"] is None else x["idxs"].to(device)
        boxes, scores = x["boxes"].to(device), x["scores"].to(device)
        return lambda: batched_nms(boxes, scores, idxs, s.iou_threshold, backend=provider)

    record(benchmark, provider, shape, boxes=timed.n, classes=shape.classes, iou_threshold=shape.iou_threshold,
           timed=f"{timed.n} boxes" + (" (subset size: pure-Python loop)" if timed is not shape else ""))
    kept = run(benchmark, call(timed, dev), provider)
    benchmark.extra_info["kept"] = int(kept.numel())
    small = shape.ref_shape()
    x = make_inputs(small)
    want = reference.batched_nms_ref(x["boxes"], x["scores"], x["idxs"], small.iou_threshold)
    check(call(small, dev)(), want, exact=True)
