"""viterbi_link, soft_viterbi and path_tubes: every backend against the references."""

import itertools
import math

import pytest
import torch

import pyvrel.ops as ops
from pyvrel.ops import reference as box_ref
from conftest import KERNEL_BACKENDS, device_of, random_boxes

BACKENDS = KERNEL_BACKENDS  # cpp, triton (interpreter here), cuda


def problems(B, T, N, gen, dtype=torch.float64, integer=False):
    """Drifting proposals (so IoUs between frames are often > 0), random unaries, random gaps."""
    base = random_boxes(B, 1, N, dtype=torch.float64, generator=gen, scale=40)
    boxes = base + torch.cumsum(torch.randn(B, T, N, 1, generator=gen, dtype=torch.float64) * 2, dim=1)
    if integer:
        boxes = boxes.round()
    unary = torch.rand(B, T, N, generator=gen, dtype=torch.float64)
    frames = torch.cumsum(torch.randint(1, 11, (B, T), generator=gen), dim=1)
    return boxes.to(dtype), unary.to(dtype), frames


def brute_force(boxes, unary, frames, L, valid, w=1.0, gap_scaling=True, legacy=False, tau=None, top=None):
    """Max (or τ-log-sum-exp, or the ``top`` best scores) over all paths of one problem, by
    enumeration."""
    N = unary.shape[1]
    scores = []
    for path in itertools.product(range(N), repeat=L):
        if not all(valid[t, p] for t, p in enumerate(path)):
            continue
        s = 0.0
        for t, p in enumerate(path):
            s += (2.0 if legacy and 0 < t < L - 1 else 1.0) * float(unary[t, p])
        for t in range(L - 1):
            lam = w / float(frames[t + 1] - frames[t]) if gap_scaling else w
            s += lam * float(box_ref.box_iou_aligned_ref(boxes[t, path[t]], boxes[t + 1, path[t + 1]]))
        scores.append((s, path))
    if top is not None:
        return sorted((s for s, _ in scores), reverse=True)[:top]
    if tau is None:
        return max(scores, key=lambda x: x[0])
    m = max(s for s, _ in scores)
    return tau * (m / tau + math.log(sum(math.exp((s - m) / tau) for s, _ in scores)))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("legacy", [False, True])
@pytest.mark.parametrize("gap_scaling", [True, False])
def test_viterbi_matches_reference(backend, dtype, legacy, gap_scaling, gen):
    B, T, N = 5, 13, 7
    boxes, unary, frames = problems(B, T, N, gen, dtype)
    lengths = torch.tensor([T, 1, 0, 6, 2])
    counts = torch.randint(1, N + 1, (B, T), generator=gen)
    counts[3, 2] = 0  # an empty frame: no path for problem 3
    dev = device_of(backend)
    kw = dict(k=3, pairwise_weight=1.5, gap_scaling=gap_scaling, legacy_vrgv=legacy)
    out = ops.viterbi_link(boxes.to(dev), unary.to(dev), frames.to(dev), lengths.to(dev), counts.to(dev),
                           backend=backend, **kw)
    expected = ops.viterbi_link(boxes, unary, frames, lengths, counts, backend="reference", **kw)
    assert torch.equal(out.paths.cpu(), expected.paths) and torch.equal(out.scores.cpu(), expected.scores)
    assert expected.scores[3].tolist() == [-math.inf] * 3 and expected.scores[2, 0] == -math.inf
    assert expected.paths[1, 0, 0] >= 0 and bool((expected.paths[1, 0, 1:] == -1).all())
    # k paths are disjoint and in decreasing score order
    for b in range(B):
        s = expected.scores[b]
        assert bool((s[1:] <= s[:-1]).all())
        for t in range(int(lengths[b])):
            used = [int(p) for p in expected.paths[b, :, t] if p >= 0]
            assert len(used) == len(set(used))


@pytest.mark.parametrize("legacy", [False, True])
def test_viterbi_reference_is_the_exact_optimum(legacy, gen):
    boxes, unary, frames = problems(2, 4, 3, gen, integer=True)
    valid = torch.rand(2, 4, 3, generator=gen) < 0.8
    valid[:, :, 0] = True
    for b in range(2):
        out = ops.viterbi_link(boxes[b], unary[b], frames[b], valid=valid[b], legacy_vrgv=legacy, backend="cpp")
        best, path = brute_force(boxes[b], unary[b], frames[b], 4, valid[b], legacy=legacy)
        assert out.scores[0].item() == pytest.approx(best, abs=1e-12)
        assert out.paths[0].tolist() == list(path)


@pytest.mark.parametrize("backend", BACKENDS)
def test_viterbi_ties_and_last_link(backend):
    dev = device_of(backend)
    # Two identical proposals in every frame: the lowest index wins every tie.
    boxes = torch.tensor([[[0.0, 0, 10, 10]] * 2] * 3, device=dev)
    out = ops.viterbi_link(boxes, torch.full((3, 2), 0.5, device=dev), k=2, backend=backend)
    assert out.paths.tolist() == [[0, 0, 0], [1, 1, 1]]
    # vRGV's quirk 1: continuity into the last frame must win over a higher but
    # far-away last box, because the last link counts.
    near, far = [0.0, 0, 10, 10], [100.0, 100, 110, 110]
    boxes = torch.tensor([[near, far]] * 4, device=dev)
    unary = torch.tensor([[0.5, 0.0], [0.5, 0.0], [0.5, 0.0], [0.45, 0.55]], device=dev)
    out = ops.viterbi_link(boxes, unary, gap_scaling=False, backend=backend)
    assert out.paths[0].tolist() == [0, 0, 0, 0] and out.scores[0].item() == pytest.approx(1.95 + 3.0)


@pytest.mark.parametrize("T,N", [(1, 1), (1, 4), (5, 1), (0, 3), (3, 0)])
def test_viterbi_degenerate_shapes(T, N, gen):
    boxes, unary, frames = problems(1, T, N, gen)
    out = ops.viterbi_link(boxes[0], unary[0], frames[0], k=2, backend="cpp")
    expected = ops.viterbi_link(boxes[0], unary[0], frames[0], k=2, backend="reference")
    assert torch.equal(out.paths, expected.paths) and torch.equal(out.scores, expected.scores)
    assert out.paths.shape == (2, T)
    if T == 1 and N:
        assert out.scores[0].item() == unary[0, 0].max().item()  # a single frame: the best box


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("legacy", [False, True])
def test_soft_viterbi_matches_reference(backend, legacy, gen):
    B, T, N = 4, 7, 5
    boxes, unary, frames = problems(B, T, N, gen)
    lengths = torch.tensor([T, 1, 4, 0])
    valid = torch.rand(B, T, N, generator=gen) < 0.8
    valid[..., 0] = True
    dev = device_of(backend)
    w = torch.tensor([0.5, 2.0, 1.0, 1.0], dtype=torch.float64)
    u_dev, w_dev = unary.to(dev).clone().requires_grad_(), w.to(dev).clone().requires_grad_()
    out = ops.soft_viterbi(boxes.to(dev), u_dev, frames.to(dev), lengths.to(dev), valid=valid.to(dev),
                           pairwise_weight=w_dev, tau=0.7, legacy_vrgv=legacy, backend=backend)
    u_ref, w_ref = unary.clone().requires_grad_(), w.clone().requires_grad_()
    expected = ops.soft_viterbi(boxes, u_ref, frames, lengths, valid=valid, pairwise_weight=w_ref, tau=0.7,
                                legacy_vrgv=legacy, backend="reference")
    tol = dict(atol=1e-10, rtol=1e-10)  # exp/log of the device libraries differ in the last bits
    torch.testing.assert_close(out.marginals.cpu(), expected.marginals, **tol)
    torch.testing.assert_close(out.log_partition.cpu(), expected.log_partition, **tol)
    grads = torch.autograd.grad(out.log_partition[:3].sum(), (u_dev, w_dev))  # problem 3 has no path
    grads_ref = torch.autograd.grad(expected.log_partition[:3].sum(), (u_ref, w_ref))
    for g, g_ref in zip(grads, grads_ref):
        torch.testing.assert_close(g.cpu(), g_ref, **tol)
    sums = expected.marginals.sum(-1)
    for b in range(B):
        L = int(lengths[b])
        torch.testing.assert_close(sums[b, :L], torch.ones(L, dtype=torch.float64))
        assert bool((sums[b, L:] == 0).all()) and bool((expected.marginals[b][~valid[b]] == 0).all())
    assert expected.log_partition[3] == -math.inf
    z = brute_force(boxes[2], unary[2], frames[2], 4, valid[2], w=1.0, legacy=legacy, tau=0.7)
    assert expected.log_partition[2].item() == pytest.approx(z, abs=1e-10)


def test_soft_viterbi_small_tau_recovers_the_hard_path(gen):
    boxes, unary, frames = problems(3, 9, 6, gen)
    hard = ops.viterbi_link(boxes, unary, frames, backend="cpp")
    tau = 1e-4
    soft = ops.soft_viterbi(boxes, unary, frames, tau=tau, backend="cpp")
    # max <= tau * log sum exp(score / tau) <= max + tau * log(#paths), always
    assert bool((soft.log_partition >= hard.scores[:, 0] - 1e-12).all())
    assert bool((soft.log_partition <= hard.scores[:, 0] + tau * 9 * math.log(6) + 1e-12).all())
    # the marginals concentrate on the hard path (unless a second path is within ~10 tau: check
    # on small problems where all paths can be enumerated)
    boxes, unary, frames = problems(4, 4, 3, gen)
    hard = ops.viterbi_link(boxes, unary, frames, backend="cpp")
    soft = ops.soft_viterbi(boxes, unary, frames, tau=tau, backend="cpp")
    for b in range(4):
        values = sorted((brute_force(boxes[b], unary[b], frames[b], 4, torch.ones(4, 3, dtype=torch.bool),
                                     tau=None, top=2)), reverse=True)
        if values[0] - values[1] > 20 * tau:
            assert soft.marginals[b].argmax(-1).tolist() == hard.paths[b, 0].tolist()
            assert bool((soft.marginals[b].max(-1).values > 0.99).all())


@pytest.mark.parametrize("backend", ["cpp", "reference"])  # other backends: gradients compared below
@pytest.mark.parametrize("legacy", [False, True])
def test_soft_viterbi_gradcheck(backend, legacy, gen):
    dev = "cpu" if backend == "reference" else device_of(backend)
    boxes, unary, frames = (x.to(dev) for x in problems(2, 5, 4, gen))
    unary.requires_grad_()
    w = torch.tensor([0.8, 1.3], dtype=torch.float64, device=dev, requires_grad=True)
    lengths = torch.tensor([5, 3], device=dev)

    def f(u, weight):
        return ops.soft_viterbi(boxes, u, frames, lengths, pairwise_weight=weight, tau=0.6, legacy_vrgv=legacy,
                                backend=backend).log_partition

    assert torch.autograd.gradcheck(f, (unary, w))
    (g,) = torch.autograd.grad(f(unary, w).sum(), unary)
    m = ops.soft_viterbi(boxes, unary, frames, lengths, pairwise_weight=w, tau=0.6, backend="reference").marginals
    if not legacy:
        torch.testing.assert_close(g, m.to(dev))  # the gradient w.r.t. the unaries is the marginals


def test_viterbi_ops_opcheck_and_compile(gen):
    boxes, unary, frames = problems(2, 5, 4, gen)
    lengths, valid = torch.tensor([5, 3]), torch.ones(2, 5, 4, dtype=torch.uint8)
    torch.library.opcheck(torch.ops.pyvrel.viterbi_link.default,
                          (boxes, unary, frames, lengths, valid, 2, 1.0, True, False, 0.0, "cpp"))
    w = torch.tensor([1.0, 0.5], dtype=torch.float64, requires_grad=True)
    torch.library.opcheck(torch.ops.pyvrel.soft_viterbi.default,
                          (boxes, unary.requires_grad_(), frames, lengths, valid, w, 1.0, True, False, 0.0, "cpp"),
                          test_utils=("test_schema", "test_faketensor", "test_autograd_registration"))
    compiled = torch.compile(lambda u: ops.soft_viterbi(boxes, u, frames, lengths, backend="cpp").log_partition.sum(),
                             fullgraph=True)
    (g,) = torch.autograd.grad(compiled(unary), unary)
    torch.testing.assert_close(g, ops.soft_viterbi(boxes, unary, frames, lengths, backend="reference").marginals)


def test_path_tubes_interpolates_with_real_frame_indices():
    # Two samples at video frames 60 and 64 (not positions 0 and 1 within a clip: vRGV quirk 2).
    boxes = torch.tensor([[[0.0, 0, 4, 4]], [[4.0, 0, 8, 4]]])
    frames = torch.tensor([60, 64])
    paths = ops.viterbi_link(boxes, torch.ones(2, 1), frames).paths
    tubes = ops.path_tubes(boxes, paths, frames)
    assert tubes.start.tolist() == [60] and tubes.length.tolist() == [5]
    torch.testing.assert_close(tubes.boxes[0, :, 0], torch.tensor([0.0, 1, 2, 3, 4]))
    # paths that do not exist give empty tubes
    two = ops.path_tubes(boxes, ops.viterbi_link(boxes, torch.ones(2, 1), frames, k=2).paths, frames)
    assert two.length.tolist() == [5, 0]


@pytest.mark.parametrize(
    "kwargs,err,match",
    [
        (dict(boxes=torch.zeros(3, 4)), ValueError, "boxes must have shape"),
        (dict(unary=torch.zeros(3, 3)), ValueError, "unary must have shape"),
        (dict(frames=torch.tensor([0, 2, 2])), ValueError, "strictly increasing"),
        (dict(frames=torch.tensor([0.0, 1, 2])), TypeError, "frames must be an integer tensor"),
        (dict(lengths=torch.tensor(4)), ValueError, "lengths must be in"),
        (dict(counts=torch.tensor([1, 2, 3])), ValueError, "counts must be in"),
        (dict(valid=torch.ones(3, 2, dtype=torch.bool), counts=torch.ones(3, dtype=torch.int64)), ValueError, "not both"),
        (dict(k=0), ValueError, "k must be a positive int"),
        (dict(pixel_offset=0.5), ValueError, "pixel_offset must be 0"),
        (dict(unary=torch.tensor([[0.0, float("inf")]] * 3)), ValueError, "unary contains NaN"),
        (dict(boxes=torch.full((3, 2, 4), float("nan"))), ValueError, "boxes contains NaN"),
        (dict(boxes=torch.full((3, 2, 4), float("nan")), counts=torch.zeros(3, dtype=torch.int64), k=1), None, None),
        (dict(backend="cuda"), RuntimeError, "backend 'cuda' cannot run"),
    ],
)
def test_viterbi_bad_inputs(kwargs, err, match):
    args = dict(boxes=torch.zeros(3, 2, 4), unary=torch.zeros(3, 2))
    args.update(kwargs)
    if err is None:  # padding is never read, so NaN there is fine: no box, no path
        assert ops.viterbi_link(args.pop("boxes"), args.pop("unary"), **args).scores.tolist() == [float("-inf")]
        return
    with pytest.raises(err, match=match):
        ops.viterbi_link(args.pop("boxes"), args.pop("unary"), **args)


def test_soft_viterbi_bad_inputs():
    boxes, unary = torch.zeros(3, 2, 4), torch.zeros(3, 2)
    with pytest.raises(ValueError, match="tau must be > 0"):
        ops.soft_viterbi(boxes, unary, tau=0.0)
    with pytest.raises(ValueError, match="pairwise_weight must be"):
        ops.soft_viterbi(boxes, unary, pairwise_weight=torch.ones(3))


@pytest.mark.parametrize("backend", BACKENDS)
def test_viterbi_random_configurations(backend, gen):
    dev = device_of(backend)
    for _ in range(10):
        B, T, N = (int(x) for x in torch.randint(1, 7, (3,), generator=gen))
        dtype = (torch.float32, torch.float64)[int(torch.randint(0, 2, (), generator=gen))]
        boxes, unary, frames = problems(B, T, N, gen, dtype, integer=bool(torch.rand((), generator=gen) < 0.5))
        if bool(torch.rand((), generator=gen) < 0.4):
            unary = (unary * 4).round() / 4  # ties
        lengths = torch.randint(0, T + 1, (B,), generator=gen)
        valid = torch.rand(B, T, N, generator=gen) < 0.85
        pick = lambda options: options[int(torch.randint(0, len(options), (), generator=gen))]  # noqa: E731
        kw = dict(k=pick([1, 2, 3]), legacy_vrgv=pick([False, True]), gap_scaling=pick([False, True]),
                  pixel_offset=pick([0, 1]), pairwise_weight=pick([0.3, 1.0, 2.5]))
        out = ops.viterbi_link(boxes.to(dev), unary.to(dev), frames.to(dev), lengths.to(dev), valid=valid.to(dev),
                               backend=backend, **kw)
        expected = ops.viterbi_link(boxes, unary, frames, lengths, valid=valid, backend="reference", **kw)
        assert torch.equal(out.paths.cpu(), expected.paths) and torch.equal(out.scores.cpu(), expected.scores)


_AOT_SCRIPT = """
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
import pyvrel.kernels.viterbi as K
common = {"lam_ptr": "*fp64", "lengths_ptr": "*i64", "ok_ptr": "*u8", "T": "i32", "N": "i32", "off": "fp32",
          "LEGACY": "constexpr", "BLOCK_N": "constexpr"}
kernels = [(K._viterbi_link_kernel, {"back_ptr": "*i32", "last_ptr": "*fp64"}),
           (K._soft_viterbi_kernel, {"gamma_ptr": "*fp64", "tau_ptr": "*fp64", "alpha_ptr": "*fp64",
                                     "marg_ptr": "*fp64", "logz_ptr": "*fp64", "gw_ptr": "*fp64"})]
for fn, extra in kernels:
    for dtype in ("fp32", "fp64"):
        names = fn.arg_names
        types = {"boxes_ptr": "*" + dtype, "unary_ptr": "*" + dtype, **common, **extra}
        src = ASTSource(fn=fn, signature={n: types[n] for n in names}, constexprs={"LEGACY": True, "BLOCK_N": 64})
        ptx = triton.compile(src, target=GPUTarget("cuda", 80, 32), options={"enable_fp_fusion": False}).asm["ptx"]
        if fn is K._viterbi_link_kernel:  # exact arithmetic on GPUs (soft: libdevice exp/log use fma)
            assert "fma." not in ptx and "div.full.f32" not in ptx
print("compiled")
"""


@pytest.mark.slow
@pytest.mark.triton
def test_triton_viterbi_kernels_compile_for_gpus(tmp_path):
    # GPU-only compile errors (and fused or approximate arithmetic) show up here without a GPU:
    # the kernels are compiled to PTX for sm_80 in a process without the interpreter.
    import os
    import subprocess
    import sys

    pytest.importorskip("triton")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run([sys.executable, "-c", _AOT_SCRIPT], env=env, cwd=tmp_path,  # the installed package
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and "compiled" in done.stdout, done.stderr[-2000:]
