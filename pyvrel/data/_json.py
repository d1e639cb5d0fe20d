"""JSON reading and writing: orjson when installed (``pip install orjson``), else the standard
library; ``.xz`` files are (de)compressed with :mod:`lzma` (VRU challenge submissions).

The one module of :mod:`pyvrel.data` that calls the C++ extension: the prediction reader's pass
over the text (``pyvrel._C.cut_trajectories``, csrc/cpu/prediction_json.cpp)."""

from __future__ import annotations

import contextlib
import json
import lzma
import mmap
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


def fast_parser() -> str:
    """Name of the JSON parser in use: ``"orjson"`` or ``"json"``."""
    return "orjson" if orjson is not None else "json"


def read_bytes(path: Path) -> bytes:
    """The file's bytes, decompressed when it ends in ``.xz``; a folder or a damaged ``.xz`` file
    raises ``ValueError`` naming it."""
    if path.is_dir():
        raise ValueError(f"{path}: is a folder, expected a JSON file")
    if path.suffix == ".xz":
        try:
            with lzma.open(path, "rb") as f:
                return f.read()
        except (lzma.LZMAError, EOFError) as e:  # not xz, or cut short
            raise ValueError(f"{path}: not a readable .xz file ({e})") from None
    return path.read_bytes()


@contextlib.contextmanager
def mapped(path: Path) -> Iterator[bytes | mmap.mmap]:
    """The file's bytes without copying them: a read-only memory map (pages read ahead where the
    system can), closed on exit; ``.xz`` and empty files are read instead. Views of it (e.g.
    ``np.frombuffer``) must be gone before the block ends."""
    if path.suffix == ".xz" or path.stat().st_size == 0:
        yield read_bytes(path)
        return
    with open(path, "rb") as f:
        if hasattr(mmap, "MAP_POPULATE"):
            mm = mmap.mmap(f.fileno(), 0, flags=mmap.MAP_SHARED | mmap.MAP_POPULATE, prot=mmap.PROT_READ)
        else:
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        yield mm
    finally:
        mm.close()


def load(path: PathLike) -> Any:
    """Parse a JSON (or ``.json.xz``) file; a parse error names the file. NaN and Infinity are
    accepted, as Python's json (and the official tools) accept them."""
    path = Path(path)
    return _loads(read_bytes(path), path)


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
    """The trajectory number of a marker string left by :func:`load_cut`, else ``None`` (a string of
    the file that merely looks like one may give a number: callers check it is below the count of
    cut trajectories, and that every cut trajectory is found once)."""
    if type(value) is str and value.startswith(MARK) and value[len(MARK):].isdigit():
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
    data = read_bytes(path)
    if not _ext.has_cpu_ext():
        return _loads(data, path, unique_keys=True), None
    out = _cut(data)
    if out is None:
        return _loads(data, path, unique_keys=True), None
    _check_unique_keys(out[0], path)
    return _loads_skeleton(out[0], data, path), out[1]


def _check_unique_keys(data: bytes, path: Path) -> None:
    """``ValueError`` naming the file and the key when some JSON object of ``data`` repeats a key
    (a JSON parser silently keeps only the last value: a video id given twice loses its first
    entry). The C++ scan; without the extension the check happens while parsing."""
    from pyvrel import _ext

    pos = np.zeros(2, dtype=np.int64)
    buf = np.frombuffer(data, dtype=np.uint8)
    if _ext.cpu().first_duplicate_key(buf.ctypes.data, len(data), pos.ctypes.data, pos[1:].ctypes.data):
        key = data[int(pos[0]): int(pos[0] + pos[1])].decode(errors="replace")
        raise ValueError(_duplicate_message(path, key))


def _duplicate_message(path: Path, key: str) -> str:
    return (f"{path}: key {key!r} appears twice in one JSON object (a video id given twice, or a repeated "
            "field); a JSON parser would silently keep only the last one")


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
                    if k is not None and k < len(cut.count):
                        r[key] = cut.array(k)
                        restored += 1
    return obj if restored == len(cut.count) else load(path)  # a trajectory key outside the relations: read plainly


def _loads_skeleton(skeleton: bytes, data: bytes, path: Path) -> Any:
    """Parse the text left by a C++ cut; where it is not valid JSON, the error is the one of the
    original text (its line and column)."""
    try:
        return _loads(skeleton, path)
    except ValueError:
        _loads(data, path)
        raise


def _loads(data: bytes, path: Path, unique_keys: bool = False) -> Any:
    """Parse ``data``; ``unique_keys`` (for the parser of the standard library) refuses repeated keys."""
    if orjson is not None and not unique_keys:
        try:
            return orjson.loads(data)
        except ValueError:
            pass
    try:
        return json.loads(data, object_pairs_hook=_unique_pairs if unique_keys else None)
    except _DuplicateKey as e:
        raise ValueError(_duplicate_message(path, e.args[0])) from None
    except ValueError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None


class _DuplicateKey(Exception):
    pass


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        raise _DuplicateKey(next(k for k, _ in pairs if k in seen or seen.add(k)))
    return out
