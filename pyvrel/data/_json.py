"""JSON reading and writing: orjson when installed (``pip install orjson``), else the standard
library; ``.xz`` files are (de)compressed with :mod:`lzma` (VRU challenge submissions)."""

from __future__ import annotations

import json
import lzma
import os
import re
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


# A trajectory value: "sub_traj"/"obj_traj" followed by a list holding only numbers, commas,
# brackets and whitespace (anything else, e.g. NaN, is left to the JSON parser).
_TRAJ = re.compile(rb'"(sub_traj|obj_traj)"(\s*:\s*)\[([-+0-9.eE,\s\[\]]*)\]')
_MARK = "\x00pyvrel-traj:"


def load_with_trajectories(path: PathLike) -> Any:
    """Parse a prediction file, reading every ``sub_traj``/``obj_traj`` straight into a numpy
    array ``(L, 4)`` (int64 if it holds only integers, else float64) instead of Python lists.

    The numbers are parsed by numpy in one pass, which is several times faster than building
    Python floats; the rest of the file goes through the normal JSON parser. Trajectories the fast
    path does not recognise stay lists.
    """
    path = Path(path)
    data = _read_bytes(path)
    texts: list[bytes] = []

    def cut(m: re.Match) -> bytes:
        texts.append(m.group(3))
        return b'"' + m.group(1) + b'"' + m.group(2) + f'"\\u0000pyvrel-traj:{len(texts) - 1}"'.encode()

    skeleton = _TRAJ.sub(cut, data)
    if orjson is not None:
        try:
            obj = orjson.loads(skeleton)
        except ValueError:
            obj = None
    if orjson is None or obj is None:
        try:
            obj = json.loads(skeleton)
        except ValueError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from None
    arrays = _parse_number_lists(texts)
    results = obj.get("results", obj) if isinstance(obj, dict) else None
    if isinstance(results, dict):
        for rels in results.values():
            if not isinstance(rels, list):
                continue
            for r in rels:
                if not isinstance(r, dict):
                    continue
                for key in ("sub_traj", "obj_traj"):
                    v = r.get(key)
                    if isinstance(v, str) and v.startswith(_MARK):
                        r[key] = arrays[int(v[len(_MARK):])]
    return obj


def _parse_numbers(joined: bytes) -> np.ndarray:
    """``b"1,2.5,-3"`` -> float64 array: with pyvrel._C's correctly rounded parser when it is
    built (each value equals Python's ``float``), else with numpy."""
    if not joined:
        return np.zeros(0)
    from pyvrel import _ext

    if _ext.has_cpu_ext():
        buf = np.frombuffer(joined, dtype=np.uint8)
        out = np.empty(joined.count(b",") + 1)
        n = _ext.cpu().parse_numbers(buf.ctypes.data, len(joined), out.ctypes.data, len(out))
        if n == len(out):
            return out
        bad = -n - 1 if n < 0 else len(joined)
        raise ValueError(f"not a number list near byte {bad}: {joined[bad: bad + 20]!r}")
    return np.array(joined.split(b","), dtype=np.float64)


def _parse_number_lists(texts: list[bytes]) -> list[np.ndarray | list]:
    """``[[x1, y1, x2, y2], ...]`` bodies (outer brackets removed) -> ``(L, 4)`` arrays; a body
    that is not a list of 4-number lists is returned parsed as JSON, for validation to report."""
    flat = [t.translate(None, b"[] \t\r\n") for t in texts]
    counts = [f.count(b",") + 1 if f else 0 for f in flat]
    try:
        numbers = _parse_numbers(b",".join(f for f in flat if f))
    except ValueError:  # something other than numbers: parse each body on its own
        return [json.loads(b"[" + t + b"]") for t in texts]
    out: list[np.ndarray | list] = []
    pos = 0
    for text, f, n in zip(texts, flat, counts):
        boxes = numbers[pos: pos + n]
        pos += n
        if n % 4 or text.count(b"[") != n // 4:
            out.append(json.loads(b"[" + text + b"]"))  # not a list of 4-number boxes: let validation speak
        elif b"." in f or b"e" in f or b"E" in f:
            out.append(boxes.reshape(-1, 4))
        else:
            out.append(boxes.astype(np.int64).reshape(-1, 4))
    return out
