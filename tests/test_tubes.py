"""tube_iou, tube_iou_aligned, temporal_iou, interpolate_boxes and the conversions."""

import pytest
import torch

import pyvrel.ops as ops
from pyvrel.ops import Tubes
from pyvrel.ops import reference as ref
from conftest import KERNEL_BACKENDS, device_of, random_tubes

TOL = {torch.float32: dict(atol=1e-5, rtol=1e-5), torch.float64: dict(atol=1e-12, rtol=1e-12)}


def official_viou(traj_1, duration_1, traj_2, duration_2):
    """VidVRD-helper's evaluation/common.py viou, transcribed from its public code."""
    if duration_1[0] >= duration_2[1] or duration_1[1] <= duration_2[0]:
        return 0.0
    elif duration_1[0] <= duration_2[0]:
        head_1, head_2 = duration_2[0] - duration_1[0], 0
        n = duration_1[1] - duration_2[0] if duration_1[1] < duration_2[1] else duration_2[1] - duration_2[0]
    else:
        head_1, head_2 = 0, duration_1[0] - duration_2[0]
        n = duration_1[1] - duration_1[0] if duration_1[1] < duration_2[1] else duration_2[1] - duration_1[0]
    v_overlap = 0
    for i in range(n):
        b1, b2 = traj_1[head_1 + i], traj_2[head_2 + i]
        v_overlap += max(0, min(b1[2], b2[2]) - max(b1[0], b2[0]) + 1) * max(0, min(b1[3], b2[3]) - max(b1[1], b2[1]) + 1)
    v1 = sum((b[2] - b[0] + 1) * (b[3] - b[1] + 1) for b in traj_1)
    v2 = sum((b[2] - b[0] + 1) * (b[3] - b[1] + 1) for b in traj_2)
    return float(v_overlap) / (v1 + v2 - v_overlap)


def _to(tubes: Tubes, device: str) -> Tubes:
    return Tubes(tubes.boxes.to(device), tubes.start.to(device), tubes.length.to(device))


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("mode", ["volume", "iou3dt"])
@pytest.mark.parametrize("n,m,t", [(5, 7, 13), (1, 1, 1), (0, 4, 3), (4, 0, 3), (17, 9, 30)])
def test_tube_iou_matches_reference(backend, dtype, mode, n, m, t, gen):
    a = random_tubes(n, t, video=25, dtype=dtype, generator=gen)
    b = random_tubes(m, t + 2, video=25, dtype=dtype, generator=gen)
    if n and m:  # a copy and a shifted copy of a[0] guarantee non-zero pairs
        b.boxes[0, : t] = a.boxes[0]
        b.start[0], b.length[0] = a.start[0], a.length[0]
    for p in (0, 1):
        out = ops.tube_iou(_to(a, device_of(backend)), _to(b, device_of(backend)), p, mode=mode, backend=backend)
        expected = ref.tube_iou_ref(a, b, p, mode)
        assert out.shape == (n, m) and out.dtype == dtype
        torch.testing.assert_close(out.cpu(), expected, **TOL[dtype])
        if n and m and int(a.length[0]):
            assert out[0, 0].item() == pytest.approx(1.0)


def test_tube_iou_reproduces_official_evaluation_bit_for_bit(gen):
    a = random_tubes(12, 20, video=30, dtype=torch.float64, generator=gen)
    b = random_tubes(10, 20, video=30, dtype=torch.float64, generator=gen)
    a.boxes.copy_(a.boxes.round())  # the official boxes are integer pixels
    b.boxes.copy_(b.boxes.round())
    a.length.clamp_(min=1)
    b.length.clamp_(min=1)
    out = ops.tube_iou(a, b, pixel_offset=1, backend="cpp")
    for i, (sa, ta) in enumerate(ops.unpack_tubes(a)):
        for j, (sb, tb) in enumerate(ops.unpack_tubes(b)):
            expected = official_viou(ta.tolist(), (sa, sa + len(ta)), tb.tolist(), (sb, sb + len(tb)))
            assert out[i, j].item() == expected  # exact, not approximate


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
def test_tube_iou_known_values(backend):
    dev = device_of(backend)
    box = [0.0, 0.0, 9.0, 9.0]
    same = Tubes(torch.tensor([[box] * 10], device=dev), torch.tensor([0], device=dev), torch.tensor([10], device=dev))
    later = Tubes(same.boxes, torch.tensor([5], device=dev), same.length)
    touching = Tubes(same.boxes[:, :5], torch.tensor([5], device=dev), torch.tensor([5], device=dev))
    first5 = Tubes(same.boxes[:, :5], torch.tensor([0], device=dev), torch.tensor([5], device=dev))
    assert ops.tube_iou(same, later, backend=backend).item() == pytest.approx(1 / 3)  # spec example
    assert ops.tube_iou(first5, touching, backend=backend).item() == 0.0  # [0,5) vs [5,10)
    assert ops.tube_iou(first5, touching, mode="iou3dt", backend=backend).item() == 0.0
    assert ops.tube_iou(same, later, mode="iou3dt", backend=backend).item() == pytest.approx(5 / 15)
    shifted = Tubes(torch.tensor([[[5.0, 0.0, 14.0, 9.0]] * 10], device=dev), same.start, same.length)
    assert ops.tube_iou(same, shifted, 1, backend=backend).item() == pytest.approx(50 / 150)  # spec: 1/3 with +1
    single = Tubes(same.boxes[:, :1], torch.tensor([3], device=dev), torch.tensor([1], device=dev))
    assert ops.tube_iou(single, single, backend=backend).item() == 1.0


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
@pytest.mark.parametrize("mode", ["volume", "iou3dt"])
def test_tube_iou_aligned_matches_reference_and_gradcheck(backend, mode, gen):
    dev = device_of(backend)
    a = random_tubes(6, 7, video=6, dtype=torch.float64, generator=gen)
    b = random_tubes(6, 5, video=6, dtype=torch.float64, generator=gen)
    b.boxes[:, :5] = a.boxes[:, :5] + torch.randn(6, 5, 4, generator=gen, dtype=torch.float64)
    b.boxes[..., 2:] = torch.maximum(b.boxes[..., 2:], b.boxes[..., :2] + 0.5)
    b.start[:3] = a.start[:3]
    for p in (0, 1):
        out = ops.tube_iou_aligned(_to(a, dev), _to(b, dev), p, mode=mode, backend=backend)
        torch.testing.assert_close(out.cpu(), ref.tube_iou_aligned_ref(a, b, p, mode), **TOL[torch.float64])
        torch.testing.assert_close(out.cpu(), ref.tube_iou_ref(a, b, p, mode).diagonal(), **TOL[torch.float64])

    xa = a.boxes.to(dev).requires_grad_()
    xb = b.boxes.to(dev).requires_grad_()
    sa, la, sb, lb = (x.to(dev) for x in (a.start, a.length, b.start, b.length))

    def fn(x, y):
        return ops.tube_iou_aligned(Tubes(x, sa, la), Tubes(y, sb, lb), mode=mode, backend=backend)

    assert torch.autograd.gradcheck(fn, (xa, xb), eps=1e-6, atol=1e-7)
    fn(xa, xb).sum().backward()
    padded = torch.arange(7, device=dev)[None, :] >= la[:, None]
    assert (xa.grad[padded] == 0).all()  # frames past length are never touched


def test_tube_iou_aligned_gradient_matches_reference_gradient(gen):
    a = random_tubes(5, 6, video=4, dtype=torch.float64, generator=gen)
    b = random_tubes(5, 6, video=4, dtype=torch.float64, generator=gen)
    grads = []
    for be in ("cpp", "reference"):
        x, y = a.boxes.clone().requires_grad_(), b.boxes.clone().requires_grad_()
        ops.tube_iou_aligned(Tubes(x, a.start, a.length), Tubes(y, b.start, b.length), backend=be).sum().backward()
        grads.append((x.grad, y.grad))
    torch.testing.assert_close(grads[0], grads[1])


@pytest.mark.parametrize("backend", ["cpp", "reference"])
def test_tube_iou_aligned_of_disjoint_tubes_backpropagates_zero(backend):
    """No pair shares a frame: every IoU is 0 and stays in the graph (the reference once returned a
    constant, so ``backward`` raised in the random test above when a draw had no overlap)."""
    boxes = torch.tensor([[[0.0, 0.0, 4.0, 4.0]] * 2] * 2, dtype=torch.float64)
    x, y = boxes.clone().requires_grad_(), boxes.clone().requires_grad_()
    starts_a, starts_b, lengths = torch.tensor([0, 5]), torch.tensor([2, 0]), torch.tensor([2, 2])
    out = ops.tube_iou_aligned(Tubes(x, starts_a, lengths), Tubes(y, starts_b, lengths), backend=backend)
    out.sum().backward()
    assert out.tolist() == [0.0, 0.0]
    assert x.grad.abs().sum() == 0 and y.grad.abs().sum() == 0


def test_tube_ops_opcheck_and_compile(gen):
    a = random_tubes(4, 6, video=5, dtype=torch.float64, generator=gen)
    b = random_tubes(3, 6, video=5, dtype=torch.float64, generator=gen)
    torch.library.opcheck(torch.ops.pyvrel.tube_iou.default, (*a, *b, 1.0, 0, "cpp"))
    xa = a.boxes.clone().requires_grad_()
    xb = b.boxes[:, :5].clone().contiguous().requires_grad_()
    args = (xa[:3].detach().clone().requires_grad_(), a.start[:3], a.length[:3].clamp(max=6), xb, b.start,
            b.length.clamp(max=5))
    for mode in (0, 1):
        torch.library.opcheck(torch.ops.pyvrel.tube_iou_aligned.default, (*args, 0.0, mode, "cpp"))
    compiled = torch.compile(lambda x, y: ops.tube_iou(x, y, backend="cpp"), fullgraph=True)
    torch.testing.assert_close(compiled(a, b), ref.tube_iou_ref(a, b))


@pytest.mark.parametrize(
    "call,err,match",
    [
        (lambda t: ops.tube_iou(t.boxes, t), TypeError, "a must be a Tubes"),
        (lambda t: ops.tube_iou(Tubes(t.boxes[0], t.start, t.length), t), ValueError, "a.boxes must have 3 dimensions"),
        (lambda t: ops.tube_iou(Tubes(t.boxes, t.start.float(), t.length), t), TypeError, "a.start must be an integer"),
        (lambda t: ops.tube_iou(t, Tubes(t.boxes, t.start[:1], t.length)), ValueError, r"b.start must have shape \(2,\)"),
        (lambda t: ops.tube_iou(Tubes(t.boxes, t.start, torch.tensor([1, -1])), t), ValueError, "a.length must be in"),
        (lambda t: ops.tube_iou(Tubes(t.boxes, t.start, torch.tensor([1, 4])), t), ValueError, r"a.length must be in \[0, T=3\]"),
        (lambda t: ops.tube_iou(Tubes(t.boxes, torch.tensor([0, -2]), t.length), t), ValueError, "a.start must be >= 0"),
        (lambda t: ops.tube_iou(t, t, mode="viou"), ValueError, "mode must be one of"),
        (lambda t: ops.tube_iou(t, Tubes(t.boxes.double(), t.start, t.length)), TypeError, "b.boxes has dtype"),
        (lambda t: ops.tube_iou(t, Tubes(t.boxes.to("meta"), t.start, t.length)), ValueError, "same device"),
        (lambda t: ops.tube_iou_aligned(t, Tubes(t.boxes[:1], t.start[:1], t.length[:1])), ValueError, "same number of tubes"),
        (lambda t: ops.interpolate_boxes(torch.tensor([[0, 5, 5]]), torch.zeros(1, 3, 4)), ValueError, "strictly increasing"),
        (lambda t: ops.interpolate_boxes(torch.tensor([[0, 5]]), torch.zeros(1, 3, 4)), ValueError, "boxes must have shape"),
        (lambda t: ops.interpolate_boxes(torch.tensor([[0, 5]]), torch.zeros(1, 2, 4), torch.tensor([3])), ValueError, "counts must be in"),
        (lambda t: ops.interpolate_boxes(torch.tensor([[0, 5]]), torch.full((1, 2, 4), float("nan"))), ValueError, "NaN"),
        (lambda t: ops.temporal_iou(torch.zeros(3), torch.zeros(2, 2)), ValueError, "spans_a must have 2 dimensions"),
    ],
)
def test_bad_tube_inputs_raise_clear_errors(call, err, match):
    t = Tubes(torch.zeros(2, 3, 4), torch.tensor([0, 1]), torch.tensor([3, 2]))
    with pytest.raises(err, match=match):
        call(t)


def test_temporal_iou():
    a = torch.tensor([[0, 5], [0, 10], [3, 3]])
    b = torch.tensor([[5, 10], [5, 15], [0, 10]])
    out = ops.temporal_iou(a, b)
    expected = torch.tensor([[0.0, 0.0, 0.5], [0.5, 1 / 3, 1.0], [0.0, 0.0, 0.0]])
    torch.testing.assert_close(out, expected)
    assert ops.temporal_iou(a.double(), b).dtype == torch.float64


# ---- interpolation and conversions --------------------------------------------------------------


def _sampled_tracks(n: int, k: int, gen: torch.Generator, dtype=torch.float64):
    gaps = torch.randint(1, 5, (n, k), generator=gen)
    frames = torch.randint(0, 20, (n, 1), generator=gen) + torch.cumsum(gaps, 1) - gaps[:, :1]
    boxes = torch.rand(n, k, 4, generator=gen, dtype=torch.float64).mul(50).to(dtype)
    counts = torch.randint(0, k + 1, (n,), generator=gen)
    return frames, boxes, counts


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n,k", [(6, 5), (1, 1), (0, 3), (3, 9)])
def test_interpolate_boxes_matches_reference(backend, dtype, n, k, gen):
    frames, boxes, counts = _sampled_tracks(n, k, gen, dtype)
    dev = device_of(backend)
    out = ops.interpolate_boxes(frames.to(dev), boxes.to(dev), counts.to(dev), backend=backend)
    expected = ref.interpolate_boxes_ref(frames, boxes, counts)
    for got, want in zip(out, expected):
        torch.testing.assert_close(got.cpu(), want, **TOL[dtype])


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
def test_interpolate_boxes_hits_samples_and_gradcheck(backend, gen):
    dev = device_of(backend)
    frames = torch.tensor([[2, 4, 9], [0, 1, 2]], device=dev)
    boxes = torch.tensor([[[0.0, 0, 10, 10], [2, 2, 12, 12], [12, 12, 22, 22]], [[1.0, 1, 2, 2]] * 3], device=dev)
    tubes = ops.interpolate_boxes(frames, boxes, backend=backend)
    assert tubes.start.tolist() == [2, 0] and tubes.length.tolist() == [8, 3]
    assert tubes.boxes[0, 0].tolist() == [0, 0, 10, 10] and tubes.boxes[0, 7].tolist() == [12, 12, 22, 22]
    assert tubes.boxes[0, 1].tolist() == [1, 1, 11, 11]  # frame 3: halfway between samples
    assert tubes.boxes[0, 4].tolist() == pytest.approx([6, 6, 16, 16])  # frame 6 = 4 + 2/5 * (9 - 4)
    assert (tubes.boxes[1, 3:] == 0).all()
    f, b, c = _sampled_tracks(4, 4, gen)
    c.clamp_(min=1)
    x = b.to(dev).requires_grad_()
    assert torch.autograd.gradcheck(lambda y: ops.interpolate_boxes(f.to(dev), y, c.to(dev), backend=backend).boxes,
                                    (x,), eps=1e-6, atol=1e-7)


def test_pack_unpack_and_frame_dict_round_trip(gen):
    tracks = [torch.rand(3, 4, generator=gen), torch.zeros(0, 4), torch.rand(5, 4, generator=gen)]
    tubes = ops.pack_tubes(tracks, [4, 0, 7])
    assert tubes.boxes.shape == (3, 5, 4) and tubes.length.tolist() == [3, 0, 5]
    for (start, boxes), track, s in zip(ops.unpack_tubes(tubes), tracks, [4, 0, 7]):
        assert start == s and torch.equal(boxes, track)
    dicts = ops.tubes_to_frame_boxes(tubes)
    assert sorted(dicts[0]) == [4, 5, 6] and dicts[1] == {}
    back = ops.tubes_from_frame_boxes(dicts)
    for x, y in zip(back, tubes):
        assert torch.equal(x, y)


def test_frame_dicts_with_gaps_are_interpolated_or_rejected():
    track = {10: [0.0, 0.0, 4.0, 4.0], 12: [2.0, 2.0, 6.0, 6.0]}
    tubes = ops.tubes_from_frame_boxes([track])
    assert tubes.start.tolist() == [10] and tubes.length.tolist() == [3]
    assert tubes.boxes[0, 1].tolist() == [1.0, 1.0, 5.0, 5.0]
    with pytest.raises(ValueError, match="track 0 has gaps"):
        ops.tubes_from_frame_boxes([track], fill_gaps=False)


def test_aligned_and_interpolation_ops_compile_fullgraph(gen):
    a = random_tubes(5, 6, video=4, dtype=torch.float64, generator=gen)
    b = random_tubes(5, 6, video=4, dtype=torch.float64, generator=gen)
    x = a.boxes.clone().requires_grad_()

    def loss(boxes):
        return ops.tube_iou_aligned(Tubes(boxes, a.start, a.length), b, mode="iou3dt", backend="cpp").sum()

    compiled = torch.compile(loss, fullgraph=True)
    (g_compiled,) = torch.autograd.grad(compiled(x), x)
    (g_eager,) = torch.autograd.grad(loss(x), x)
    torch.testing.assert_close(g_compiled, g_eager)

    frames, boxes, counts = _sampled_tracks(4, 5, gen)
    counts.clamp_(min=1)
    length = int((frames.gather(1, (counts - 1)[:, None])[:, 0] - frames[:, 0]).max()) + 1
    interp = torch.compile(lambda f, y, c: torch.ops.pyvrel.interpolate_boxes(f, y, c, length, "cpp"), fullgraph=True)
    torch.testing.assert_close(interp(frames, boxes, counts), ref.interpolate_boxes_ref(frames, boxes, counts).boxes)
    torch.library.opcheck(torch.ops.pyvrel.interpolate_boxes.default,
                          (frames, boxes.clone().requires_grad_(), counts, length, "cpp"))
