"""Backend choice for pyvrel ops: one place that decides, and says why."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import torch
from torch.utils._python_dispatch import _get_current_dispatch_mode

from pyvrel import _ext

Backend = Literal["cpp", "cuda", "triton", "reference"]
BACKENDS: tuple[str, ...] = ("cpp", "cuda", "triton", "reference")

log = logging.getLogger("pyvrel.ops")
_warned: set[tuple[str, str]] = set()


def why_not(backend: str, device: torch.device) -> str:
    """Empty string if ``backend`` can run on tensors of ``device``, else the reason."""
    if backend == "reference":
        return ""
    if backend == "cpp":
        if device.type != "cpu":
            return f"the C++ backend runs on CPU tensors (got {device.type} tensors)"
        return "" if _ext.has_cpu_ext() else "pyvrel._C is not built (reinstall with `pip install .`)"
    if backend == "cuda":
        if device.type != "cuda":
            return f"the CUDA backend runs on CUDA tensors (got {device.type} tensors)"
        return "" if _ext.has_cuda_ext() else "pyvrel._cuda is not built (`PYVREL_CUDA=ON pip install .`)"
    if backend == "triton":
        ok, why = _ext.triton_can_run(device)
        return "" if ok else why
    raise AssertionError(backend)


@torch.compiler.assume_constant_result  # evaluated once while torch.compile traces
def choose_backend(
    op: str, device: torch.device, requested: str | None, supported: Sequence[str]
) -> str:
    """Pick the backend of ``op`` for tensors on ``device``.

    ``requested=None`` is automatic: CUDA tensors use the CUDA extension, then Triton; CPU tensors
    use the C++ extension. When none of them can run, the reference runs and a warning says why.
    A requested backend that cannot run raises ``ValueError`` (unknown or unsupported by ``op``)
    or ``RuntimeError`` (not available here) with the reason.
    """
    if requested is not None:
        if requested not in BACKENDS:
            raise ValueError(f"{op}: backend must be one of {BACKENDS} or None, got {requested!r}")
        if requested not in supported:
            raise ValueError(
                f"{op}: has no {requested!r} backend; it supports {tuple(supported)}"
            )
        reason = why_not(requested, device)
        if reason:
            raise RuntimeError(f"{op}: backend {requested!r} cannot run: {reason}")
        return requested
    preference = ("cuda", "triton") if device.type == "cuda" else ("cpp",)
    reasons = []
    for backend in preference:
        if backend not in supported:
            continue
        reason = why_not(backend, device)
        if not reason:
            log.debug("%s: using the %s backend for %s tensors", op, backend, device.type)
            return backend
        reasons.append(f"{backend}: {reason}")
    key = (op, device.type)
    if key not in _warned:
        _warned.add(key)
        log.warning("%s: falling back to the PyTorch reference (%s)", op, "; ".join(reasons) or
                    f"no compiled backend for {device.type} tensors")
    return "reference"


def call(op: object, *args: object) -> object:
    """Run the ``torch.library`` custom op ``op`` on ``args``: its Python function directly in
    eager mode when autograd has nothing to record and every tensor is a plain ``torch.Tensor``
    (torch's dispatch of a Python custom op costs tens of µs per call, more than a small kernel),
    else through the op (torch.compile tracing, gradients, tensor subclasses such as FakeTensor,
    vmap/functorch transforms, dispatch modes such as FlopCounterMode).
    """
    fn = getattr(op, "_init_fn", None)  # CustomOpDef keeps the decorated function there
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    if (fn is None or torch.compiler.is_compiling() or any(type(t) is not torch.Tensor for t in tensors)
            or (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))
            or torch._C._are_functorch_transforms_active() or _get_current_dispatch_mode() is not None):
        return op(*args)
    return fn(*args)

