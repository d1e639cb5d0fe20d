"""A long-tailed predicate distribution for the training split (``SynthConfig.predicate_tail > 0``).

The world's relations follow from its geometry, so its predicates share patterns by construction:
``walk_left`` holds exactly when the subject walks and is ``left`` of the object (see
:mod:`.rules`). This option makes the *training labels* long-tailed over them, as in real data
where annotators miss tail relations: the world's predicates get a seeded frequency rank (a
permutation of the vocabulary, one per world) and each training relation instance of the predicate
of rank ``r`` (1-based) is kept with probability ``r ** -predicate_tail``, dropped otherwise. Tail
predicates thus keep few labels while the patterns they are made of (``walk``, ``left``) stay
frequent through their head relatives; the test split keeps every relation, so per-predicate
recall (mR@K) is measured on complete labels. Features and boxes are unchanged.

Draws come from generators of their own, ``default_rng([seed, 1 << 30, 3])`` (the rank) and
``default_rng([seed, index, 3])`` (per video), so every other part of a world is the same with or
without the option, and a world written without it is byte-identical to before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from pyvrel.data.annotations import RelationInstance

if TYPE_CHECKING:
    from pyvrel.data.synthetic.world import SynthConfig, World

__all__ = ["OPTION", "TAG", "keep_probabilities", "thin_relations"]

OPTION = "predicate_tail"   # the SynthConfig field; world.json records it only when set
TAG = 3                     # seed tag of this option's generators


def keep_probabilities(world: World) -> dict[str, float]:
    """``{predicate: probability that a training instance of it is kept}`` (module docstring)."""
    rng = np.random.default_rng([world.config.seed, 1 << 30, TAG])
    order = rng.permutation(len(world.vocab.predicates))
    head = max(1, len(order) // 4)
    return {world.vocab.predicates[p]: float(min(1.0, head / (rank + 1)) ** world.config.predicate_tail)
            for rank, p in enumerate(order.tolist())}


def thin_relations(config: SynthConfig, index: int, keep: dict[str, float],
                   relations: list[RelationInstance]) -> list[RelationInstance]:
    """The relations of training video ``index`` that survive thinning by ``keep`` (one draw each, in order)."""
    rng = np.random.default_rng([config.seed, index, TAG])
    draws = rng.random(len(relations))
    return [r for r, u in zip(relations, draws.tolist()) if u < keep[r.predicate]]
