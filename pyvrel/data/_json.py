"""JSON reading and writing: orjson when installed (``pip install orjson``), else the standard
library; ``.xz`` files are (de)compressed with :mod:`lzma` (VRU challenge submissions)."""

from __future__ import annotations

import json
import lzma
import os
from pathlib import Path
from typing import Any

try:
    import orjson
except ImportError:  # optional: only speed depends on it
    orjson = None

PathLike = str | os.PathLike


def fast_parser() -> str:
    """Name of the JSON parser in use: ``"orjson"`` or ``"json"``."""
    return "orjson" if orjson is not None else "json"


def _read_bytes(path: Path) -> bytes:
    if path.suffix == ".xz":
        with lzma.open(path, "rb") as f:
            return f.read()
    return path.read_bytes()


def load(path: PathLike) -> Any:
    """Parse a JSON (or ``.json.xz``) file; a parse error names the file."""
    path = Path(path)
    data = _read_bytes(path)
    if orjson is not None:
        try:
            return orjson.loads(data)
        except ValueError:  # e.g. NaN/Infinity, which Python's json (and the official code) accept
            pass
    try:
        return json.loads(data)
    except ValueError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None


def dumps(obj: Any) -> bytes:
    """Serialise ``obj`` (dicts, lists, numbers, strings; numpy arrays become lists)."""
    if orjson is not None:
        return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)
    return json.dumps(obj, default=_to_builtin, separators=(",", ":")).encode()


def dump(obj: Any, path: PathLike) -> None:
    """Write ``obj`` as JSON, compressed with xz when ``path`` ends in ``.xz``."""
    path = Path(path)
    data = dumps(obj)
    if path.suffix == ".xz":
        with lzma.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def _to_builtin(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable")
