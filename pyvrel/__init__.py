"""pyvrel: video visual relation detection and grounding.

Subpackages: :mod:`pyvrel.ops` (fused ops with C++/CUDA/Triton backends and PyTorch references).
The compiled extensions are loaded lazily, on first use, never at import time.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version as _version

from pyvrel._ext import build_info
from pyvrel._validation import get_validation, set_validation

try:
    __version__ = _version("pyvrel")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "build_info", "get_validation", "set_validation"]
