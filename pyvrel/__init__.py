"""pyvrel: video visual relation detection and grounding.

Subpackages: :mod:`pyvrel.ops` (fused ops with C++/CUDA/Triton backends and PyTorch references).
The compiled extensions are loaded lazily, on first use, never at import time; ``import pyvrel``
imports neither torch nor the package metadata (``__version__`` is looked up on first use).
"""

from __future__ import annotations

from typing import Any

from pyvrel._ext import build_info
from pyvrel._validation import get_validation, set_validation

__all__ = ["__version__", "build_info", "get_validation", "set_validation"]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("pyvrel")
        except PackageNotFoundError:  # running from a source tree that was never installed
            return "0.0.0+unknown"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
