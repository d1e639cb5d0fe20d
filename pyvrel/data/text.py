"""Word vectors of category names, for models that read text queries (vRGV's SAU).

One interface, :func:`word_vectors`, with two sources:

* a GloVe text file of the user's own copy (``glove.6B.300d.txt``: one ``word v1 ... vD`` per
  line), read with :func:`load_glove`. Lookup is lower-cased. A compound name (``domestic_cat``,
  ``red_panda``) is the mean of its parts' vectors; ``compound="zeros"`` reproduces vRGV's public
  code, which looks the whole name up and so gives compound names (and unknown words) a zero vector.
* no file: a deterministic offline default, :func:`hashed_vector` — a unit Gaussian vector seeded
  by the word's bytes, so every run and machine gets the same vectors. Nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

__all__ = ["hashed_vector", "load_glove", "word_vectors"]


def hashed_vector(word: str, dim: int) -> np.ndarray:
    """``(dim,)`` float32 unit vector, a pure function of the lower-cased ``word`` and ``dim``."""
    seed = int.from_bytes(hashlib.sha256(word.lower().encode()).digest()[:8], "little")
    v = np.random.default_rng(seed).normal(size=dim)
    return (v / np.linalg.norm(v)).astype(np.float32)


def _parts(name: str) -> list[str]:
    return [p for p in name.lower().replace("-", "_").replace(" ", "_").split("_") if p]


def load_glove(path: str | os.PathLike, words: Iterable[str]) -> tuple[dict[str, np.ndarray], int]:
    """The vectors of ``words`` (lower-cased) found in a GloVe text file, and the file's dimension.

    Only the requested words are kept, so a 1 GB file costs one pass and little memory. Raises
    ``FileNotFoundError`` or ``ValueError`` naming the file and line for a malformed file."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: GloVe file not found (give your own copy, e.g. glove.6B.300d.txt)")
    wanted = {w.lower() for w in words}
    found: dict[str, np.ndarray] = {}
    dim = None
    with p.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            word, _, rest = line.rstrip("\n").partition(" ")
            if dim is None or word in wanted:
                try:
                    v = np.array(rest.split(" "), dtype=np.float32)
                except ValueError:
                    raise ValueError(f"{p}: line {n}: expected 'word v1 ... vD' with numbers") from None
                if dim is None:
                    dim = len(v)
                elif len(v) != dim:
                    raise ValueError(f"{p}: line {n}: {len(v)} values, expected {dim} like line 1")
                if word in wanted:
                    found[word] = v
    if dim is None:
        raise ValueError(f"{p}: empty GloVe file")
    return found, dim


def word_vectors(names: Sequence[str], dim: int, glove: str | os.PathLike | None = None, *,
                 compound: Literal["mean", "zeros"] = "mean") -> np.ndarray:
    """``(len(names), dim)`` float32 vectors of category names.

    Args:
        names: category names (``person``, ``domestic_cat``).
        dim: vector width; with ``glove`` it must equal the file's.
        glove: path of a GloVe text file, or None for :func:`hashed_vector` of each part.
        compound: ``"mean"`` averages the parts of a compound name (parts missing from the file are
            left out; none found: zeros); ``"zeros"`` is vRGV's code: the whole name or zeros.
    """
    if compound not in ("mean", "zeros"):
        raise ValueError(f"compound: expected 'mean' or 'zeros', got {compound!r}")
    if glove is None:
        table = {w: hashed_vector(w, dim) for n in names for w in [n.lower(), *_parts(n)]}
    else:
        table, file_dim = load_glove(glove, [w for n in names for w in [n, *_parts(n)]])
        if file_dim != dim:
            raise ValueError(f"{glove}: vectors have {file_dim} values, the model expects word_dim={dim}")
    out = np.zeros((len(names), dim), np.float32)
    for i, name in enumerate(names):
        if compound == "zeros":
            out[i] = table.get(name.lower(), out[i])
        else:
            found = [table[p] for p in _parts(name) if p in table]
            if found:
                out[i] = np.mean(found, 0)
    return out
