"""Input validation shared by the public ops: errors name the argument and what was expected."""

from __future__ import annotations

from collections.abc import Sequence

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def compute_dtype(t: torch.Tensor) -> torch.dtype:
    """The dtype the box/tube/linking kernels compute ``t`` in: float16/bfloat16 in float32."""
    return t.dtype if t.dtype in (torch.float32, torch.float64) else torch.float32


def _compiling() -> bool:
    return torch.compiler.is_compiling()


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
    """No NaN or infinity (a data-dependent check, skipped while torch.compile traces)."""
    if _compiling() or value.numel() == 0:
        return
    if not bool(torch.isfinite(value).all()):
        raise ValueError(f"{op}: {name} contains NaN or infinite values")


def in_range(op: str, name: str, value: float, lo: float, hi: float) -> None:
    if not (lo <= value <= hi):
        raise ValueError(f"{op}: {name} must be in [{lo}, {hi}], got {value}")


def pixel_offset(op: str, value: float) -> float:
    if value not in (0, 1):
        raise ValueError(f"{op}: pixel_offset must be 0 (continuous) or 1 (inclusive pixels), got {value!r}")
    return float(value)
