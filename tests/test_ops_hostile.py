"""Hostile input to the ops (issue 12): calls that used to kill the process, give NaN/inf from
valid input, or fail on valid empty input.

Each former crash runs in a subprocess (with a memory limit where the crash was an allocation),
so a regression fails one test instead of killing the test runner.
"""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap

import pytest
import torch

import pyvrel
from conftest import KERNEL_BACKENDS, device_of, host_syncs, needs_gpu
from pyvrel import ops

ALL_BACKENDS = [*KERNEL_BACKENDS, pytest.param("reference", id="reference")]

# Runs before each subprocess reproducer: two OpenMP/intra-op threads, started by a warm-up call
# (thread creation under a memory limit is not what is tested), then the address-space limit.
_PRELUDE = """
import os, resource, torch
torch.set_num_threads(2)
from pyvrel import ops
q = torch.randn(2, 2, 70, 4)
ops.local_attention(q, q, q, 3)
def limit_memory(extra_mb):
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) for line in f if line.startswith("VmSize:")) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (vm + extra_mb * 2**20, resource.RLIM_INFINITY))
"""


def _run(code: str, timeout: float = 300) -> str:
    """Run ``code`` after the prelude in a fresh interpreter; fail unless it exits normally."""
    env = {"OMP_NUM_THREADS": "2", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-P", "-c", _PRELUDE + textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, f"exit status {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout


# ---- the process never aborts ------------------------------------------------------------------


def test_local_attention_huge_window_is_clipped_to_the_keys():
    out = _run("""
        q = torch.randn(1, 1, 10, 8)
        a = ops.local_attention(q, q, q, 10**10)
        b = ops.local_attention(q, q, q, (2**62, 2**62))
        c = ops.local_attention(q, q, q, (2**62, 2**62), boundary="shift", dilation=3)
        whole = ops.local_attention(q, q, q, 19)
        print(torch.allclose(a, whole, atol=1e-6), torch.allclose(b, whole, atol=1e-6),
              torch.allclose(c, ops.local_attention(q, q, q, (4, 4), boundary="shift", dilation=3), atol=1e-6))
    """)
    assert out.split() == ["True", "True", "True"]


def test_tube_iou_far_apart_starts():
    # the block buffer was sized by the span of start frames: 2**40 frames for two 4-frame tubes
    out = _run("""
        b = torch.tensor([[[0, 0, 10, 10.]] * 4] * 2)
        print(ops.tube_iou(ops.Tubes(b, torch.tensor([0, 0]), torch.tensor([4, 4])),
                           ops.Tubes(b, torch.tensor([0, 2**40]), torch.tensor([4, 4]))).tolist())
    """)
    assert out.strip() == "[[1.0, 0.0], [1.0, 0.0]]"


def test_soft_viterbi_link_table_is_not_allocated_whole():
    # 30 links x 1000 x 1000 weights (240 MB) used to be allocated inside the parallel region
    out = _run("""
        g = torch.Generator().manual_seed(0)
        b = torch.rand(1, 31, 1000, 4, generator=g, dtype=torch.float64) * 500
        b[..., 2:] += b[..., :2]
        u = torch.rand(1, 31, 1000, generator=g, dtype=torch.float64)
        limit_memory(150)
        r = ops.soft_viterbi(b, u, tau=0.1)
        print(bool(torch.isfinite(r.log_partition).all()), float((r.marginals.sum(-1) - 1).abs().max()) < 1e-9)
    """)
    assert out.split() == ["True", "True"]


def test_seq_nms_out_of_memory_is_a_memory_error():
    # 30 000 x 30 000 links between two frames: 64-bit offsets, and a MemoryError naming the op
    # when they do not fit (it was std::bad_alloc inside an OpenMP region: abort)
    out = _run("""
        boxes = torch.tensor([0., 0., 10., 10.]).expand(2, 30000, 4).contiguous()
        limit_memory(300)
        try:
            ops.seq_nms(boxes, torch.rand(2, 30000), link_threshold=0.0)
            print("done")
        except MemoryError as e:
            print("MemoryError", e)
    """)
    assert out.startswith("MemoryError") and "seq_nms" in out


# ---- no NaN or inf from valid input -------------------------------------------------------------


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_local_attention_fully_masked_rows(backend):
    dev = device_of(backend) if backend != "reference" else "cpu"
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 1, 6, 4, generator=g, dtype=torch.float64).to(dev).requires_grad_() for _ in range(3))
    bias = torch.tensor([[0.0, -math.inf]], dtype=torch.float64, device=dev, requires_grad=True)
    out, lse = ops.local_attention(q, k, v, (1, 0), rel_bias=bias, return_lse=True, backend=backend)
    # row 0 only has slot 1 (bias -inf): output 0, lse -inf; the others are ordinary rows
    assert torch.equal(out[0, 0, 0].cpu(), torch.zeros(4, dtype=torch.float64))
    assert lse[0, 0, 0].item() == -math.inf and bool(torch.isfinite(lse[0, 0, 1:]).all())
    (out.sum() + torch.where(torch.isfinite(lse), lse, 0).sum()).backward()
    for t in (q, k, v, bias):
        assert bool(torch.isfinite(t.grad).all())
    assert q.grad[0, 0, 0].abs().sum().item() == 0


@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("tau", [1e-12, 1e-50])
def test_soft_viterbi_small_tau_gives_the_hard_path(backend, tau):
    dev = device_of(backend) if backend != "reference" else "cpu"
    g = torch.Generator().manual_seed(1)
    boxes = torch.rand(2, 6, 5, 4, generator=g, dtype=torch.float64) * 50
    boxes[..., 2:] += boxes[..., :2]
    unary = torch.rand(2, 6, 5, generator=g, dtype=torch.float64)
    boxes, unary = boxes.to(dev), unary.to(dev).requires_grad_()
    hard = ops.viterbi_link(boxes, unary.detach(), backend="reference")
    soft = ops.soft_viterbi(boxes, unary, tau=tau, backend=backend)
    (grad,) = torch.autograd.grad(soft.log_partition.sum(), unary)
    one_hot = torch.nn.functional.one_hot(hard.paths[:, 0], 5).to(torch.float64)
    torch.testing.assert_close(soft.marginals, one_hot, atol=1e-9, rtol=0)
    torch.testing.assert_close(grad, one_hot, atol=1e-9, rtol=0)
    torch.testing.assert_close(soft.log_partition, hard.scores[:, 0], atol=1e-9, rtol=1e-12)


@pytest.mark.parametrize("call", [
    lambda: ops.soft_viterbi(torch.rand(3, 2, 4), torch.rand(3, 2), tau=float("nan")),
    lambda: ops.soft_viterbi(torch.rand(3, 2, 4), torch.rand(3, 2), tau=float("inf")),
    lambda: ops.soft_viterbi(torch.rand(3, 2, 4), torch.rand(3, 2), pairwise_weight=float("nan")),
    lambda: ops.soft_viterbi(torch.rand(3, 2, 4), torch.rand(3, 2), pairwise_weight=torch.tensor(float("inf"))),
    lambda: ops.viterbi_link(torch.rand(3, 2, 4), torch.rand(3, 2), pairwise_weight=float("inf")),
    lambda: ops.viterbi_link(torch.rand(3, 2, 4), torch.rand(3, 2), k=2.0),
    lambda: ops.nms(torch.rand(3, 4), torch.rand(3), float("nan")),
    lambda: ops.seq_nms(torch.rand(2, 3, 4), torch.rand(2, 3), min_score=float("nan")),
    lambda: ops.seq_nms(torch.rand(2, 3, 4), torch.rand(2, 3), link_threshold="0.5"),
    lambda: ops.seq_nms(torch.rand(2, 3, 4), torch.rand(2, 3), max_sequences=True),
    lambda: ops.local_attention(*(torch.randn(1, 1, 4, 2),) * 3, 3, scale=float("inf")),
    lambda: ops.local_attention(*(torch.randn(1, 1, 4, 2),) * 3, 3, dilation=1.0),
], ids=["tau-nan", "tau-inf", "weight-nan", "weight-tensor-inf", "viterbi-weight-inf", "k-float", "nms-threshold",
        "min-score", "threshold-str", "max-sequences-bool", "scale-inf", "dilation-float"])
def test_numeric_arguments_are_validated(call):
    with pytest.raises((ValueError, TypeError)) as info:
        call()
    assert any(name in str(info.value) for name in ("tau", "pairwise_weight", "k", "iou_threshold", "min_score",
                                                    "link_threshold", "max_sequences", "scale", "dilation"))


def test_frame_arithmetic_never_overflows():
    b = torch.zeros(1, 4, 4)
    with pytest.raises(ValueError, match="a.start"):
        ops.tube_iou(ops.Tubes(b, torch.tensor([2**62]), torch.tensor([4])), ops.Tubes(b, torch.tensor([0]),
                                                                                      torch.tensor([4])))
    with pytest.raises(ValueError, match="frames"):
        ops.interpolate_boxes(torch.tensor([[-2**62, 2**62]]), torch.zeros(1, 2, 4))
    with pytest.raises(ValueError, match="frames"):
        ops.viterbi_link(torch.rand(2, 1, 4), torch.rand(2, 1), frames=torch.tensor([0, 2**62]))


# ---- the reference accepts what the kernels accept ----------------------------------------------


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_local_attention_without_keys(backend):
    dev = device_of(backend) if backend != "reference" else "cpu"
    q = torch.randn(2, 1, 3, 4, device=dev)
    kv = torch.randn(2, 1, 0, 4, device=dev)
    out, lse = ops.local_attention(q, kv, kv, 3, return_lse=True, backend=backend)
    assert out.shape == (2, 1, 3, 4) and not bool(out.any()) and bool((lse == -math.inf).all())


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_soft_viterbi_without_path_backward(backend):
    dev = device_of(backend) if backend != "reference" else "cpu"
    unary = torch.rand(1, 3, 2, device=dev, requires_grad=True)
    weight = torch.tensor(1.0, device=dev, requires_grad=True)
    r = ops.soft_viterbi(torch.rand(1, 3, 2, 4, device=dev), unary, valid=torch.zeros(1, 3, 2, dtype=torch.bool,
                         device=dev), pairwise_weight=weight, backend=backend)
    assert r.log_partition.item() == -math.inf
    r.log_partition.sum().backward()
    assert not bool(unary.grad.any()) and weight.grad.item() == 0


# ---- valid empty input works; malformed paths are rejected --------------------------------------


def test_empty_tracks():
    tubes = ops.interpolate_boxes(torch.zeros(3, 0, dtype=torch.long), torch.zeros(3, 0, 4))
    assert tubes.boxes.shape == (3, 0, 4) and tubes.start.tolist() == [0] * 3 and tubes.length.tolist() == [0] * 3
    tubes = ops.tubes_from_frame_boxes([{}, {}])
    assert tubes.boxes.shape == (2, 0, 4) and tubes.length.tolist() == [0, 0]
    boxes = torch.zeros(0, 3, 4)
    r = ops.viterbi_link(boxes, torch.zeros(0, 3))
    tubes = ops.path_tubes(boxes, r.paths)
    assert tubes.boxes.shape == (1, 0, 4) and tubes.length.tolist() == [0]


@pytest.mark.parametrize("path", [[-1, 0, 1, 2], [0, -1, 1, 2], [0, -5, 1, 2], [0, 3, 1, 2]],
                         ids=["-1-first", "-1-middle", "-5", "index>=N"])
def test_path_tubes_rejects_malformed_paths(path):
    with pytest.raises(ValueError, match="path_tubes: paths"):
        ops.path_tubes(torch.rand(4, 3, 4), torch.tensor([path]))


# ---- no host synchronisation on CUDA (issue 17) ---------------------------------------------------


def test_validation_switch():
    from pyvrel.ops import _checks

    cpu, other = torch.zeros(1), torch.zeros(1, device="meta")  # meta stands for any non-CPU device
    assert pyvrel.get_validation() == "auto"
    assert _checks.check_values(cpu) and not _checks.check_values(other)
    pyvrel.set_validation("full")
    try:
        assert _checks.check_values(cpu) and _checks.check_values(other)
    finally:
        pyvrel.set_validation("auto")
    with pytest.raises(ValueError, match="set_validation: mode must be one of"):
        pyvrel.set_validation("off")


@pytest.mark.gpu
@needs_gpu
def test_no_host_sync_on_cuda():
    """Every op with a static output shape runs on CUDA tensors without waiting for the GPU
    (value checks are off by default there); lengths and counts are given, the slow paths."""
    dev = "cuda"
    boxes = torch.rand(2, 5, 3, 4, device=dev) * 10
    boxes[..., 2:] += boxes[..., :2]
    unary = torch.rand(2, 5, 3, device=dev)
    tubes = ops.Tubes(boxes[0].transpose(0, 1).contiguous(), torch.zeros(3, dtype=torch.long, device=dev),
                      torch.full((3,), 5, device=dev))
    q = torch.randn(2, 2, 8, 4, device=dev)
    lengths = torch.tensor([8, 5], device=dev)
    calls = {
        "box_iou": lambda: ops.box_iou(boxes[0, 0], boxes[0, 1]),
        "box_iou_aligned": lambda: ops.box_iou_aligned(boxes[0, 0], boxes[0, 1]),
        "tube_iou": lambda: ops.tube_iou(tubes, tubes),
        "tube_iou_aligned": lambda: ops.tube_iou_aligned(tubes, tubes),
        "local_attention": lambda: ops.local_attention(q, q, q, 3, q_lengths=lengths, kv_lengths=lengths),
        "viterbi_link": lambda: ops.viterbi_link(boxes, unary, lengths=torch.tensor([5, 3], device=dev)),
        "soft_viterbi": lambda: ops.soft_viterbi(boxes, unary, counts=torch.full((2, 5), 2, device=dev)),
    }
    for name, call in calls.items():
        call()  # first call: compile / load kernels outside the checked region
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            call()
        except RuntimeError as e:
            raise AssertionError(f"{name} synchronised with the host: {e}") from e
        finally:
            torch.cuda.set_sync_debug_mode("default")


@pytest.mark.gpu
@needs_gpu
def test_data_dependent_ops_sync_once_on_cuda():
    """nms and seq_nms wait for the GPU exactly once per call: for the size of their output
    (seq_nms "vidvrd2" twice when its overlapping sequences outgrow the first node list)."""
    dev = "cuda"
    boxes = torch.rand(2, 6, 5, 4, device=dev) * 10
    boxes[..., 2:] += boxes[..., :2] + 1
    scores = torch.rand(2, 6, 5, device=dev)
    calls = {"nms": lambda: ops.nms(boxes[0, 0], scores[0, 0], 0.5),
             "batched_nms": lambda: ops.batched_nms(boxes[0, 0], scores[0, 0], torch.arange(5, device=dev) % 2, 0.5),
             "seq_nms": lambda: ops.seq_nms(boxes, scores, num_frames=torch.tensor([6, 4], device=dev))}
    for name, call in calls.items():
        call()
        syncs = host_syncs(call)
        assert len(syncs) == 1, (name, syncs)



def test_eager_calls_skip_the_custom_op_dispatch_only_without_autograd():
    """Eager calls with nothing for autograd to record run the kernel function directly (torch's
    Python custom-op dispatch costs more than a small kernel); with gradients, under a dispatch
    mode (FakeTensor, FlopCounterMode, ...) or under torch.compile the op goes through
    torch.ops.pyvrel, so that those see it."""
    from torch.profiler import ProfilerActivity, profile
    from torch.utils._python_dispatch import TorchDispatchMode

    class Seen(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops.append(str(func))
            return func(*args, **(kwargs or {}))

    a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [1.0, 1.0, 3.0, 3.0]])
    for grad in (False, True):
        x = a.clone().requires_grad_(grad)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            out = ops.box_iou(x, a, backend="cpp")
        assert any("pyvrel::box_iou" in e.name for e in prof.events()) == grad
        assert torch.allclose(out.detach(), ops.box_iou(a, a, backend="reference"))
        with Seen() as seen:
            ops.box_iou(x, a, backend="cpp")
        assert any("pyvrel.box_iou" in name for name in seen.ops), seen.ops
