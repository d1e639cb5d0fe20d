"""JSON reading and writing: orjson when installed (``pip install orjson``), else the standard
library; ``.xz`` files are (de)compressed with :mod:`lzma` (VRU challenge submissions).

The one module of :mod:`pyvrel.data` that calls the C++ extension: the prediction reader's pass
over the text (``pyvrel._C.cut_trajectories``, csrc/cpu/prediction_json.cpp)."""

from __future__ import annotations

import contextlib
import gc
import json
import lzma
import os
from collections.abc import Iterator
from dataclasses import dataclass
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


MARK = "\x00pv"  # a cut trajectory k is the string MARK + str(k) in the parsed value


@dataclass(frozen=True)
class CutTrajectories:
    """Box lists cut out of a JSON text by the C++ pass: trajectory ``k`` is
    ``boxes[first[k]: first[k] + count[k]]``; the text held only integers in it where
    ``is_float[k]`` is false. In the parsed value it is the marker string ``"\\u0000pv<k>"``."""

    boxes: np.ndarray  # (B, 4) float64
    first: np.ndarray  # (n,) int64
    count: np.ndarray  # (n,) int64
    is_float: np.ndarray  # (n,) bool

    def array(self, k: int) -> np.ndarray:
        """Trajectory ``k`` as ``(L, 4)``: int64 when its text held only integers, else float64."""
        a = self.boxes[int(self.first[k]): int(self.first[k] + self.count[k])]
        return a if self.is_float[k] else a.astype(np.int64)


def marker(value: Any) -> int | None:
    """The trajectory number of a marker string left by :func:`load_cut`, else ``None``."""
    if type(value) is str and value.startswith(MARK):
        return int(value[len(MARK):])
    return None


def _cut(data: bytes) -> tuple[bytes, CutTrajectories] | None:
    """The C++ pass; ``None`` if it failed. Capacities come from bounds, not from counting passes
    over the text: a cut box list takes >= 12 bytes with its key and its marker <= 24, a number
    >= 2 bytes with its separator. The buffers (~8x the file, virtual) are allocated but never
    touched beyond what is used; where the system refuses that much address space the caller
    falls back to the plain parser (``None``)."""
    from pyvrel import _ext

    max_traj, max_numbers = len(data) // 12 + 1, len(data) // 2 + 1
    buf = np.frombuffer(data, dtype=np.uint8)
    try:
        skeleton = np.empty(len(data) + 24 * max_traj + 1, dtype=np.uint8)
        numbers = np.empty(max_numbers)
        counts = np.empty(max_traj, dtype=np.int64)
        floats = np.empty(max_traj, dtype=np.uint8)
    except MemoryError:
        return None
    skel_len = np.zeros(1, dtype=np.int64)
    n = _ext.cpu().cut_trajectories(buf.ctypes.data, len(data), skeleton.ctypes.data, len(skeleton),
                                    skel_len.ctypes.data, numbers.ctypes.data, len(numbers), counts.ctypes.data,
                                    floats.ctypes.data, max_traj)
    if n < 0:
        return None
    count = counts[:n].copy()
    first = np.cumsum(count) - count
    used = 4 * int(count.sum())
    numbers.resize(used, refcheck=False)  # gives back the unused capacity without copying
    return skeleton[: int(skel_len[0])].tobytes(), CutTrajectories(numbers.reshape(-1, 4), first, count,
                                                                   floats[:n].astype(bool))


def load_cut(path: PathLike) -> tuple[Any, CutTrajectories | None]:
    """Parse a prediction file with every ``sub_traj``/``obj_traj`` box list cut out by the C++
    pass (``pyvrel._C.cut_trajectories``: one pass over the text; short decimals parsed by one
    exact division, others with ``std::from_chars``; both correctly rounded, so every value equals
    Python's ``float`` of its text) and replaced by a marker
    string (:func:`marker`). Values the pass does not recognise (NaN, malformed lists) stay as the
    JSON parser reads them. Without the C++ extension: ``(load(path), None)``."""
    from pyvrel import _ext

    path = Path(path)
    if not _ext.has_cpu_ext():
        return load(path), None
    out = _cut(_read_bytes(path))
    if out is None:
        return load(path), None
    return _loads(out[0], path), out[1]


def load_with_trajectories(path: PathLike) -> Any:
    """Parse a prediction file, reading every ``sub_traj``/``obj_traj`` of the relations straight
    into a numpy array ``(L, 4)`` (int64 if it holds only integers, else float64) through
    :func:`load_cut`. Without the C++ extension this is :func:`load`."""
    obj, cut = load_cut(path)
    if cut is None:
        return obj
    restored = 0
    results = obj.get("results", obj) if isinstance(obj, dict) else None
    if isinstance(results, dict):
        for rels in results.values():
            for r in rels if isinstance(rels, list) else ():
                if not isinstance(r, dict):
                    continue
                for key in ("sub_traj", "obj_traj"):
                    k = marker(r.get(key))
                    if k is not None:
                        r[key] = cut.array(k)
                        restored += 1
    return obj if restored == len(cut.count) else load(path)  # a trajectory key outside the relations: read plainly


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
