"""Input validation shared by the public ops: errors name the argument and what was expected.

Two kinds of checks: metadata (type, shape, dtype, device; always) and values (ranges, NaN/inf,
order; they read tensor data, which on a CUDA tensor waits for the GPU). Value checks run on CPU
tensors always and on CUDA tensors only when validation is ``"full"`` (:func:`pyvrel.set_validation`, or
the environment variable ``PYVREL_VALIDATION=full``); without them the kernels clamp or ignore bad
values and never read or write out of bounds. :func:`check_values` is the one place that decides.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from pyvrel import _validation

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
# Largest frame index (start + length of a tube, a sampled frame): float64 holds it exactly, and
# sums of two never overflow int64.
MAX_FRAME = 2**53


def compute_dtype(t: torch.Tensor) -> torch.dtype:
    """The dtype the box/tube/linking kernels compute ``t`` in: float16/bfloat16 in float32."""
    return t.dtype if t.dtype in (torch.float32, torch.float64) else torch.float32


def _compiling() -> bool:
    return torch.compiler.is_compiling()


def check_values(t: torch.Tensor) -> bool:
    """Whether value checks run for tensors on ``t``'s device: always on CPU tensors, on others
    only with validation ``"full"``; never while torch.compile traces (data-dependent)."""
    return not _compiling() and (t.device.type == "cpu" or _validation.get_validation() == "full")


def int_range(op: str, name: str, value: torch.Tensor, lo: int, hi: int, expected: str | None = None) -> None:
    """Every element of integer tensor ``value`` in ``[lo, hi]`` (a value check); ``expected``
    replaces "in [lo, hi]" in the error."""
    if value.numel() == 0 or not check_values(value):
        return
    if not bool(((value >= lo) & (value <= hi)).all()):
        raise ValueError(f"{op}: {name} must be {expected or f'in [{lo}, {hi}]'}, got values in "
                         f"[{int(value.min())}, {int(value.max())}]")


def number(op: str, name: str, value: object, lo: float | None = None, hi: float | None = None, *,
           lo_open: bool = False, integer: bool = False) -> float:
    """A finite Python (or NumPy) number in ``[lo, hi]`` (``(lo, hi]`` when ``lo_open``; an int when
    ``integer``); returns it as float (or int)."""
    kind = "an int" if integer else "a number"
    if isinstance(value, (bool, torch.Tensor)) or not hasattr(value, "__index__" if integer else "__float__"):
        raise TypeError(f"{op}: {name} must be {kind}, got {type(value).__name__} {value!r}")
    x = value.__index__() if integer else float(value)  # type: ignore[union-attr]
    if not math.isfinite(x):
        raise ValueError(f"{op}: {name} must be finite, got {value!r}")
    if (lo is not None and (x <= lo if lo_open else x < lo)) or (hi is not None and x > hi):
        if integer and lo == 1 and hi is None:
            expected = "a positive int"
        elif hi is None:
            expected = f"{'>' if lo_open else '>='} {lo}"
        else:
            expected = f"in {'(' if lo_open else '['}{lo}, {hi}]"
        raise ValueError(f"{op}: {name} must be {expected}, got {value!r}")
    return x


def tensor(
    op: str,
    name: str,
    value: object,
    *,
    ndim: int | None = None,
    min_ndim: int | None = None,
    last: int | None = None,
    dtypes: Sequence[torch.dtype] | None = None,
    integer: bool = False,
) -> torch.Tensor:
    """Check that ``value`` is a tensor of the expected rank, last dimension and dtype."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{op}: {name} must be a torch.Tensor, got {type(value).__name__}")
    if ndim is not None and value.dim() != ndim:
        raise ValueError(
            f"{op}: {name} must have {ndim} dimensions, got shape {tuple(value.shape)}"
        )
    if min_ndim is not None and value.dim() < min_ndim:
        raise ValueError(
            f"{op}: {name} must have at least {min_ndim} dimensions, got shape {tuple(value.shape)}"
        )
    if last is not None and (value.dim() == 0 or value.shape[-1] != last):
        raise ValueError(
            f"{op}: {name} must have last dimension {last}, got shape {tuple(value.shape)}"
        )
    if integer and (value.dtype.is_floating_point or value.dtype.is_complex or value.dtype == torch.bool):
        raise TypeError(f"{op}: {name} must be an integer tensor, got {value.dtype}")
    if dtypes is not None and value.dtype not in dtypes:
        names = ", ".join(str(d).replace("torch.", "") for d in dtypes)
        raise TypeError(f"{op}: {name} must have dtype in ({names}), got {value.dtype}")
    return value


def same_device(op: str, **tensors: torch.Tensor) -> torch.device:
    """All tensors on one device; returns it."""
    items = list(tensors.items())
    device = items[0][1].device
    for name, t in items[1:]:
        if t.device != device:
            raise ValueError(
                f"{op}: {name} is on {t.device} but {items[0][0]} is on {device}; "
                "all inputs must be on the same device"
            )
    return device


def same_dtype(op: str, **tensors: torch.Tensor) -> torch.dtype:
    items = list(tensors.items())
    dtype = items[0][1].dtype
    for name, t in items[1:]:
        if t.dtype != dtype:
            raise TypeError(f"{op}: {name} has dtype {t.dtype} but {items[0][0]} has {dtype}")
    return dtype


def finite(op: str, name: str, value: torch.Tensor) -> None:
    """No NaN or infinity (a value check)."""
    if value.numel() == 0 or not check_values(value):
        return
    if not bool(torch.isfinite(value).all()):
        raise ValueError(f"{op}: {name} contains NaN or infinite values")


def pixel_offset(op: str, value: float) -> float:
    if value not in (0, 1):
        raise ValueError(f"{op}: pixel_offset must be 0 (continuous) or 1 (inclusive pixels), got {value!r}")
    return float(value)
