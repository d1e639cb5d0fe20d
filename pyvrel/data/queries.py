"""Relation queries (the input of ``pyvrel ground``): the query string ``"subject-predicate-object"``
(vRGV's, e.g. ``dog-stand_behind-frisbee``) and the queries file, JSON
``{video_id: ["subject-predicate-object", ...]}``."""

from __future__ import annotations

import json
import re
from pathlib import Path

__all__ = ["parse_query", "read_queries"]

_QUERY = re.compile(r"^([^-\s]+)-([^-\s]+)-([^-\s]+)$")


def parse_query(query: str) -> tuple[str, str, str]:
    """``"subject-predicate-object"`` as a triplet (:class:`ValueError` saying what was expected)."""
    m = _QUERY.match(query) if isinstance(query, str) else None
    if m is None:
        raise ValueError(f"query {query!r}: expected 'subject-predicate-object' (three non-empty names joined "
                         "by '-', words inside a name joined by '_')")
    return m.group(1), m.group(2), m.group(3)


def read_queries(path: str | Path) -> dict[str, list[tuple[str, str, str]]]:
    """A queries file -> triplets per video (errors name the file, the video and the query)."""
    p = Path(path)
    try:
        obj = json.loads(p.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{p}: queries file not found") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{p}: not JSON ({e})") from None
    if not isinstance(obj, dict) or not all(isinstance(v, list) for v in obj.values()):
        raise ValueError(f"{p}: expected {{video_id: [\"subject-predicate-object\", ...]}}")
    out = {}
    for vid, queries in obj.items():
        try:
            out[vid] = [parse_query(q) for q in queries]
        except ValueError as e:
            raise ValueError(f"{p}: video {vid}: {e}") from None
    return out
