"""When the ops check tensor values: the switch of :func:`pyvrel.set_validation`.

``pyvrel.ops._checks.check_values`` is the one place that reads it.
"""

from __future__ import annotations

import os
from typing import Literal

ValidationMode = Literal["auto", "full"]
_MODES = ("auto", "full")


def _from_env() -> str:
    mode = os.environ.get("PYVREL_VALIDATION", "auto")
    if mode not in _MODES:
        raise ValueError(f"PYVREL_VALIDATION must be one of {_MODES}, got {mode!r}")
    return mode


_mode = _from_env()


def set_validation(mode: ValidationMode) -> None:
    """Set when the ops check tensor *values* (ranges, NaN/inf, order): ``"auto"`` (default) on
    CPU tensors only, so that calls on CUDA tensors never wait for the GPU (the kernels then clamp
    out-of-range lengths, centres and starts, and never read or write out of bounds); ``"full"``
    on every device (a host synchronisation per check on CUDA, for debugging). The environment
    variable ``PYVREL_VALIDATION`` (``auto`` or ``full``) sets the initial mode."""
    global _mode
    if mode not in _MODES:
        raise ValueError(f"set_validation: mode must be one of {_MODES}, got {mode!r}")
    _mode = mode


def get_validation() -> ValidationMode:
    """The current validation mode (see :func:`set_validation`)."""
    return _mode  # type: ignore[return-value]
