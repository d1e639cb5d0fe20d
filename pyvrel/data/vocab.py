"""Category and predicate vocabularies shipped as package data (``pyvrel/data/vocab/*.txt``).

ImageNet-VidVRD (``"vidvrd"``: 35 objects, 132 predicates with vRGV's static/dynamic grouping) and
VidOR (``"vidor"``: 80 objects, 50 predicates); the header of each file names its source. Build a
:class:`Vocabulary` for other data from your own files with :meth:`Vocabulary.from_files`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["SHIPPED", "Vocabulary", "load_vocabulary"]


def _lines(text: str) -> list[str]:
    return [ln for ln in (raw.strip() for raw in text.splitlines()) if ln and not ln.startswith("#")]


@dataclass(frozen=True)
class Vocabulary:
    """Object categories and predicates of a dataset, in a fixed order (class index = position).

    Attributes:
        objects: category names.
        predicates: predicate names.
        static_predicates: the predicates vRGV groups as static (the rest are dynamic); empty
            when unknown.
    """

    name: str
    objects: tuple[str, ...]
    predicates: tuple[str, ...]
    static_predicates: frozenset[str] = frozenset()

    @classmethod
    def from_text(cls, name: str, objects_text: str, predicates_text: str) -> "Vocabulary":
        """Parse one name per line (``#`` comments); a predicate line may end in a tab and
        ``static``/``dynamic``."""
        objects = tuple(_lines(objects_text))
        predicates, static = [], set()
        for ln in _lines(predicates_text):
            pred, _, kind = ln.partition("\t")
            predicates.append(pred.strip())
            if kind.strip() == "static":
                static.add(pred.strip())
        for label, names in (("objects", objects), ("predicates", predicates)):
            if len(set(names)) != len(names):
                raise ValueError(f"vocabulary {name!r}: duplicate names in {label}")
        return cls(name, objects, tuple(predicates), frozenset(static))

    @classmethod
    def from_files(cls, name: str, objects: str | Path, predicates: str | Path) -> "Vocabulary":
        return cls.from_text(name, Path(objects).read_text(), Path(predicates).read_text())

    def object_index(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.objects)}

    def predicate_index(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.predicates)}


SHIPPED = ("vidvrd", "vidor")


def load_vocabulary(dataset: str = "vidvrd") -> Vocabulary:
    """The shipped vocabulary of ``dataset`` (one of :data:`SHIPPED`)."""
    if dataset not in SHIPPED:
        raise ValueError(f"load_vocabulary: unknown dataset {dataset!r}; shipped: {', '.join(SHIPPED)} "
                         "(for other data use Vocabulary.from_files)")
    from importlib import resources  # here: not on the evaluation path's imports

    root = resources.files("pyvrel.data") / "vocab"
    return Vocabulary.from_text(dataset, (root / f"{dataset}_objects.txt").read_text(),
                                (root / f"{dataset}_predicates.txt").read_text())
