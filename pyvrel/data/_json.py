"""JSON reading and writing: orjson when installed (``pip install orjson``), else the standard
library; ``.xz`` files are (de)compressed with :mod:`lzma` (VRU challenge submissions)."""

from __future__ import annotations

import contextlib
import gc
import json
import lzma
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

try:
    import orjson
except ImportError:  # optional: only speed depends on it
    orjson = None

PathLike = str | os.PathLike


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while building many small objects (reading
    annotations and predictions, scoring): its passes over the growing heap cost more than the work
    itself (measured 2.5x on a 200-video ground truth). Restores the previous state."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def fast_parser() -> str:
    """Name of the JSON parser in use: ``"orjson"`` or ``"json"``."""
    return "orjson" if orjson is not None else "json"


def _read_bytes(path: Path) -> bytes:
    if path.suffix == ".xz":
        with lzma.open(path, "rb") as f:
            return f.read()
    return path.read_bytes()


def load(path: PathLike) -> Any:
    """Parse a JSON (or ``.json.xz``) file; a parse error names the file. NaN and Infinity are
    accepted, as Python's json (and the official tools) accept them."""
    path = Path(path)
    return _loads(_read_bytes(path), path)


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


_MARK = "\x00pv"


def load_with_trajectories(path: PathLike) -> Any:
    """Parse a prediction file, reading every ``sub_traj``/``obj_traj`` of the relations straight
    into a numpy array ``(L, 4)`` (int64 if it holds only integers, else float64).

    With the C++ extension, one pass over the text cuts the box lists out and parses their numbers
    (``pyvrel._C.cut_trajectories``, correctly rounded: equal to Python's ``float``); the rest
    goes through the JSON parser. Values the fast path does not recognise (NaN, malformed lists)
    stay as the JSON parser reads them. Without the extension this is :func:`load`.
    """
    from pyvrel import _ext

    path = Path(path)
    if not _ext.has_cpu_ext():
        return load(path)
    data = _read_bytes(path)
    max_traj = data.count(b'_traj"')
    buf = np.frombuffer(data, dtype=np.uint8)
    skeleton = np.empty(len(data) + 24 * max_traj + 1, dtype=np.uint8)
    numbers = np.empty(data.count(b",") + 1)
    counts = np.empty(max_traj, dtype=np.int64)
    floats = np.empty(max_traj, dtype=np.uint8)
    skel_len = np.zeros(1, dtype=np.int64)
    n = _ext.cpu().cut_trajectories(buf.ctypes.data, len(data), skeleton.ctypes.data, len(skeleton),
                                    skel_len.ctypes.data, numbers.ctypes.data, len(numbers), counts.ctypes.data,
                                    floats.ctypes.data, max_traj)
    if n < 0:
        return load(path)
    obj = _loads(skeleton[: int(skel_len[0])].tobytes(), path)
    ends = np.cumsum(4 * counts[:n])
    arrays = [numbers[e - 4 * c: e].reshape(-1, 4) for e, c in zip(ends.tolist(), counts[:n].tolist())]
    for k in np.flatnonzero(floats[:n] == 0).tolist():
        arrays[k] = arrays[k].astype(np.int64)
    restored = 0
    results = obj.get("results", obj) if isinstance(obj, dict) else None
    if isinstance(results, dict):
        for rels in results.values():
            for r in rels if isinstance(rels, list) else ():
                if not isinstance(r, dict):
                    continue
                for key in ("sub_traj", "obj_traj"):
                    v = r.get(key)
                    if type(v) is str and v.startswith(_MARK):
                        r[key] = arrays[int(v[len(_MARK):])]
                        restored += 1
    return obj if restored == n else load(path)  # a trajectory key outside the relations: read plainly


def _loads(data: bytes, path: Path) -> Any:
    if orjson is not None:
        try:
            return orjson.loads(data)
        except ValueError:
            pass
    try:
        return json.loads(data)
    except ValueError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
