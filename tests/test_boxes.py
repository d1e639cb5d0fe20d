"""box_iou, box_iou_aligned, nms, batched_nms: every backend against the reference; the NumPy
helpers of pyvrel.data.boxes against the reference."""

import numpy as np
import pytest
import torch

import pyvrel.ops as ops
from pyvrel.data.boxes import box_areas, box_intersections, box_ious
from pyvrel.ops import reference as ref
from conftest import KERNEL_BACKENDS, device_of, random_boxes

TOL = {torch.float32: dict(atol=1e-6, rtol=1e-5), torch.float64: dict(atol=1e-12, rtol=1e-12)}


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape_a,shape_b", [((5, 4), (7, 4)), ((3, 1, 13, 4), (2, 9, 4)), ((0, 4), (6, 4)),
                                             ((2, 1, 4), (2, 0, 4)), ((1, 4), (1, 4)), ((2, 65, 4), (2, 130, 4))])
@pytest.mark.parametrize("pixel_offset", [0, 1])
def test_box_iou_matches_reference(backend, dtype, shape_a, shape_b, pixel_offset, gen):
    dev = device_of(backend)
    a = random_boxes(*shape_a[:-1], dtype=dtype, generator=gen).to(dev)
    b = random_boxes(*shape_b[:-1], dtype=dtype, generator=gen).to(dev)
    if a.shape[:-2] == b.shape[:-2] and a.shape[-2] and b.shape[-2]:
        b[..., 0, :] = a[..., 0, :]  # identical boxes -> IoU 1
    out = ops.box_iou(a, b, pixel_offset, backend=backend)
    expected = ref.box_iou_ref(a, b, pixel_offset)
    assert out.shape == expected.shape and out.dtype == dtype
    torch.testing.assert_close(out, expected, **TOL[dtype])


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
def test_box_iou_degenerate_boxes_give_zero_not_nan(backend):
    dev = device_of(backend)
    a = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 2.0, 2.0]], device=dev)
    b = torch.tensor([[1.0, 1.0, 1.0, 1.0], [5.0, 5.0, 5.0, 9.0]], device=dev)
    out = ops.box_iou(a, b, backend=backend)
    assert torch.isfinite(out).all()
    assert out.tolist() == [[0.0, 0.0], [0.0, 0.0]]
    assert ops.box_iou(a, b, 1, backend=backend)[0, 0] == 1.0  # a 1x1 pixel with the +1 convention


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_box_iou_aligned_matches_reference(backend, dtype, gen):
    dev = device_of(backend)
    for shape in [(0,), (1,), (37,), (3, 11)]:
        a = random_boxes(*shape, dtype=dtype, generator=gen).to(dev)
        b = (a + torch.randn(a.shape, generator=gen, dtype=dtype).to(dev) * 5).to(dtype)
        b[..., 2:] = torch.maximum(b[..., 2:], b[..., :2])
        for p in (0, 1):
            torch.testing.assert_close(ops.box_iou_aligned(a, b, p, backend=backend),
                                       ref.box_iou_aligned_ref(a, b, p), **TOL[dtype])


@pytest.mark.parametrize("pixel_offset", [0, 1])
def test_numpy_box_ious_match_the_reference(pixel_offset, gen):
    a, b = random_boxes(2, 5, dtype=torch.float64, generator=gen), random_boxes(2, 7, dtype=torch.float64, generator=gen)
    b[:, 0] = a[:, 0]  # identical boxes -> IoU 1
    b[1, 1] = torch.tensor([3.0, 3.0, 3.0, 3.0], dtype=torch.float64)  # zero area
    an, bn = a.numpy(), b.numpy()
    pairwise = box_ious(an[:, :, None], bn[:, None], pixel_offset)
    assert pairwise.shape == (2, 5, 7) and pairwise[0, 0, 0] == 1.0
    np.testing.assert_allclose(pairwise, ref.box_iou_ref(a, b, pixel_offset).numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(box_ious(an, bn[:, :5], pixel_offset),
                               ref.box_iou_aligned_ref(a, b[:, :5], pixel_offset).numpy(), rtol=1e-12, atol=1e-12)
    inter = box_intersections(an[:, :, None], bn[:, None], pixel_offset)
    union = box_areas(an, pixel_offset)[:, :, None] + box_areas(bn, pixel_offset)[:, None] - inter
    np.testing.assert_allclose(inter / union, pairwise, rtol=1e-12, atol=1e-12)


def test_numpy_box_ious_of_zero_area_boxes_are_zero():
    a = np.array([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 2.0, 2.0]])
    b = np.array([[1.0, 1.0, 1.0, 1.0], [5.0, 5.0, 5.0, 9.0]])
    assert box_ious(a[:, None], b[None]).tolist() == [[0.0, 0.0], [0.0, 0.0]]
    assert box_ious(a[0], b[0], 1) == 1.0  # a 1x1 pixel with the +1 convention


def test_box_iou_half_precision_is_computed_in_float32():
    a, b = random_boxes(4), random_boxes(6)
    out = ops.box_iou(a.half(), b.half())
    assert out.dtype == torch.float16
    torch.testing.assert_close(out.float(), ref.box_iou_ref(a.half().float(), b.half().float()), atol=1e-3, rtol=1e-3)


def test_box_iou_accepts_non_contiguous_inputs(gen):
    a = random_boxes(4, 6, generator=gen).transpose(0, 1)  # (6, 4 boxes) non-contiguous
    b = random_boxes(6, 3, generator=gen)
    assert not a.is_contiguous()
    torch.testing.assert_close(ops.box_iou(a, b), ref.box_iou_ref(a, b))


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
@pytest.mark.parametrize("aligned", [False, True])
def test_box_iou_gradcheck(backend, aligned, gen):
    dev = device_of(backend)
    a = random_boxes(2, 4, dtype=torch.float64, generator=gen, scale=10).to(dev).requires_grad_()
    b = random_boxes(2, 4 if aligned else 5, dtype=torch.float64, generator=gen, scale=10).to(dev).requires_grad_()
    fn = ops.box_iou_aligned if aligned else ops.box_iou
    for p in (0, 1):
        assert torch.autograd.gradcheck(lambda x, y: fn(x, y, p, backend=backend), (a, b), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
def test_box_iou_gradient_matches_reference_with_ties(backend):
    dev = device_of(backend)
    a = torch.tensor([[0.0, 0.0, 4.0, 4.0], [1.0, 1.0, 3.0, 5.0]], dtype=torch.float64, device=dev)
    b = torch.tensor([[0.0, 2.0, 4.0, 6.0], [1.0, 1.0, 3.0, 5.0]], dtype=torch.float64, device=dev)  # shared edges
    grads = []
    for be in (backend, "reference"):
        x, y = a.clone().requires_grad_(), b.clone().requires_grad_()
        ops.box_iou(x, y, backend=be).square().sum().backward()
        grads.append((x.grad, y.grad))
    torch.testing.assert_close(grads[0], grads[1])


def test_box_iou_opcheck_and_compile(gen):
    a = random_boxes(2, 5, dtype=torch.float64, generator=gen).requires_grad_()
    b = random_boxes(2, 3, dtype=torch.float64, generator=gen).requires_grad_()
    torch.library.opcheck(torch.ops.pyvrel.box_iou.default, (a, b, 0.0, "cpp"))
    c = random_boxes(6, dtype=torch.float64, generator=gen).requires_grad_()
    d = random_boxes(6, dtype=torch.float64, generator=gen).requires_grad_()
    torch.library.opcheck(torch.ops.pyvrel.box_iou_aligned.default, (c, d, 1.0, "cpp"))
    compiled = torch.compile(lambda x, y: ops.box_iou(x, y, backend="cpp").sum(-1), fullgraph=True)
    torch.testing.assert_close(compiled(a, b), ref.box_iou_ref(a, b).sum(-1))


@pytest.mark.parametrize(
    "call,err,match",
    [
        (lambda: ops.box_iou([1, 2, 3, 4], torch.zeros(1, 4)), TypeError, "a must be a torch.Tensor"),
        (lambda: ops.box_iou(torch.zeros(3, 5), torch.zeros(1, 4)), ValueError, "a must have last dimension 4"),
        (lambda: ops.box_iou(torch.zeros(4), torch.zeros(1, 4)), ValueError, "a must have at least 2 dimensions"),
        (lambda: ops.box_iou(torch.zeros(1, 4, dtype=torch.int32), torch.zeros(1, 4)), TypeError, "a must have dtype"),
        (lambda: ops.box_iou(torch.zeros(1, 4), torch.zeros(1, 4).double()), TypeError, "b has dtype"),
        (lambda: ops.box_iou(torch.zeros(2, 1, 4), torch.zeros(3, 1, 4)), ValueError, "do not broadcast"),
        (lambda: ops.box_iou(torch.zeros(1, 4), torch.zeros(1, 4), 2), ValueError, "pixel_offset must be 0"),
        (lambda: ops.box_iou(torch.zeros(1, 4), torch.zeros(1, 4), backend="fast"), ValueError, "backend must be one of"),
        (lambda: ops.box_iou(torch.zeros(1, 4), torch.zeros(1, 4), backend="cuda"), RuntimeError, "CUDA backend runs on CUDA"),
        (lambda: ops.box_iou(torch.zeros(1, 4), torch.zeros(1, 4, device="meta")), ValueError, "same device"),
        (lambda: ops.box_iou_aligned(torch.zeros(2, 4), torch.zeros(3, 4)), ValueError, "same shape"),
        (lambda: ops.nms(torch.zeros(2, 4), torch.zeros(3), 0.5), ValueError, "scores must have shape"),
        (lambda: ops.nms(torch.zeros(2, 4), torch.zeros(2), 1.5), ValueError, "iou_threshold must be in"),
        (lambda: ops.nms(torch.tensor([[0, 0, float("nan"), 1.0]]), torch.zeros(1), 0.5), ValueError, "boxes contains NaN"),
        (lambda: ops.nms(torch.zeros(1, 4), torch.tensor([float("nan")]), 0.5), ValueError, "scores contains NaN"),
        (lambda: ops.nms(torch.zeros(1, 4), torch.zeros(1), 0.5, backend="triton"), ValueError, "has no 'triton' backend"),
        (lambda: ops.batched_nms(torch.zeros(2, 4), torch.zeros(2), torch.zeros(2), 0.5), TypeError, "idxs must be an integer"),
        (lambda: ops.batched_nms(torch.zeros(2, 4), torch.zeros(2), torch.zeros(3, dtype=torch.long), 0.5), ValueError, "idxs must have shape"),
    ],
)
def test_bad_inputs_raise_clear_errors(call, err, match):
    with pytest.raises(err, match=match):
        call()


# ---- NMS --------------------------------------------------------------------------------------


def _boxes_with_iou(base: torch.Tensor, iou: float) -> torch.Tensor:
    """A box of the same height as ``base`` shifted right so that IoU(base, box) == iou."""
    w = base[2] - base[0]
    shift = w * (1 - iou) / (1 + iou)
    return base + torch.tensor([shift, 0.0, shift, 0.0], dtype=base.dtype)


@pytest.mark.parametrize("backend", ["cpp", "reference", pytest.param("cuda", marks=KERNEL_BACKENDS[2].marks)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_nms_threshold_is_strict_just_above_and_below(backend, dtype):
    base = torch.tensor([10.0, 10.0, 50.0, 30.0], dtype=dtype)
    thr = 0.5
    for delta, suppressed in ((1e-3, True), (-1e-3, False)):
        other = _boxes_with_iou(base, thr + delta)
        boxes = torch.stack([base, other]).to(device_of(backend) if backend != "reference" else "cpu")
        keep = ops.nms(boxes, torch.tensor([0.9, 0.8], dtype=dtype, device=boxes.device), thr, backend=backend)
        assert keep.tolist() == ([0] if suppressed else [0, 1])


@pytest.mark.parametrize("backend", [b for b in KERNEL_BACKENDS if b.id != "triton"])
@pytest.mark.parametrize("n", [0, 1, 2, 17, 64, 65, 200])
@pytest.mark.parametrize("thr", [0.0, 0.3, 0.7, 1.0])
def test_nms_matches_reference_exactly(backend, n, thr, gen):
    dev = device_of(backend)
    boxes = random_boxes(n, generator=gen, scale=40).to(dev)
    scores = (torch.rand(n, generator=gen) * 8).round().div(8).to(dev)  # many ties
    keep = ops.nms(boxes, scores, thr, backend=backend)
    assert keep.dtype == torch.int64
    assert keep.tolist() == ref.nms_ref(boxes.cpu(), scores.cpu(), thr).tolist()
    idxs = torch.randint(0, 3, (n,), generator=gen).to(dev)
    keep = ops.batched_nms(boxes, scores, idxs, thr, backend=backend)
    assert keep.tolist() == ref.batched_nms_ref(boxes.cpu(), scores.cpu(), idxs.cpu(), thr).tolist()


@pytest.mark.parametrize("backend", [b for b in KERNEL_BACKENDS if b.id != "triton"])
def test_nms_ties_keep_lowest_index(backend):
    dev = device_of(backend)
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30.0]], device=dev)
    scores = torch.tensor([0.5, 0.9, 0.9, 0.9], device=dev)
    assert ops.nms(boxes, scores, 0.5, backend=backend).tolist() == [1, 3]
    # Different groups never suppress each other.
    idxs = torch.tensor([0, 0, 1, 1], device=dev)
    assert ops.batched_nms(boxes, scores, idxs, 0.5, backend=backend).tolist() == [1, 2, 3]


def test_nms_pixel_offset_changes_decisions():
    # Two 1-pixel-wide boxes touching: disjoint in continuous coordinates, overlapping with +1.
    boxes = torch.tensor([[0.0, 0.0, 1.0, 9.0], [1.0, 0.0, 2.0, 9.0]])
    scores = torch.tensor([0.9, 0.8])
    assert ops.nms(boxes, scores, 0.3).tolist() == [0, 1]
    assert ops.nms(boxes, scores, 0.3, pixel_offset=1).tolist() == [0]


def test_nms_keep_op_opcheck_and_compile(gen):
    boxes = random_boxes(30, generator=gen, scale=20)
    scores = torch.rand(30, generator=gen)
    order = torch.sort(scores, descending=True, stable=True).indices
    torch.library.opcheck(torch.ops.pyvrel.nms_keep.default, (boxes, order, None, 0.5, 0.0, "cpp"))

    def keep_mask(b, s):  # fixed-size form for compiled graphs
        o = torch.sort(s, descending=True, stable=True).indices
        return torch.ops.pyvrel.nms_keep(b, o, None, 0.5, 0.0, "cpp")

    mask = torch.compile(keep_mask, fullgraph=True)(boxes, scores)
    assert order[mask[order]].tolist() == ref.nms_ref(boxes, scores, 0.5).tolist()


def test_box_iou_aligned_compiles_with_backward(gen):
    a = random_boxes(8, dtype=torch.float64, generator=gen).requires_grad_()
    b = random_boxes(8, dtype=torch.float64, generator=gen)
    compiled = torch.compile(lambda x: ops.box_iou_aligned(x, b, 1, backend="cpp").sum(), fullgraph=True)
    (g,) = torch.autograd.grad(compiled(a), a)
    (g_ref,) = torch.autograd.grad(ref.box_iou_aligned_ref(a, b, 1).sum(), a)
    torch.testing.assert_close(g, g_ref)
