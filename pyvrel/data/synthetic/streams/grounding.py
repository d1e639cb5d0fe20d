"""vRGV's grounding stream (``SynthConfig.grounding``): region proposals on sampled frames.

What a weakly supervised grounder (vRGV) reads, made from a video's
generated annotation (its ground-truth boxes and categories) and the world's category prototypes:

* sampled frames: ``round(linspace(0, frame_count - 1, S))`` with ``S = SynthConfig.sampled_frames``,
  so a video shorter than S frames repeats frames, as vRGV's sampler does;
* ``M = SynthConfig.proposals`` proposals per sampled frame, in a random slot order:
  each visible entity's box with detector-like jitter (N(0, 0.05) of its size per coordinate) and
  its appearance (category prototype + a per-entity instance vector + per-frame noise, as the
  tracklets); up to ``SynthConfig.grounding_clutter`` (2) *distractors* per entity — the entity's
  box shifted by N(0, 0.3) of its size (partial boxes, duplicates) whose feature is half the
  entity's appearance plus noise; as many *confusers* with another category's prototype; the rest
  background boxes with noise features;
* the video-level relation labels are the annotation's triplets (the only supervision vRGV uses);
* with ``SynthConfig.twins`` (the grounding world of same-category entities), each relation instance
  adds a *trace* of its predicate to the appearance of its subject and of its object on the frames
  where it holds (``[begin, end)``): a world-level unit vector per predicate and role (subject,
  object), a share of it (in energy; ``SynthConfig.twins_trace``, half by default) common to every
  predicate of the role and the rest its own, as a person riding looks engaged, and unlike one
  walking. An entity in no relation at a frame (every twin, and the related entities outside their
  instances) has its own *idle* pose instead, a random unit vector per entity (no look common to
  the idle entities of a category): every entity has a pose of the same norm (:func:`pose`), so a
  relation makes an entity look different, not more salient, and the predicate word alone tells
  the related entities and frames apart. The shifted distractors copy half of it, as they copy half
  the appearance.

It replaces the plain ``proposal_*`` arrays of the detector outputs (whose entity boxes sit in the
first slots, noise-free). It draws from a generator of its own (``default_rng([seed, index, 2])``),
so the other arrays of a video do not depend on it, and worlds written without it are unchanged. Keys (one ``.npz`` per video, :mod:`pyvrel.data.features`):
``proposal_frames (S,) int64`` (non-decreasing), ``proposal_boxes (S, M, 4) float32`` (pixels),
``proposal_features (S, M, D) float32``, ``proposal_tid (S, M) int64`` (the entity of each
entity box, -1 for distractors, confusers and background; for diagnostics, never for training).
Real data provide the same keys from a detector (vRGV: 120 frames, 40 RoIs, 2048-d features).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from pyvrel.data.annotations import VideoAnnotation

if TYPE_CHECKING:
    from pyvrel.data.synthetic.world import World

__all__ = ["GroundingStream", "pose", "sampled_frames"]

TRACE = 1.0          # norm of an entity's pose in a twins world (a category prototype's is 1)


def sampled_frames(frame_count: int, samples: int) -> np.ndarray:
    """vRGV's frame sampler: ``round(linspace(0, frame_count - 1, samples))`` as int64 (repeats allowed)."""
    return np.round(np.linspace(0, frame_count - 1, samples)).astype(np.int64)


class GroundingStream:
    """The grounding stream of a world (:class:`~pyvrel.data.synthetic.streams.Stream`)."""

    option = "grounding"
    tag = 2

    def __init__(self, world: World) -> None:
        self.world = world
        #: (2, D) trace of each predicate on its subject (0) and object (1); twins worlds only
        self.traces: dict[str, np.ndarray] | None = None
        if world.config.twins:
            rng = np.random.default_rng([world.config.seed, 1 << 30, self.tag])
            t = rng.normal(size=(len(world.vocab.predicates) + 1, 2, world.config.feature_dim))
            own = t[1:]  # each predicate's own look; the engaged look (row 0) at each one's length:
            engaged = t[:1] / np.linalg.norm(t[:1], axis=-1, keepdims=True) * np.linalg.norm(own, axis=-1, keepdims=True)
            share = world.config.twins_trace  # of the energy; 0.5: equal parts, as before the option
            t = math.sqrt(2 * (1 - share)) * own + math.sqrt(2 * share) * engaged
            self.traces = dict(zip(world.vocab.predicates, t / np.linalg.norm(t, axis=-1, keepdims=True)))

    def arrays(self, rng: np.random.Generator, annotation: VideoAnnotation, categories: list[str],
               arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The ``proposal_*`` arrays of one video (module docstring) from its annotation and its
        entities' categories (by tid)."""
        return _regions(rng, self.world, annotation, categories, self.traces)


def pose(annotation: VideoAnnotation, traces: dict[str, np.ndarray], idle: np.ndarray, frame: int, tid: int
         ) -> np.ndarray:
    """The pose of entity ``tid`` at video ``frame`` (D,), norm :data:`TRACE`: the sum of the traces of
    the relations it is in then, rescaled, else its ``idle`` pose (D,) (unit norm)."""
    t = sum((traces[r.predicate][role] for r in annotation.relations if r.begin_fid <= frame < r.end_fid
             for role, e in enumerate((r.subject_tid, r.object_tid)) if e == tid), np.zeros_like(idle))
    norm = np.linalg.norm(t)
    return TRACE * (t / norm if norm > 0 else idle)


def _regions(rng: np.random.Generator, world: World, annotation: VideoAnnotation, cats: list[str],
             traces: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    cfg = world.config
    D, M, C = cfg.feature_dim, cfg.proposals, len(world.vocab.objects)
    cidx = world.vocab.object_index()
    frames = sampled_frames(annotation.frame_count, cfg.sampled_frames)
    unique, inverse = np.unique(frames, return_inverse=True)
    inst = [rng.normal(0, 0.5 / math.sqrt(D), D) for _ in cats]
    if traces is not None:  # twins worlds: each entity's own idle pose
        idle = rng.normal(size=(len(cats), D))
        idle /= np.linalg.norm(idle, axis=1, keepdims=True)
    W, H = annotation.width, annotation.height
    noise = 1 / math.sqrt(D)

    def random_boxes(n: int) -> np.ndarray:
        wh = rng.uniform(20, 200, (n, 2))
        xy = rng.uniform(0, 1, (n, 2)) * (np.array([W, H]) - wh)
        return np.concatenate([xy, xy + wh], 1)

    ub = np.zeros((len(unique), M, 4), np.float32)
    uf = np.zeros((len(unique), M, D), np.float32)
    ut = np.full((len(unique), M), -1, np.int64)
    for si, frame in enumerate(unique.tolist()):
        visible = annotation.trajectories[frame][:M]
        boxes, feats, tids = [], [], []
        extra_b, extra_f = [], []
        for fb in visible:
            b = np.asarray(fb.bbox, np.float64)
            size = np.array([b[2] - b[0], b[3] - b[1]] * 2)
            appear = world.prototypes[cidx[cats[fb.tid]]] + inst[fb.tid] + rng.normal(0, 0.3 * noise, D)
            if traces is not None:
                appear = appear + pose(annotation, traces, idle[fb.tid], frame, fb.tid)
            boxes.append(b + rng.normal(0, 0.05, 4) * size)
            feats.append(appear)
            tids.append(fb.tid)
            for _ in range(cfg.grounding_clutter):  # shifted copies, kept while slots last
                extra_b.append(b + rng.normal(0, 0.3, 4) * size)
                extra_f.append(0.5 * appear + rng.normal(0, noise, D))
        for _ in range(cfg.grounding_clutter):  # boxes with another category's appearance
            extra_b.append(random_boxes(1)[0])
            extra_f.append(world.prototypes[int(rng.integers(C))] + rng.normal(0, 0.5 * noise, D))
        k = min(len(extra_b), M - len(boxes))
        boxes += extra_b[:k]
        feats += extra_f[:k]
        rest = M - len(boxes)
        b_all = np.concatenate([np.array(boxes).reshape(-1, 4), random_boxes(rest)])
        f_all = np.concatenate([np.array(feats).reshape(-1, D), rng.normal(0, noise, (rest, D))])
        t_all = np.array(tids + [-1] * (M - len(tids)), np.int64)
        x1, x2 = np.sort(np.clip(b_all[:, [0, 2]], 0, W - 1), 1).T  # detector boxes lie inside the image
        y1, y2 = np.sort(np.clip(b_all[:, [1, 3]], 0, H - 1), 1).T
        order = rng.permutation(M)
        ub[si] = np.stack([x1, y1, np.maximum(x2, x1 + 1), np.maximum(y2, y1 + 1)], 1)[order]
        uf[si], ut[si] = f_all[order], t_all[order]
    return {"proposal_frames": frames, "proposal_boxes": ub[inverse], "proposal_features": uf[inverse],
            "proposal_tid": ut[inverse]}
