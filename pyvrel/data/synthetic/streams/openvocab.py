"""UASAN's open-vocabulary stream (``SynthConfig.open_vocab = D > 0``): a base/novel split whose
names carry meaning, concept features of the tracklets and a per-frame feature map for union regions.

What a frozen vision-language backbone (BLIP-2's ViT in the paper) would give, made so that a text
encoder can reach novel classes through the words their names share with base classes:

* words: every word of the vocabulary's names (``walk_next_to`` -> walk, next, to) has a private
  random vector of the world; a predicate's *concept* is the normalised mean of its words' vectors,
  an object's the normalised sum of its locomotion class's vector (legged, fly, ...) and the mean of
  its words' vectors. Related names have related concepts (``walk_behind`` lies between
  ``walk_left`` and ``run_behind``); the model never sees these vectors, only features made of them.
* split (:func:`open_vocab_split`, it replaces the world's random one): 61 of the 132 predicates are
  novel, drawn in a seeded order, each only if every one of its words stays in some base predicate;
  10 of the 35 categories are novel (never ``person``). So every novel predicate is a new
  combination of base words.
* ``tracklet_concept (N, T, D)``: the true category's concept of the entity a tracklet follows plus
  per-frame noise ``N(0, 0.3 / sqrt(D))`` (random unit vectors for false tracks), zeros past each
  tracklet's length.
* ``union_grid (F, 9, 16, D)``: a feature map per frame, one cell per 80x80 pixels: each visible
  entity adds half its concept to the cells its box touches, each relation instance active in the
  frame adds its predicate's concept to the cells the union box of its subject and object touches,
  plus per-cell noise ``N(0, 0.3 / sqrt(D))``. Pooling it over the union box of a pair
  (:func:`pyvrel.models.uasan.features.union_features`) is the "union region feature"; other
  relations whose regions overlap leak in, as in real crops.

It draws from generators of its own (tag 3), so the other arrays of a video do not depend on it and
worlds written without it are unchanged.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from pyvrel.data.synthetic.rules import CATEGORIES

if TYPE_CHECKING:
    from pyvrel.data.annotations import VideoAnnotation
    from pyvrel.data.synthetic.world import World
    from pyvrel.data.vocab import Vocabulary

__all__ = ["CELL", "GRID", "NOVEL_OBJECTS", "NOVEL_PREDICATES", "OpenVocabStream", "name_words", "open_vocab_split"]

GRID = (9, 16)           # rows, columns of the per-frame feature map
CELL = 80.0              # pixels per cell side (1280 x 720 canvas)
NOVEL_PREDICATES = 61    # VidVRD's published split sizes (paper): 71 base / 61 novel predicates
NOVEL_OBJECTS = 10       # 25 base / 10 novel categories


def name_words(name: str) -> list[str]:
    """``"walk_next_to"`` -> ``["walk", "next", "to"]``."""
    return [w for w in name.lower().replace("-", "_").replace(" ", "_").split("_") if w]


def open_vocab_split(vocab: Vocabulary, rng: np.random.Generator) -> dict[str, dict[str, list[str]]]:
    """``{"objects"|"predicates": {"base": [...], "novel": [...]}}`` (sorted names; module docstring)."""
    preds = [str(p) for p in rng.permutation(list(vocab.predicates))]
    uses: dict[str, int] = {}
    for p in preds:
        for w in set(name_words(p)):
            uses[w] = uses.get(w, 0) + 1
    novel = []
    for p in preds:
        if len(novel) < NOVEL_PREDICATES and all(uses[w] > 1 for w in set(name_words(p))):
            novel.append(p)
            for w in set(name_words(p)):
                uses[w] -= 1
    objs = [str(o) for o in rng.permutation([o for o in vocab.objects if o != "person"])][:NOVEL_OBJECTS]
    return {"objects": {"base": sorted(set(vocab.objects) - set(objs)), "novel": sorted(objs)},
            "predicates": {"base": sorted(set(vocab.predicates) - set(novel)), "novel": sorted(novel)}}


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _cells(box: np.ndarray) -> tuple[slice, slice]:
    """The grid rows and columns a pixel box ``(x1, y1, x2, y2)`` touches."""
    r0, c0 = int(max(box[1], 0) // CELL), int(max(box[0], 0) // CELL)
    r1, c1 = int(math.ceil(box[3] / CELL)), int(math.ceil(box[2] / CELL))
    return slice(min(r0, GRID[0] - 1), max(min(r1, GRID[0]), r0 + 1)), slice(min(c0, GRID[1] - 1), max(min(c1, GRID[1]), c0 + 1))


class OpenVocabStream:
    """The open-vocabulary stream of a world (module docstring); ``concepts`` maps every object and
    predicate name to its ``(D,)`` unit concept vector, ``split`` is the world's base/novel split."""

    option = "open_vocab"
    tag = 3

    def __init__(self, world: World) -> None:
        D = self.dim = world.config.open_vocab
        rng = np.random.default_rng([world.config.seed, 1 << 30, self.tag])
        vocab = world.vocab
        words = sorted({w for n in (*vocab.objects, *vocab.predicates) for w in name_words(n)})
        vectors = dict(zip(words, _unit(rng.normal(size=(len(words), D)))))
        classes = sorted({c.locomotion for c in CATEGORIES.values()})
        group = dict(zip(classes, _unit(rng.normal(size=(len(classes), D)))))
        mean = {n: _unit(np.mean([vectors[w] for w in name_words(n)], 0)) for n in (*vocab.objects, *vocab.predicates)}
        self.concepts = {p: mean[p].astype(np.float32) for p in vocab.predicates}
        self.concepts.update({o: _unit(group[CATEGORIES[o].locomotion] + mean[o]).astype(np.float32)
                              for o in vocab.objects})
        self.split = open_vocab_split(vocab, rng)

    def arrays(self, rng: np.random.Generator, annotation: VideoAnnotation, categories: list[str],
               arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``{"tracklet_concept", "union_grid"}`` of one video (module docstring)."""
        D, noise = self.dim, 0.3 / math.sqrt(self.dim)
        tid, length = arrays["tracklet_tid"], arrays["tracklet_length"]
        N, T = arrays["tracklet_boxes"].shape[:2]
        base = _unit(rng.normal(size=(N, D)))
        real = tid >= 0
        base[real] = np.stack([self.concepts[categories[t]] for t in tid[real]]) if real.any() else base[real]
        concept = base[:, None, :] + rng.normal(0, noise, (N, T, D))
        concept[np.arange(T)[None, :] >= length[:, None]] = 0.0
        F = annotation.frame_count
        grid = rng.normal(0, noise, (F, *GRID, D))
        boxes = [{fb.tid: np.asarray(fb.bbox) for fb in frame} for frame in annotation.trajectories]
        for f, frame in enumerate(boxes):
            for t, box in frame.items():
                rows, cols = _cells(box)
                grid[f, rows, cols] += 0.5 * self.concepts[categories[t]]
        for r in annotation.relations:
            vec = self.concepts[r.predicate]
            for f in range(r.begin_fid, r.end_fid):
                s, o = boxes[f].get(r.subject_tid), boxes[f].get(r.object_tid)
                if s is not None and o is not None:
                    rows, cols = _cells(np.concatenate([np.minimum(s[:2], o[:2]), np.maximum(s[2:], o[2:])]))
                    grid[f, rows, cols] += vec
        return {"tracklet_concept": concept.astype(np.float32), "union_grid": grid.astype(np.float32)}
