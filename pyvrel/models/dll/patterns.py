"""Predicate -> (actional, spatial) pattern tables, DLL's label decoupling (``relation.txt`` of the code).

A predicate name is split at its *spatial word*: ``walk_past`` -> (``walk``, ``past``),
``behind`` -> (none, ``behind``), ``chase`` / ``taller`` / ``fall_off`` -> (itself, none).
:func:`build_pattern_table` does this for any vocabulary given its spatial words;
:func:`pattern_table` knows the shipped ones:

* ImageNet-VidVRD (132 predicates, also the synthetic world's vocabulary): the 12 spatial words of
  :data:`VIDVRD_SPATIAL` give **12 spatial and 28 actional patterns**, the paper's counts (11 verbs
  of composites + 17 single-pattern predicates, the comparatives ``faster``/``larger``/``taller``
  and ``fall_off`` among them); ``with`` and ``inside`` occur only in composites. 27 predicates
  carry one pattern (17 actional, 10 spatial), 105 both. (The VRD-STGC variant's 13/29 count a
  background class as well.)
* VidOR (50): its 8 spatial predicates (:data:`VIDOR_SPATIAL`) are spatial patterns, the other
  42 actional ones; no VidOR predicate is composite, so PDL there only splits the classifier.

:func:`read_pattern_table` reads a table from a text file instead (one ``predicate action spatial``
per line, ``-`` for a missing pattern); every predicate of the vocabulary must be in it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from pyvrel.data.vocab import Vocabulary, load_vocabulary

__all__ = ["VIDOR_SPATIAL", "VIDVRD_SPATIAL", "PatternTable", "PatternTableError", "build_pattern_table",
           "pattern_table", "read_pattern_table"]

#: ImageNet-VidVRD's spatial words (the paper's 12 spatial patterns).
VIDVRD_SPATIAL = ("above", "away", "behind", "beneath", "front", "inside", "left", "next_to", "past", "right",
                  "toward", "with")
#: VidOR's 8 spatial predicates.
VIDOR_SPATIAL = ("above", "away", "behind", "beneath", "in_front_of", "inside", "next_to", "towards")


class PatternTableError(ValueError):
    """A pattern table that is missing a predicate or is inconsistent (message names what and where)."""


@dataclass(frozen=True)
class PatternTable:
    """Actional and spatial pattern of every predicate (class index = position in ``predicates``).

    Attributes:
        predicates: predicate names (the model's classes, in order).
        actions, spatials: pattern names (a pattern classifier's classes, in order).
        action_of, spatial_of: per predicate, the index of its actional / spatial pattern, -1 if none.
    """

    predicates: tuple[str, ...]
    actions: tuple[str, ...]
    spatials: tuple[str, ...]
    action_of: tuple[int, ...]
    spatial_of: tuple[int, ...]
    source: str = "table"

    def __post_init__(self) -> None:
        P, where = len(self.predicates), self.source
        if P == 0:
            raise PatternTableError(f"{where}: no predicates")
        if len(self.action_of) != P or len(self.spatial_of) != P:
            raise PatternTableError(f"{where}: {P} predicates but {len(self.action_of)} action and "
                                    f"{len(self.spatial_of)} spatial entries")
        for label, names in (("predicates", self.predicates), ("actions", self.actions), ("spatials", self.spatials)):
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise PatternTableError(f"{where}: duplicate {label}: {', '.join(dup)}")
        seen: dict[tuple[int, int], str] = {}
        for p, a, s in zip(self.predicates, self.action_of, self.spatial_of):
            if not (-1 <= a < len(self.actions) and -1 <= s < len(self.spatials)):
                raise PatternTableError(f"{where}: predicate {p!r} has pattern ids ({a}, {s}); expected -1 or "
                                        f"< ({len(self.actions)}, {len(self.spatials)})")
            if a < 0 and s < 0:
                raise PatternTableError(f"{where}: predicate {p!r} has neither an actional nor a spatial pattern")
            if (a, s) in seen:
                raise PatternTableError(f"{where}: predicates {seen[(a, s)]!r} and {p!r} have the same patterns "
                                        "(the mapping could not tell them apart)")
            seen[(a, s)] = p
        for label, names, of in (("action", self.actions, self.action_of), ("spatial", self.spatials, self.spatial_of)):
            unused = sorted(set(range(len(names))) - set(of))
            if unused:
                raise PatternTableError(f"{where}: {label} patterns used by no predicate: "
                                        f"{', '.join(names[i] for i in unused)}")

    def patterns(self, predicate: str) -> tuple[str | None, str | None]:
        """``(action, spatial)`` of one predicate (``None`` where it has none)."""
        i = self.predicates.index(predicate)
        a, s = self.action_of[i], self.spatial_of[i]
        return (self.actions[a] if a >= 0 else None, self.spatials[s] if s >= 0 else None)

    def check_vocabulary(self, predicates: Sequence[str]) -> None:
        """Raise :class:`PatternTableError` unless the table's predicates are ``predicates``, in order."""
        if tuple(predicates) == self.predicates:
            return
        missing = [p for p in predicates if p not in self.predicates]
        extra = [p for p in self.predicates if p not in set(predicates)]
        detail = (f"missing {', '.join(map(repr, missing[:5]))}" if missing else
                  f"not in the vocabulary: {', '.join(map(repr, extra[:5]))}" if extra else "another order")
        raise PatternTableError(f"{self.source}: its {len(self.predicates)} predicates are not the model's "
                                f"{len(predicates)} ({detail})")

    def one_hot(self) -> tuple[Tensor, Tensor]:
        """``(A, S)``: ``A[j, k] = 1`` when predicate j has actional pattern k, shape ``(P, n_act)``;
        ``S`` likewise ``(P, n_sp)`` (float32)."""
        P = len(self.predicates)
        A, S = torch.zeros(P, len(self.actions)), torch.zeros(P, len(self.spatials))
        for j, (a, s) in enumerate(zip(self.action_of, self.spatial_of)):
            if a >= 0:
                A[j, a] = 1.0
            if s >= 0:
                S[j, s] = 1.0
        return A, S

    def counts(self) -> dict[str, int]:
        """Numbers of predicates, patterns and single/dual-pattern predicates (for docs and checks)."""
        both = sum(a >= 0 and s >= 0 for a, s in zip(self.action_of, self.spatial_of))
        return {"predicates": len(self.predicates), "actions": len(self.actions), "spatials": len(self.spatials),
                "both": both, "single": len(self.predicates) - both}


def _split(name: str, spatial_words: Sequence[str]) -> tuple[str | None, str | None]:
    if name in spatial_words:
        return None, name
    for word in sorted(spatial_words, key=len, reverse=True):  # longest first: "_next_to" before "_to"
        if name.endswith("_" + word) and len(name) > len(word) + 1:
            return name[: -len(word) - 1], word
    return name, None


def _table(predicates: Sequence[str], pairs: Sequence[tuple[str | None, str | None]], source: str) -> PatternTable:
    actions = tuple(sorted({a for a, _ in pairs if a is not None}))
    spatials = tuple(sorted({s for _, s in pairs if s is not None}))
    ai, si = {a: i for i, a in enumerate(actions)}, {s: i for i, s in enumerate(spatials)}
    return PatternTable(tuple(predicates), actions, spatials, tuple(ai[a] if a else -1 for a, _ in pairs),
                        tuple(si[s] if s else -1 for _, s in pairs), source)


def build_pattern_table(predicates: Sequence[str], spatial_words: Iterable[str] = VIDVRD_SPATIAL,
                        source: str = "pattern table") -> PatternTable:
    """The table of a predicate vocabulary, each name split at its spatial word (module docstring).
    Patterns are sorted by name; a name equal to a spatial word is a spatial-only predicate, one
    ending in ``_<spatial word>`` a composite, any other an action-only one."""
    words = tuple(spatial_words)
    return _table(predicates, [_split(p, words) for p in predicates], source)


def pattern_table(vocabulary: Vocabulary | str | Sequence[str], spatial_words: Iterable[str] | None = None
                  ) -> PatternTable:
    """The table of a shipped vocabulary (``"vidvrd"``, ``"vidor"``), a :class:`Vocabulary` or a
    predicate list. Spatial words, unless given: VidOR's when every predicate is a VidOR predicate,
    else VidVRD's (so also the synthetic world's and a folder's with VidVRD names)."""
    if isinstance(vocabulary, str):
        vocabulary = load_vocabulary(vocabulary)
    predicates = list(vocabulary.predicates if isinstance(vocabulary, Vocabulary) else vocabulary)
    if spatial_words is None:
        vidor = set(load_vocabulary("vidor").predicates)
        spatial_words = VIDOR_SPATIAL if set(predicates) <= vidor else VIDVRD_SPATIAL
    name = vocabulary.name if isinstance(vocabulary, Vocabulary) else f"{len(predicates)} predicates"
    return build_pattern_table(predicates, spatial_words, source=f"pattern table of {name!r}")


def read_pattern_table(path: str | Path, predicates: Sequence[str]) -> PatternTable:
    """A table from a text file (``predicate action spatial`` per line, ``-`` = none, ``#`` comments)
    for the vocabulary ``predicates`` (its order); errors name the file, line and predicate."""
    path = Path(path)
    if not path.is_file():
        raise PatternTableError(f"{path}: pattern table file not found")
    rows: dict[str, tuple[str | None, str | None]] = {}
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 3:
            raise PatternTableError(f"{path}:{n}: expected 'predicate action spatial' ('-' for none), got {raw!r}")
        if parts[0] in rows:
            raise PatternTableError(f"{path}:{n}: predicate {parts[0]!r} listed twice")
        rows[parts[0]] = (None if parts[1] == "-" else parts[1], None if parts[2] == "-" else parts[2])
    missing = [p for p in predicates if p not in rows]
    if missing:
        raise PatternTableError(f"{path}: no patterns for {len(missing)} predicate(s) of the vocabulary: "
                                f"{', '.join(map(repr, missing[:5]))}")
    return _table(predicates, [rows[p] for p in predicates], str(path))
