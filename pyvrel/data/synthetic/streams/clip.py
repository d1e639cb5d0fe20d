"""VrdONE-X's extra per-entity stream ``tracklet_clip (N, T, clip_dim)`` (``SynthConfig.clip_dim > 0``).

A *different view* of the entity than the appearance: a category-semantic embedding, like a CLIP
feature matched to a text prompt. Each category has a fixed unit "text" vector (one per world,
shared by all videos): ``normalize(g + t)`` with ``g`` shared by the categories of one locomotion
class (so related categories lie close) and ``t`` the category's own; a tracklet frame holds its
entity's *true* category vector (also where the detector's label is wrong) plus noise
``N(0, 0.1 / sqrt(clip_dim))``, with no instance identity; false tracks get random unit vectors.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from pyvrel.data.synthetic.rules import CATEGORIES

if TYPE_CHECKING:
    from pyvrel.data.annotations import VideoAnnotation
    from pyvrel.data.synthetic.world import World

__all__ = ["ClipStream"]


class ClipStream:
    """The ``tracklet_clip`` stream; :attr:`text_vectors` ``(C, clip_dim)`` float32 are the unit
    "text" vectors of the world's object categories."""

    option = "clip_dim"
    tag = 1

    def __init__(self, world: World) -> None:
        self.dim = world.config.clip_dim
        self.index = world.vocab.object_index()
        rng = np.random.default_rng([world.config.seed, 1 << 30, self.tag])
        classes = sorted({c.locomotion for c in CATEGORIES.values()})
        group = dict(zip(classes, rng.normal(size=(len(classes), self.dim))))
        own = rng.normal(size=(len(world.vocab.objects), self.dim))
        v = np.stack([group[CATEGORIES[c].locomotion] for c in world.vocab.objects]) + own
        self.text_vectors = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)

    def arrays(self, rng: np.random.Generator, annotation: VideoAnnotation, categories: list[str],
               arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``{"tracklet_clip"}``: the true category's text vector of the entity each tracklet follows
        plus per-frame noise, random unit vectors for false tracks, zeros past each tracklet's length."""
        Dc = self.dim
        tid, length = arrays["tracklet_tid"], arrays["tracklet_length"]
        N, T = arrays["tracklet_boxes"].shape[:2]
        base = rng.normal(size=(N, Dc))
        base /= np.linalg.norm(base, axis=1, keepdims=True)
        real = tid >= 0
        base[real] = self.text_vectors[[self.index[categories[t]] for t in tid[real]]]
        out = base[:, None, :] + rng.normal(0, 0.1 / math.sqrt(Dc), (N, T, Dc))
        out[np.arange(T)[None, :] >= length[:, None]] = 0.0
        return {"tracklet_clip": out.astype(np.float32)}
