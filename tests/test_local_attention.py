"""local_attention: every backend against the band-mask reference, gradients, opcheck, errors."""

import pytest
import torch

import pyvrel.ops as ops
from pyvrel.ops import reference as ref
from conftest import KERNEL_BACKENDS, device_of

TOL = {torch.float32: dict(atol=2e-5, rtol=2e-5), torch.float64: dict(atol=1e-10, rtol=1e-10)}

# name -> (B, H, Lq, Lk, D, Dv, window, options); options may hold dilation, causal, boundary,
# "lengths" (random q/kv lengths), "centers" (random explicit centres), "bias" (random rel_bias).
CASES = {
    "self_odd": (2, 3, 13, 13, 8, 8, 5, {}),
    "self_even_bias_lengths": (3, 2, 11, 11, 4, 6, 4, dict(lengths=True, bias=True)),
    "self_extents_dilation": (2, 2, 17, 17, 5, 3, (3, 1), dict(dilation=2, bias=True)),
    "causal_lengths": (2, 2, 12, 12, 4, 4, 7, dict(causal=True, lengths=True)),
    "shift_lengths_bias": (3, 2, 14, 14, 4, 5, 5, dict(boundary="shift", lengths=True, bias=True)),
    "shift_dilation_causal": (2, 1, 15, 15, 3, 3, 4, dict(boundary="shift", dilation=3, causal=True)),
    "cross_same_length": (2, 2, 10, 10, 6, 4, 3, dict(cross=True, lengths=True)),
    "cross_downsampled": (2, 2, 7, 15, 4, 4, 5, dict(lengths=True, bias=True)),
    "cross_upsampled_shift": (2, 2, 16, 5, 4, 4, 3, dict(boundary="shift")),
    "explicit_centers": (2, 3, 6, 19, 4, 5, 6, dict(centers=True, bias=True, lengths=True)),
    "explicit_centers_shift": (2, 1, 5, 12, 4, 4, (2, 2), dict(centers=True, boundary="shift", dilation=2)),
    "shorter_than_window": (2, 2, 3, 3, 4, 4, 9, dict(bias=True)),
    "shorter_than_window_shift": (2, 2, 4, 4, 4, 4, 9, dict(boundary="shift", lengths=True)),
    "length_one": (2, 2, 1, 1, 4, 4, 5, dict(bias=True)),
    "window_one": (2, 2, 9, 9, 4, 4, 1, {}),
    "all_padding_rows": (3, 2, 8, 8, 4, 4, 3, dict(padding_rows=True, bias=True)),
}


def make_case(name, dtype, device, gen):
    B, H, Lq, Lk, D, Dv, window, opt = CASES[name]

    def rnd(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64).to(dtype).to(device)

    q, k, v = rnd(B, H, Lq, D), rnd(B, H, Lk, D), rnd(B, H, Lk, Dv)
    if not opt.get("cross"):
        if Lq == Lk and D == Dv:
            k = q.clone()  # self attention: one sequence
    causal = opt.get("causal", False)
    left, right = ops.window_extents(window, causal)
    kw = dict(dilation=opt.get("dilation", 1), causal=causal, boundary=opt.get("boundary", "truncate"))
    if opt.get("lengths"):
        kw["q_lengths"] = torch.randint(0, Lq + 1, (B,), generator=gen).to(device)
        kw["kv_lengths"] = torch.randint(0, Lk + 1, (B,), generator=gen).to(device)
        kw["q_lengths"][0], kw["kv_lengths"][0] = Lq, Lk  # one full row
    if opt.get("padding_rows"):
        kw["q_lengths"] = torch.tensor([Lq, 0, Lq][:B], device=device)
        kw["kv_lengths"] = torch.tensor([Lk, Lk, 0][:B], device=device)
    if opt.get("centers"):
        kw["centers"] = torch.randint(0, Lk, (B, Lq), generator=gen).to(device)
    if opt.get("bias"):
        kw["rel_bias"] = rnd(H, left + right + 1)
    return (q, k, v, window), kw, (left, right)


def reference_of(args, kw, extents, scale=None):
    q, k, v, _ = args
    return ref.local_attention_ref(q, k, v, *extents, dilation=kw["dilation"], causal=kw["causal"],
                                   shift=kw["boundary"] == "shift", q_lengths=kw.get("q_lengths"),
                                   kv_lengths=kw.get("kv_lengths"), centers=kw.get("centers"),
                                   rel_bias=kw.get("rel_bias"), scale=scale)


def _finite(lse):
    return torch.where(torch.isfinite(lse), lse, torch.zeros_like(lse))


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", sorted(CASES))
def test_forward_and_gradients_match_reference(backend, dtype, case, gen):
    dev = device_of(backend)
    args, kw, extents = make_case(case, dtype, dev, gen)
    leaves = [args[0], args[1], args[2]] + ([kw["rel_bias"]] if "rel_bias" in kw else [])
    for t in leaves:
        t.requires_grad_()
    out, lse = ops.local_attention(*args, **kw, return_lse=True, backend=backend)
    exp_out, exp_lse = reference_of(args, kw, extents)
    assert out.shape == exp_out.shape and out.dtype == dtype and lse.shape == exp_lse.shape
    torch.testing.assert_close(out, exp_out, **TOL[dtype])
    assert torch.equal(torch.isfinite(lse), torch.isfinite(exp_lse))
    torch.testing.assert_close(_finite(lse), _finite(exp_lse).to(lse.dtype), **TOL[dtype])

    g_out = torch.randn(out.shape, generator=gen, dtype=torch.float64).to(dtype).to(dev)
    g_lse = torch.randn(lse.shape, generator=gen, dtype=torch.float64).to(lse.dtype).to(dev)
    got = torch.autograd.grad((out, _finite(lse)), leaves, (g_out, g_lse))
    expected = torch.autograd.grad((exp_out, _finite(exp_lse)), leaves, (g_out, g_lse.to(exp_lse.dtype)))
    for name, a, b in zip("q k v rel_bias".split(), got, expected):
        assert torch.isfinite(a).all(), name
        torch.testing.assert_close(a, b, **TOL[dtype], msg=lambda m: f"grad {name}: {m}")


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
@pytest.mark.parametrize("case", ["self_even_bias_lengths", "explicit_centers", "shift_lengths_bias",
                                  "all_padding_rows", "cross_downsampled"])
def test_gradcheck_float64(backend, case, gen):
    args, kw, _ = make_case(case, torch.float64, device_of(backend), gen)
    bias = kw.pop("rel_bias", None)
    inputs = tuple(t.detach().clone().requires_grad_() for t in args[:3]) + (
        (bias.detach().clone().requires_grad_(),) if bias is not None else ())

    def fn(q, k, v, *b):
        out, lse = ops.local_attention(q, k, v, args[3], **kw, rel_bias=b[0] if b else None, return_lse=True,
                                       backend=backend)
        return out, _finite(lse)

    # full Jacobians for two C++ cases; fast mode (random directional derivatives) elsewhere keeps
    # the suite (and the Triton interpreter) affordable
    fast = backend == "triton" or case not in ("self_even_bias_lengths", "all_padding_rows")
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6, fast_mode=fast)


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
def test_fully_masked_rows_give_zero_output_and_gradient(backend):
    dev = device_of(backend)
    q = torch.randn(3, 2, 6, 4, device=dev, requires_grad=True)
    k = torch.randn(3, 2, 6, 4, device=dev, requires_grad=True)
    v = torch.randn(3, 2, 6, 4, device=dev, requires_grad=True)
    bias = torch.randn(2, 3, device=dev, requires_grad=True)
    out, lse = ops.local_attention(q, k, v, 3, q_lengths=torch.tensor([4, 0, 6], device=dev),
                                   kv_lengths=torch.tensor([6, 6, 0], device=dev), rel_bias=bias,
                                   return_lse=True, backend=backend)
    assert out[0, :, 4:].abs().sum() == 0 and out[1:].abs().sum() == 0
    assert torch.isinf(lse[1:]).all() and torch.isfinite(lse[0, :, :4]).all()
    out.sum().backward()
    for t in (q, k, v, bias):
        assert torch.isfinite(t.grad).all()
    assert q.grad[1:].abs().sum() == 0 and q.grad[0, :, 4:].abs().sum() == 0
    assert k.grad[1:].abs().sum() == 0 and v.grad[1:].abs().sum() == 0


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
@pytest.mark.parametrize("shape", [(0, 2, 5, 5), (2, 2, 0, 4), (2, 0, 3, 3)])
def test_empty_inputs(backend, shape):
    dev = device_of(backend)
    B, H, Lq, Lk = shape
    q = torch.randn(B, H, Lq, 4, device=dev, requires_grad=True)
    k = torch.randn(B, H, Lk, 4, device=dev, requires_grad=True)
    v = torch.randn(B, H, Lk, 3, device=dev, requires_grad=True)
    out = ops.local_attention(q, k, v, 3, backend=backend)
    assert out.shape == (B, H, Lq, 3)
    out.sum().backward()
    assert k.grad.shape == k.shape and (k.grad == 0).all() and (v.grad == 0).all()


def test_blhd_layout_matches_bhld(gen):
    q, k, v = (torch.randn(2, 9, 3, 4, generator=gen) for _ in range(3))  # (B, L, H, D)
    out, lse = ops.local_attention(q, k, v, 5, layout="blhd", return_lse=True)
    exp, exp_lse = ops.local_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), 5, return_lse=True)
    assert out.shape == (2, 9, 3, 4) and lse.shape == (2, 9, 3)
    torch.testing.assert_close(out, exp.transpose(1, 2))
    torch.testing.assert_close(lse, exp_lse.transpose(1, 2))


def test_half_precision_on_cpu_is_computed_in_float32(gen):
    q, k, v = (torch.randn(2, 2, 10, 8, generator=gen) for _ in range(3))
    out = ops.local_attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), 5)
    assert out.dtype == torch.bfloat16
    exp = ref.local_attention_ref(q.bfloat16().float(), k.bfloat16().float(), v.bfloat16().float(), 2, 2)[0]
    torch.testing.assert_close(out.float(), exp, atol=2e-2, rtol=2e-2)


def test_cpp_backward_is_deterministic_across_thread_counts(gen):
    args, kw, _ = make_case("explicit_centers", torch.float32, "cpu", gen)
    grads = []
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            leaves = [t.detach().clone().requires_grad_() for t in args[:3]] + [kw["rel_bias"].detach().clone()
                                                                                 .requires_grad_()]
            out = ops.local_attention(*leaves[:3], args[3], **{**kw, "rel_bias": leaves[3]}, backend="cpp")
            grads.append(torch.autograd.grad(out, leaves, torch.ones_like(out)))
    finally:
        torch.set_num_threads(before)
    for a, b in zip(*grads):
        assert torch.equal(a, b)


def test_default_centres_of_pyramid_levels():
    start = ref.local_window_ref(4, 8, 0, 0, 1, False, False, torch.tensor([8]), None)
    assert start.tolist() == [[1, 3, 5, 7]]  # floor((i + 0.5) * 8 / 4)
    start = ref.local_window_ref(8, 4, 0, 0, 1, False, False, torch.tensor([4]), None)
    assert start.tolist() == [[0, 0, 1, 1, 2, 2, 3, 3]]


def test_shift_keeps_full_windows_and_truncate_cuts_them():
    n = torch.tensor([10])
    shift = ref.local_window_ref(10, 10, 2, 2, 1, False, True, n, None)
    assert shift[0, :3].tolist() == [0, 0, 0] and shift[0, -3:].tolist() == [5, 5, 5]
    trunc = ref.local_window_ref(10, 10, 2, 2, 1, False, False, n, None)
    assert trunc[0, :3].tolist() == [-2, -1, 0]
    # shifted at the valid end, not the padded end
    assert ref.local_window_ref(10, 10, 2, 2, 1, False, True, torch.tensor([6]), None)[0, 5].item() == 1


def test_opcheck(gen):
    args, kw, (left, right) = make_case("explicit_centers", torch.float64, "cpu", gen)
    q, k, v, _ = args
    B, Lq, Lk = q.shape[0], q.shape[2], k.shape[2]
    fwd_args = (q.requires_grad_(), k.requires_grad_(), v.requires_grad_(), kw["q_lengths"], kw["kv_lengths"],
                kw["centers"], kw["rel_bias"].requires_grad_(), left, right, 1, False, False, 0.5, "cpp")
    torch.library.opcheck(torch.ops.pyvrel.local_attention_fwd.default, fwd_args)
    out, lse = torch.ops.pyvrel.local_attention_fwd(*fwd_args)
    bwd_args = (torch.randn_like(out), torch.randn_like(lse), q.detach(), k.detach(), v.detach(), out.detach(),
                lse.detach(), kw["q_lengths"], kw["kv_lengths"], kw["centers"], kw["rel_bias"].detach(), left, right,
                1, False, False, 0.5, "cpp")
    torch.library.opcheck(torch.ops.pyvrel.local_attention_bwd.default, bwd_args)
    assert B and Lq and Lk


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(window=0), ValueError, "window .* >= 1"),
        (dict(window=(2, -1)), ValueError, "extents"),
        (dict(window=2.5), TypeError, "window must be an int"),
        (dict(dilation=0), ValueError, "dilation"),
        (dict(boundary="clamp"), ValueError, "boundary"),
        (dict(kv_lengths=torch.tensor([9, 3])), ValueError, r"kv_lengths must be in \[0, 8\]"),
        (dict(q_lengths=torch.tensor([1, 2, 3])), ValueError, "q_lengths must have shape"),
        (dict(q_lengths=torch.tensor([1.0, 2.0])), TypeError, "q_lengths must be an integer"),
        (dict(centers=torch.full((2, 6), 8)), ValueError, r"centers must be key positions in \[0, Lk\)"),
        (dict(centers=torch.zeros(2, 5, dtype=torch.long)), ValueError, "centers must have shape"),
        (dict(rel_bias=torch.zeros(3, 4)), ValueError, r"rel_bias must have shape \(H, left \+ right \+ 1\)"),
        (dict(k=torch.zeros(2, 3, 8, 4)), ValueError, "same batch size and number of heads"),
        (dict(k=torch.zeros(2, 2, 8, 5)), ValueError, "same head dim"),
        (dict(v=torch.zeros(2, 2, 7, 4)), ValueError, "same length"),
        (dict(v=torch.zeros(2, 2, 8, 4, dtype=torch.float64)), TypeError, "dtype"),
        (dict(q=torch.zeros(2, 6, 4)), ValueError, "q must have 4 dimensions"),
        (dict(layout="lbhd"), ValueError, "layout"),
        (dict(backend="cuda"), RuntimeError, "cannot run"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, error, match):
    call = dict(q=torch.zeros(2, 2, 6, 4), k=torch.zeros(2, 2, 8, 4), v=torch.zeros(2, 2, 8, 4), window=3)
    call.update(kwargs)
    with pytest.raises(error, match=match):
        ops.local_attention(call.pop("q"), call.pop("k"), call.pop("v"), call.pop("window"), **call)
