"""The synthetic video-relation world: deterministic from a seed, written in the official formats.

Every video is a few entities of ImageNet-VidVRD categories moving on a 640x360 canvas. Their
ground-truth boxes come from motion models; the relations are *computed* from those boxes, so a
model that reads the geometry, motion and categories can learn them exactly, and the metrics mean
something. ``pyvrel synth OUT_DIR`` writes a world; :func:`generate_video` makes one video in
memory.

Entities (:func:`_entity_track`)
    2-6 per video (``SynthConfig.entities``), categories drawn with weights ``rank^-tail`` over a
    seeded order of the 35 categories. Each lives on one contiguous frame span (the whole video or
    at least 30 frames) with a box whose height, aspect ratio and speed come from its category
    (:data:`CATEGORIES`). The span is cut into 15-60 frame segments, each with a motion model:
    ``stop`` (standing still; legged categories take a posture: stand, sit or lie, which changes
    the box's aspect ratio), ``walk`` (the category's speed), ``run`` (2.2-3x that), ``turn``
    (a 60-120 degree turn, then walk), ``approach`` / ``leave`` (walk or run towards / away from
    another entity), ``jump`` (walk plus 24-frame hops). Mode weights are also ``rank^-tail``
    (stop, walk, turn, approach, leave, run, jump). Positions reflect off the canvas edges. A person
    may ride a bicycle, motorcycle, horse, elephant or skateboard (it then moves with it, on top).
    Boxes are rounded to integer pixels; everything below is computed from the rounded boxes.

Per-frame quantities of an entity (:func:`entity_geometry`)
    centre ``c``, width ``w``, height ``h``; velocity ``v(t) = (c(t+4) - c(t-4)) / span`` (central
    difference over up to 4 frames each side, clipped to the entity's span), speed ``|v|``
    (pixels/frame).

Actional pattern of an entity (:func:`entity_actions`)
    * static (speed < 0.5): legged categories ``stand``, ``sit`` or ``lie`` by the posture ratio
      ``q = (h / w) / aspect_ratio_of_category``: ``lie`` if ``q < 0.45`` (and the category can
      lie), ``sit`` if ``q < 0.8`` (and it can sit), else ``stand``; other categories ``stop``.
    * moving: by locomotion class: legged ``jump`` if ``v_y <= -1.2`` (rising) and the category
      jumps, else ``run`` if speed ``>= 1.8 x category speed``, else ``walk``; ``fly`` (bird,
      airplane), ``swim`` (whale, turtle), ``creep`` (snake, lizard), ``move`` (vehicles and objects).

Spatial patterns of an ordered pair (s, o) in camera view (:func:`pair_predicates`)
    with ``ox``/``oy`` the horizontal/vertical overlap of the boxes (pixels, > 0 when they overlap)
    and "close" meaning centre distance ``<= 3 x mean width``:
    ``above``: ``s.y2 <= o.cy``, ``ox > 0``, close; ``beneath``: ``s.y1 >= o.cy``, ``ox > 0``, close;
    ``left``: ``s.x2 <= o.cx``, ``oy > 0``, close; ``right``: ``s.x1 >= o.cx``, ``oy > 0``, close;
    ``front`` / ``behind``: the boxes overlap and ``s.y2 - o.y2 >= 0.1 * mean height`` / ``<= -0.1 *
    mean height`` (lower in the image = nearer the camera); ``next_to``: the boxes do not overlap,
    ``oy > 0`` and the horizontal gap ``<= 0.5 * min(w)``; ``inside``: s's box inside o's box.

Predicates (all strings are VidVRD predicates; a composite is emitted only if it is one)
    * the bare spatial predicate (``left``, ``above``, ..., not ``inside``), and
      ``<action of s>_<spatial>`` (``walk_left``, ``stand_next_to``, ``lie_inside``, ...);
    * ``toward`` / ``away`` (s moving, ``cos(v_s, c_o - c_s) >= 0.8`` / ``<= -0.8``, centre distance
      ``<= 4 x mean width``) and ``past``
      (s moving, ``|cos| <= 0.5``, centre distance ``<= 3 x mean width``), each bare and as
      ``<action>_toward``, ...;
    * ``follow``: both moving, ``cos(v_s, v_o) >= 0.8``, o ahead (``cos(v_o, c_o - c_s) >= 0.5``),
      distance ``<= 4 x mean width``; ``chase``: follow and s runs;
    * ``<action>_with``: same action, both static or ``cos(v_s, v_o) >= 0.9`` with speed ratio in
      [2/3, 3/2], distance ``<= 2 x mean width``;
    * near (centre distance ``<= 2 x mean width``) and: ``faster``: both moving and ``speed_s >= 1.5
      speed_o + 0.5``; ``taller``: ``h_s >= 1.3 h_o``; ``larger``: ``w_s h_s >= 2 w_o h_o``;
    * ``ride``: s is a person, o rideable, s's bottom inside o's vertical extent and above o's
      centre, ``ox >= 0.5 min(w)``, both moving with ``cos(v_s, v_o) >= 0.9``.

Relation instances are the maximal runs of frames (both entities present) over which a predicate
holds, at least ``min_run`` frames long; a pair carries several predicates at once.

Besides the annotation (``annotations/{train,test}/<vid>.json``), each video gets a feature file
(``features/<vid>.npz``, keys in :mod:`pyvrel.data.features`): appearance features (category
prototype + instance vector + per-frame noise), noisy detected tracklets (jitter, truncation,
fragmentation, false tracks, category confusions with score vectors), raw per-frame detections for
Seq-NMS, and vRGV-style region proposals with features on sampled frames.

With ``SynthConfig.clip_dim > 0`` the tracklets also get VrdONE-X's extra per-entity stream
``tracklet_clip (N, T, clip_dim)`` (:func:`_clip_stream`), a *different view* of the entity than the
appearance: a category-semantic embedding, like a CLIP feature matched to a text prompt. Each
category has a fixed unit "text" vector (one per world, shared by all videos): ``normalize(g + t)``
with ``g`` shared by the categories of one locomotion class (so related categories lie close) and
``t`` the category's own; a tracklet frame holds its entity's *true* category vector (also where
the detector's label is wrong) plus noise ``N(0, 0.1 / sqrt(clip_dim))``, with no instance
identity; false tracks get random unit vectors. It is drawn from generators of its own, so the
other arrays are those of the same world without it, and ``clip_dim = 0`` (the default) writes
exactly what worlds without this option wrote.

``world.json`` records the config (``clip_dim`` only when set), the vocabularies, the base/novel
split of objects (25/10) and predicates (71/61) and the train/test video split.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pyvrel.data import _json
from pyvrel.data.annotations import FrameBox, ObjectInfo, RelationInstance, VideoAnnotation, write_annotations
from pyvrel.data.features import FeatureStore
from pyvrel.data.synthetic_grounding import GroundingStream
from pyvrel.data.vocab import Vocabulary, load_vocabulary

__all__ = [
    "CATEGORIES",
    "SynthConfig",
    "SyntheticVideo",
    "World",
    "entity_geometry",
    "entity_actions",
    "pair_predicates",
    "generate_video",
    "generate",
    "write_world",
]

WIDTH, HEIGHT = 1280, 720
STATIC_SPEED = 0.5       # px/frame below which an entity is static
JUMP_VY = -1.2           # px/frame (upwards) from which a jumping category's move is a jump
RUN_FACTOR = 1.8         # run when speed >= RUN_FACTOR * category speed
VEL_HALF_WINDOW = 4      # frames each side of the central-difference velocity


@dataclass(frozen=True)
class Category:
    """Per-category constants: box height (px), aspect ratio w/h, walking speed (px/frame),
    locomotion (``legged``, ``fly``, ``swim``, ``creep``, ``vehicle``, ``object``), postures it
    can take when static (``sit``, ``lie``), whether it jumps, whether a person can ride it."""

    height: float
    aspect: float
    speed: float
    locomotion: str
    postures: tuple[str, ...] = ()
    jumps: bool = False
    rideable: bool = False


_SL, _S, _L = ("sit", "lie"), ("sit",), ("lie",)
CATEGORIES: dict[str, Category] = {
    "airplane": Category(120, 2.0, 4.5, "fly"), "antelope": Category(105, 1.2, 2.4, "legged", _L, True),
    "ball": Category(24, 1.0, 3.75, "object"), "bear": Category(120, 1.3, 1.8, "legged", _SL),
    "bicycle": Category(90, 1.5, 3, "vehicle", rideable=True), "bird": Category(33, 1.2, 3.75, "fly"),
    "bus": Category(180, 1.8, 2.7, "vehicle"), "car": Category(105, 1.8, 3.75, "vehicle"),
    "cattle": Category(120, 1.5, 1.35, "legged", _L), "dog": Category(75, 1.3, 2.4, "legged", _SL, True),
    "domestic_cat": Category(57, 1.2, 1.95, "legged", _SL, True),
    "elephant": Category(180, 1.3, 1.5, "legged", (), False, True), "fox": Category(60, 1.4, 2.4, "legged", _SL, True),
    "frisbee": Category(18, 1.6, 4.5, "object"), "giant_panda": Category(105, 1.1, 1.2, "legged", _SL),
    "hamster": Category(27, 1.3, 1.35, "legged", _S, True), "horse": Category(142.5, 1.2, 3, "legged", _L, True, True),
    "lion": Category(112.5, 1.5, 2.25, "legged", _SL, True), "lizard": Category(24, 2.0, 1.5, "creep"),
    "monkey": Category(67.5, 0.9, 2.1, "legged", _SL, True),
    "motorcycle": Category(90, 1.6, 3.9, "vehicle", rideable=True),
    "person": Category(165, 0.45, 1.8, "legged", _SL, True), "rabbit": Category(42, 1.1, 2.4, "legged", _S, True),
    "red_panda": Category(52.5, 1.4, 1.5, "legged", _SL, True), "sheep": Category(75, 1.3, 1.5, "legged", _L),
    "skateboard": Category(18, 2.5, 3.75, "vehicle", rideable=True), "snake": Category(21, 3.0, 1.2, "creep"),
    "sofa": Category(90, 2.0, 0, "object"), "squirrel": Category(30, 1.2, 2.7, "legged", _S, True),
    "tiger": Category(112.5, 1.6, 2.25, "legged", _SL, True), "train": Category(180, 3.0, 4.5, "vehicle"),
    "turtle": Category(33, 1.5, 0.9, "swim"), "watercraft": Category(90, 2.2, 2.7, "vehicle"),
    "whale": Category(135, 2.5, 2.1, "swim"), "zebra": Category(127.5, 1.3, 2.4, "legged", _L),
}
# Category frequency rank (most frequent first; weights rank^-tail), roughly VidVRD's head first.
_POPULARITY = ("person", "dog", "car", "horse", "bicycle", "domestic_cat", "motorcycle", "bird", "elephant",
               "monkey", "cattle", "ball", "zebra", "airplane", "watercraft", "antelope", "sheep", "bear", "lion",
               "tiger", "giant_panda", "whale", "skateboard", "turtle", "rabbit", "fox", "bus", "train", "squirrel",
               "lizard", "snake", "red_panda", "hamster", "frisbee", "sofa")
_MOVING_ACTION = {"fly": "fly", "swim": "swim", "creep": "creep", "vehicle": "move", "object": "move"}
_POSTURE_SCALE = {"stand": (1.0, 1.0), "sit": (0.75, 1.25), "lie": (0.5, 5 / 3)}  # (height, width) factors
_MODES = ("stop", "walk", "turn", "approach", "leave", "run", "jump")
_SPATIAL = ("above", "beneath", "left", "right", "front", "behind", "next_to")


@dataclass
class SynthConfig:
    """Parameters of a synthetic world (all defaults give the documented world).

    Attributes:
        seed: everything is a function of it (and of the video index).
        num_videos: videos to generate; ``train_fraction`` of them form the training split.
        frames: inclusive range of frames per video.
        entities: inclusive range of entities per video.
        min_run: shortest relation instance, frames.
        tail: long-tail exponent of category and motion-mode frequencies (0 = uniform).
        ride_prob: probability that a person in a video with a rideable entity rides it.
        feature_dim: appearance feature dimension.
        features: write feature files (tracklets, detections, proposals).
        proposals: region proposals per sampled frame (vRGV uses 40), sampled_frames: frames
            sampled for proposals (vRGV: 120, or every frame of shorter videos).
        confusion: probability that a detected tracklet's top category is a wrong one.
        false_tracks: mean number of false tracklets per video.
        clip_dim: width of the extra per-entity stream ``tracklet_clip`` (module docstring);
            0 = not written.
        grounding: replace the plain proposals by vRGV's grounding stream
            (:mod:`pyvrel.data.synthetic_grounding`: distractors, jitter, shuffled slots).
    """

    seed: int = 0
    num_videos: int = 200
    train_fraction: float = 0.8
    frames: tuple[int, int] = (60, 300)
    entities: tuple[int, int] = (2, 6)
    min_run: int = 10
    tail: float = 1.0
    ride_prob: float = 0.5
    feature_dim: int = 32
    features: bool = True
    proposals: int = 10
    sampled_frames: int = 120
    confusion: float = 0.1
    false_tracks: float = 1.0
    clip_dim: int = 0
    grounding: bool = False


class World:
    """Seed-level constants: vocabulary, category order and prototypes, base/novel splits."""

    def __init__(self, config: SynthConfig) -> None:
        self.config = config
        self.vocab: Vocabulary = load_vocabulary("vidvrd")
        self.predicates = frozenset(self.vocab.predicates)
        rng = np.random.default_rng([config.seed, 1 << 30])
        self.category_order = list(_POPULARITY)
        w = (np.arange(1, len(self.category_order) + 1, dtype=np.float64)) ** -config.tail
        self.category_weights = w / w.sum()
        mw = (np.arange(1, len(_MODES) + 1, dtype=np.float64)) ** -config.tail
        self.mode_cdf = np.cumsum(mw / mw.sum())
        self.category_cdf = np.cumsum(self.category_weights)
        protos = rng.normal(size=(len(self.vocab.objects), config.feature_dim))
        self.prototypes = (protos / np.linalg.norm(protos, axis=1, keepdims=True)).astype(np.float32)
        objs = list(rng.permutation(self.vocab.objects))
        preds = list(rng.permutation(self.vocab.predicates))
        self.split = {"objects": {"base": sorted(objs[:25]), "novel": sorted(objs[25:])},
                      "predicates": {"base": sorted(preds[:71]), "novel": sorted(preds[71:])}}
        self.text_vectors = self._text_vectors() if config.clip_dim > 0 else None

    def _text_vectors(self) -> np.ndarray:
        """``(C, clip_dim)`` float32 unit "text" vectors of the object categories (module docstring)."""
        rng = np.random.default_rng([self.config.seed, 1 << 30, 1])
        classes = sorted({c.locomotion for c in CATEGORIES.values()})
        group = dict(zip(classes, rng.normal(size=(len(classes), self.config.clip_dim))))
        own = rng.normal(size=(len(self.vocab.objects), self.config.clip_dim))
        v = np.stack([group[CATEGORIES[c].locomotion] for c in self.vocab.objects]) + own
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


# ---- geometry and rules --------------------------------------------------------------------------


def entity_geometry(boxes: np.ndarray) -> dict[str, np.ndarray]:
    """Per-frame geometry of one entity from its boxes ``(L, 4)`` (consecutive frames).

    Returns ``cx, cy, w, h, vx, vy, speed`` (each ``(L,)`` float64); the velocity is the central
    difference over up to ``VEL_HALF_WINDOW`` frames each side, clipped to the span.
    """
    b = np.asarray(boxes, dtype=np.float64)
    n = len(b)
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    idx = np.arange(n)
    lo, hi = np.maximum(idx - VEL_HALF_WINDOW, 0), np.minimum(idx + VEL_HALF_WINDOW, n - 1)
    dt = np.maximum(hi - lo, 1)
    vx, vy = (cx[hi] - cx[lo]) / dt, (cy[hi] - cy[lo]) / dt
    return {"x1": b[:, 0], "y1": b[:, 1], "x2": b[:, 2], "y2": b[:, 3], "cx": cx, "cy": cy,
            "w": b[:, 2] - b[:, 0], "h": b[:, 3] - b[:, 1], "vx": vx, "vy": vy, "speed": np.hypot(vx, vy)}


def entity_actions(geom: dict[str, np.ndarray], category: str) -> np.ndarray:
    """The actional pattern of an entity per frame (object array of strings), by the rules in the
    module docstring."""
    cat = CATEGORIES[category]
    n = len(geom["cx"])
    out = np.empty(n, dtype=object)
    static = geom["speed"] < STATIC_SPEED
    if cat.locomotion == "legged" or category == "bird":
        q = (geom["h"] / np.maximum(geom["w"], 1e-9)) / cat.aspect
        posture = np.full(n, "stand", dtype=object)
        if "sit" in cat.postures:
            posture[q < 0.8] = "sit"
        if "lie" in cat.postures:
            posture[q < 0.45] = "lie"
        out[static] = posture[static]
    else:
        out[static] = "stop"
    moving = ~static
    if cat.locomotion == "legged":
        run = geom["speed"] >= RUN_FACTOR * cat.speed
        jump = (geom["vy"] <= JUMP_VY) if cat.jumps else np.zeros(n, dtype=bool)
        out[moving] = np.where(jump, "jump", np.where(run, "run", "walk"))[moving]
    else:
        out[moving] = _MOVING_ACTION[cat.locomotion]
    return out


def _cos(ax: np.ndarray, ay: np.ndarray, bx: np.ndarray, by: np.ndarray) -> np.ndarray:
    den = np.hypot(ax, ay) * np.hypot(bx, by)
    return np.where(den > 0, (ax * bx + ay * by) / np.where(den > 0, den, 1.0), 0.0)


def pair_predicates(gs: dict[str, np.ndarray], go: dict[str, np.ndarray], cat_s: str, cat_o: str,
                    act_s: np.ndarray, act_o: np.ndarray, vocabulary: frozenset[str]) -> dict[str, np.ndarray]:
    """Predicates of the ordered pair (s, o) per shared frame: predicate -> bool ``(L,)``.

    ``gs``/``go`` are :func:`entity_geometry` of both entities restricted to the same frames,
    ``act_s``/``act_o`` their :func:`entity_actions`. Rules: module docstring.
    """
    ox = np.minimum(gs["x2"], go["x2"]) - np.maximum(gs["x1"], go["x1"])
    oy = np.minimum(gs["y2"], go["y2"]) - np.maximum(gs["y1"], go["y1"])
    overlap = (ox > 0) & (oy > 0)
    mean_h, mean_w = (gs["h"] + go["h"]) / 2, (gs["w"] + go["w"]) / 2
    min_w = np.minimum(gs["w"], go["w"])
    dx, dy = go["cx"] - gs["cx"], go["cy"] - gs["cy"]
    dist = np.hypot(dx, dy)
    mov_s, mov_o = gs["speed"] >= STATIC_SPEED, go["speed"] >= STATIC_SPEED
    close = dist <= 3 * mean_w
    spatial = {
        "above": (gs["y2"] <= go["cy"]) & (ox > 0) & close,
        "beneath": (gs["y1"] >= go["cy"]) & (ox > 0) & close,
        "left": (gs["x2"] <= go["cx"]) & (oy > 0) & close,
        "right": (gs["x1"] >= go["cx"]) & (oy > 0) & close,
        "front": overlap & (gs["y2"] - go["y2"] >= 0.1 * mean_h),
        "behind": overlap & (gs["y2"] - go["y2"] <= -0.1 * mean_h),
        "next_to": ~overlap & (oy > 0) & (-ox <= 0.5 * min_w),
        "inside": (gs["x1"] >= go["x1"]) & (gs["y1"] >= go["y1"]) & (gs["x2"] <= go["x2"]) & (gs["y2"] <= go["y2"]),
    }
    cos_to = _cos(gs["vx"], gs["vy"], dx, dy)
    cos_vv = _cos(gs["vx"], gs["vy"], go["vx"], go["vy"])
    motion = {
        "toward": mov_s & (cos_to >= 0.8) & (dist <= 4 * mean_w),
        "away": mov_s & (cos_to <= -0.8) & (dist <= 4 * mean_w),
        "past": mov_s & (np.abs(cos_to) <= 0.5) & (dist <= 3 * mean_w),
    }
    out: dict[str, np.ndarray] = {}

    def add(name: str, mask: np.ndarray) -> None:
        if name in vocabulary and mask.any():
            out[name] = out[name] | mask if name in out else mask

    actions = set(act_s.tolist())
    for name, mask in {**spatial, **motion}.items():
        add(name, mask)
        for a in actions:
            add(f"{a}_{name}", mask & (act_s == a))
    follow = mov_s & mov_o & (cos_vv >= 0.8) & (_cos(go["vx"], go["vy"], dx, dy) >= 0.5) & (dist <= 4 * mean_w)
    add("follow", follow)
    add("chase", follow & (act_s == "run"))
    ratio = gs["speed"] / np.maximum(go["speed"], 1e-9)
    together = (~mov_s & ~mov_o) | ((cos_vv >= 0.9) & (ratio >= 2 / 3) & (ratio <= 1.5))
    with_ = (act_s == act_o) & together & (dist <= 2 * mean_w)
    for a in actions:
        add(f"{a}_with", with_ & (act_s == a))
    near = dist <= 2 * mean_w
    add("faster", mov_s & mov_o & (gs["speed"] >= 1.5 * go["speed"] + 0.5) & near)
    add("taller", (gs["h"] >= 1.3 * go["h"]) & near)
    add("larger", (gs["w"] * gs["h"] >= 2 * go["w"] * go["h"]) & near)
    if cat_s == "person" and CATEGORIES[cat_o].rideable:
        add("ride", (gs["y2"] > go["y1"]) & (gs["y2"] <= go["y2"]) & (gs["cy"] < go["cy"]) & (ox >= 0.5 * min_w)
            & mov_s & mov_o & (cos_vv >= 0.9))
    return out


def _runs(mask: np.ndarray, min_len: int) -> list[tuple[int, int]]:
    """Maximal runs ``[begin, end)`` of True of at least ``min_len``."""
    d = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    starts, ends = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    return [(s, e) for s, e in zip(starts.tolist(), ends.tolist()) if e - s >= min_len]


# ---- motion models --------------------------------------------------------------------------------


def _draw(rng: np.random.Generator, cdf: np.ndarray) -> int:
    """An index drawn with the probabilities whose cumulative sums are ``cdf``."""
    return min(int(np.searchsorted(cdf, rng.random(), side="right")), len(cdf) - 1)


def _fold(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Reflect positions into ``[lo, hi]`` (bouncing off the edges)."""
    if hi <= lo:
        return np.full_like(x, (lo + hi) / 2)
    period = 2 * (hi - lo)
    p = np.mod(x - lo, period)
    return lo + np.where(p <= hi - lo, p, period - p)


def _entity_track(rng: np.random.Generator, world: World, category: str, span: tuple[int, int],
                  others: list[dict[str, Any]]) -> dict[str, Any]:
    """Boxes ``(L, 4)`` float of one entity over ``span`` from its motion models."""
    cat = CATEGORIES[category]
    n = span[1] - span[0]
    base_h = cat.height * rng.uniform(0.8, 1.25)
    base_w = base_h * cat.aspect
    vel = np.zeros((n, 2))
    hop = np.zeros(n)
    hscale, wscale = np.ones(n), np.ones(n)
    direction = rng.uniform(0, 2 * np.pi)
    pos0 = np.array([rng.uniform(base_w / 2, WIDTH - base_w / 2), rng.uniform(base_h / 2, HEIGHT - base_h / 2)])
    t = 0
    while t < n:
        seg = min(n - t, int(rng.integers(15, 61)))
        mode = _MODES[_draw(rng, world.mode_cdf)] if cat.speed > 0 else "stop"
        speed = cat.speed * rng.uniform(0.7, 1.3)
        if mode == "run":
            speed = cat.speed * rng.uniform(2.2, 3.0)
        if mode == "jump" and not cat.jumps:
            mode = "walk"
        if mode == "turn":
            direction += rng.choice([-1, 1]) * rng.uniform(np.pi / 3, 2 * np.pi / 3)
        if mode in ("approach", "leave"):
            frame = span[0] + t
            targets = [o for o in others if o["span"][0] <= frame < o["span"][1]]
            if targets:
                o = targets[int(rng.integers(len(targets)))]
                here = pos0 + vel[:t].sum(axis=0) if t else pos0
                there = o["centre"][frame - o["span"][0]]
                direction = math.atan2(there[1] - here[1], there[0] - here[0]) + (np.pi if mode == "leave" else 0.0)
                if rng.random() < 0.3:
                    speed = cat.speed * rng.uniform(2.2, 3.0)
        if mode == "stop":
            posture = "stand"
            if cat.postures and rng.random() < 0.5:
                posture = str(rng.choice(cat.postures))
            hscale[t:t + seg], wscale[t:t + seg] = _POSTURE_SCALE[posture]
        else:
            vel[t:t + seg] = speed * np.array([math.cos(direction), math.sin(direction)])
            if mode == "jump":
                k = np.arange(seg) % 24
                hop[t:t + seg] = 0.5 * base_h * np.sin(np.pi * k / 24)
        t += seg
    h, w = base_h * hscale, base_w * wscale
    raw = pos0 + np.concatenate([np.zeros((1, 2)), np.cumsum(vel, axis=0)[:-1]])
    cx = _fold(raw[:, 0], base_w / 2, WIDTH - base_w / 2)
    cy = _fold(raw[:, 1], base_h / 2, HEIGHT - base_h / 2) - hop
    return {"span": span, "centre": np.stack([cx, cy], 1), "w": w, "h": h}


def _boxes(track: dict[str, Any]) -> np.ndarray:
    c, w, h = track["centre"], track["w"], track["h"]
    b = np.stack([c[:, 0] - w / 2, c[:, 1] - h / 2, c[:, 0] + w / 2, c[:, 1] + h / 2], 1)
    b = np.round(b)
    b[:, [0, 2]] = np.clip(b[:, [0, 2]], 0, WIDTH - 1)
    b[:, [1, 3]] = np.clip(b[:, [1, 3]], 0, HEIGHT - 1)
    b[:, 2] = np.maximum(b[:, 2], b[:, 0] + 1)
    b[:, 3] = np.maximum(b[:, 3], b[:, 1] + 1)
    return b.astype(np.int64)


# ---- videos ---------------------------------------------------------------------------------------


@dataclass
class SyntheticVideo:
    """One generated video: its annotation and (if ``features``) its feature arrays."""

    annotation: VideoAnnotation
    features: dict[str, np.ndarray] | None
    split: str


def _video_id(config: SynthConfig, index: int) -> str:
    return f"synth{config.seed:04d}_{index:05d}"


def generate_video(config: SynthConfig, index: int, world: World | None = None) -> SyntheticVideo:
    """Generate video ``index`` of the world (a pure function of ``config`` and ``index``)."""
    world = world or World(config)
    rng = np.random.default_rng([config.seed, index])
    frame_count = int(rng.integers(config.frames[0], config.frames[1] + 1))
    n_ent = int(rng.integers(config.entities[0], config.entities[1] + 1))
    cats = [world.category_order[_draw(rng, world.category_cdf)] for _ in range(n_ent)]
    tracks: list[dict[str, Any]] = []
    for i, cat in enumerate(cats):
        if rng.random() < 0.5 or frame_count <= 40:
            span = (0, frame_count)
        else:
            length = int(rng.integers(30, frame_count + 1))
            begin = int(rng.integers(0, frame_count - length + 1))
            span = (begin, begin + length)
        tracks.append(_entity_track(rng, world, cat, span, tracks))
    # riding: a person mounts a rideable entity over their shared frames
    for i, cat in enumerate(cats):
        mounts = [j for j, c in enumerate(cats) if CATEGORIES[c].rideable and j != i]
        if cat == "person" and mounts and rng.random() < config.ride_prob:
            j = mounts[int(rng.integers(len(mounts)))]
            s0, s1 = max(tracks[i]["span"][0], tracks[j]["span"][0]), min(tracks[i]["span"][1], tracks[j]["span"][1])
            if s1 - s0 >= config.min_run:
                ti, tj = tracks[i], tracks[j]
                a, b = slice(s0 - ti["span"][0], s1 - ti["span"][0]), slice(s0 - tj["span"][0], s1 - tj["span"][0])
                ti["h"], ti["w"] = ti["h"].copy(), ti["w"].copy()
                ti["h"][a], ti["w"][a] = ti["h"][a].max(), ti["w"][a].min()  # upright while riding
                ti["centre"][a, 0] = tj["centre"][b, 0]
                ti["centre"][a, 1] = tj["centre"][b, 1] - 0.5 * tj["h"][b] - 0.3 * ti["h"][a]
    boxes = [_boxes(t) for t in tracks]
    geoms = [entity_geometry(b) for b in boxes]
    actions = [entity_actions(g, c) for g, c in zip(geoms, cats)]

    relations = []
    for s in range(n_ent):
        for o in range(n_ent):
            if s == o:
                continue
            lo = max(tracks[s]["span"][0], tracks[o]["span"][0])
            hi = min(tracks[s]["span"][1], tracks[o]["span"][1])
            if hi - lo < config.min_run:
                continue
            cut = lambda g, t: {k: v[lo - t["span"][0]: hi - t["span"][0]] for k, v in g.items()}  # noqa: E731
            sl_s, sl_o = slice(lo - tracks[s]["span"][0], hi - tracks[s]["span"][0]), slice(lo - tracks[o]["span"][0], hi - tracks[o]["span"][0])
            preds = pair_predicates(cut(geoms[s], tracks[s]), cut(geoms[o], tracks[o]), cats[s], cats[o],
                                    actions[s][sl_s], actions[o][sl_o], world.predicates)
            for pred in sorted(preds):
                for b, e in _runs(preds[pred], config.min_run):
                    relations.append(RelationInstance(s, o, pred, lo + b, lo + e))
    relations.sort(key=lambda r: (r.begin_fid, r.subject_tid, r.object_tid, r.predicate))

    trajectories: list[list[FrameBox]] = [[] for _ in range(frame_count)]
    for tid, (t, b) in enumerate(zip(tracks, boxes)):
        for k, box in enumerate(b.tolist()):
            trajectories[t["span"][0] + k].append(FrameBox(tid, tuple(box), {}))
    vid = _video_id(config, index)
    split = "train" if index < round(config.train_fraction * config.num_videos) else "test"
    anno = VideoAnnotation(vid, frame_count, 30.0, WIDTH, HEIGHT, [ObjectInfo(i, c, {}) for i, c in enumerate(cats)],
                           trajectories, relations, {})
    feats = _features(rng, world, cats, tracks, boxes, frame_count) if config.features else None
    if feats is not None and world.text_vectors is not None:
        feats["tracklet_clip"] = _clip_stream(np.random.default_rng([config.seed, index, 1]), world, cats, feats)
    if feats is not None and config.grounding:
        stream = GroundingStream(world)
        feats.update(stream.arrays(np.random.default_rng([config.seed, index, stream.tag]), anno, cats, feats))
    return SyntheticVideo(anno, feats, split)


def generate(config: SynthConfig) -> Iterator[SyntheticVideo]:
    """All videos of the world, in index order."""
    world = World(config)
    for i in range(config.num_videos):
        yield generate_video(config, i, world)


# ---- detector-like outputs ---------------------------------------------------------------------------


def _features(rng: np.random.Generator, world: World, cats: list[str], tracks: list[dict[str, Any]],
              boxes: list[np.ndarray], frame_count: int) -> dict[str, np.ndarray]:
    cfg = world.config
    D, C = cfg.feature_dim, len(world.vocab.objects)
    cidx = world.vocab.object_index()
    # appearance of each entity per frame: prototype + instance + frame noise
    appear = []
    for cat, t in zip(cats, tracks):
        n = t["span"][1] - t["span"][0]
        inst = rng.normal(0, 0.5 / math.sqrt(D), D)
        appear.append((world.prototypes[cidx[cat]] + inst + rng.normal(0, 0.3 / math.sqrt(D), (n, D))).astype(np.float32))

    def scores_for(cat: str) -> tuple[np.ndarray, int]:
        logits = rng.normal(0, 1.0, C)
        label = cidx[cat] if rng.random() >= cfg.confusion else int(rng.integers(C))
        logits[label] += 4.0
        p = np.exp(logits - logits.max())
        return (p / p.sum()).astype(np.float32), label

    # noisy tracklets: jitter, truncation, fragmentation; plus false tracks
    tr_boxes, tr_start, tr_feats, tr_scores, tr_tid = [], [], [], [], []
    for tid, (cat, t, b) in enumerate(zip(cats, tracks, boxes)):
        n = len(b)
        a = int(rng.integers(0, max(1, n // 10)))
        z = n - int(rng.integers(0, max(1, n // 10)))
        pieces = [(a, z)]
        if z - a > 40 and rng.random() < 0.3:  # fragment with a small gap
            cut = int(rng.integers(a + 15, z - 15))
            pieces = [(a, cut), (min(z - 5, cut + int(rng.integers(1, 6))), z)]
        for p0, p1 in pieces:
            size = np.stack([b[p0:p1, 2] - b[p0:p1, 0], b[p0:p1, 3] - b[p0:p1, 1]] * 2, 1)
            jit = b[p0:p1] + rng.normal(0, 0.04, (p1 - p0, 4)) * size
            tr_boxes.append(jit.astype(np.float32))
            tr_start.append(t["span"][0] + p0)
            tr_feats.append(appear[tid][p0:p1])
            tr_scores.append(scores_for(cat)[0])
            tr_tid.append(tid)
    for _ in range(int(rng.poisson(cfg.false_tracks))):
        n = int(rng.integers(10, max(11, frame_count // 3)))
        s = int(rng.integers(0, frame_count - n + 1))
        wh = rng.uniform(15, 80, 2)
        xy = rng.uniform([0, 0], [WIDTH - wh[0], HEIGHT - wh[1]])
        drift = np.cumsum(rng.normal(0, 1.0, (n, 2)), 0)
        b = np.concatenate([xy + drift, xy + wh + drift], 1)
        tr_boxes.append(b.astype(np.float32))
        tr_start.append(s)
        tr_feats.append(rng.normal(0, 1 / math.sqrt(D), (n, D)).astype(np.float32))
        tr_scores.append(scores_for(world.vocab.objects[int(rng.integers(C))])[0] * 0.5)
        tr_tid.append(-1)
    N, T = len(tr_boxes), max(len(b) for b in tr_boxes)
    tb = np.zeros((N, T, 4), np.float32)
    tf = np.zeros((N, T, D), np.float32)
    for i, (b, f) in enumerate(zip(tr_boxes, tr_feats)):
        tb[i, : len(b)], tf[i, : len(f)] = b, f

    # raw per-frame detections: each visible entity 1-3 jittered boxes + clutter
    det_f, det_b, det_s, det_l = [], [], [], []
    for tid, (cat, t, b) in enumerate(zip(cats, tracks, boxes)):
        n = len(b)
        for copy in range(3):
            keep = rng.random(n) < (0.95 if copy == 0 else 0.5)
            size = np.stack([b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]] * 2, 1)
            jb = b + rng.normal(0, 0.05 * (copy + 1), (n, 4)) * size
            sc = np.clip(rng.normal(0.85 - 0.2 * copy, 0.08, n), 0.05, 1.0)
            label = np.where(rng.random(n) < cfg.confusion, rng.integers(0, C, n), cidx[cat])
            det_f.append((t["span"][0] + np.arange(n))[keep])
            det_b.append(jb[keep])
            det_s.append(sc[keep])
            det_l.append(label[keep])
    k = int(rng.poisson(0.5 * frame_count))
    wh = rng.uniform(10, 60, (k, 2))
    xy = rng.uniform(0, 1, (k, 2)) * (np.array([WIDTH, HEIGHT]) - wh)
    det_f.append(rng.integers(0, frame_count, k))
    det_b.append(np.concatenate([xy, xy + wh], 1))
    det_s.append(rng.uniform(0.05, 0.5, k))
    det_l.append(rng.integers(0, C, k))
    det_frame = np.concatenate(det_f).astype(np.int64)
    order = np.argsort(det_frame, kind="stable")

    # region proposals on sampled frames (vRGV style): entity boxes (jittered) + random boxes
    S = min(cfg.sampled_frames, frame_count)
    frames = np.unique(np.round(np.linspace(0, frame_count - 1, S)).astype(np.int64))
    M = cfg.proposals
    wh = rng.uniform(20, 180, (len(frames), M, 2))
    xy = rng.uniform(0, 1, (len(frames), M, 2)) * (np.array([WIDTH, HEIGHT]) - wh)
    pb = np.concatenate([xy, xy + wh], -1).astype(np.float32)  # random boxes, then entities in the first slots
    pf = rng.normal(0, 1 / math.sqrt(D), (len(frames), M, D)).astype(np.float32)
    ptid = np.full((len(frames), M), -1, np.int64)
    present = np.stack([(frames >= t["span"][0]) & (frames < t["span"][1]) for t in tracks], 1)
    slot = np.cumsum(present, 1) - 1
    for tid, (t, b) in enumerate(zip(tracks, boxes)):
        rows = np.flatnonzero(present[:, tid] & (slot[:, tid] < M))
        k = frames[rows] - t["span"][0]
        size = np.stack([b[k, 2] - b[k, 0], b[k, 3] - b[k, 1]] * 2, 1)
        pb[rows, slot[rows, tid]] = b[k] + rng.normal(0, 0.03, (len(rows), 4)) * size
        pf[rows, slot[rows, tid]] = appear[tid][k]
        ptid[rows, slot[rows, tid]] = tid
    return {
        "tracklet_boxes": tb, "tracklet_start": np.array(tr_start, np.int64),
        "tracklet_length": np.array([len(b) for b in tr_boxes], np.int64),
        "tracklet_scores": np.stack(tr_scores), "tracklet_features": tf, "tracklet_tid": np.array(tr_tid, np.int64),
        "det_frame": det_frame[order], "det_boxes": np.concatenate(det_b).astype(np.float32)[order],
        "det_scores": np.concatenate(det_s).astype(np.float32)[order],
        "det_labels": np.concatenate(det_l).astype(np.int64)[order],
        "proposal_frames": frames, "proposal_boxes": pb, "proposal_features": pf, "proposal_tid": ptid,
    }


def _clip_stream(rng: np.random.Generator, world: World, cats: list[str], arrays: dict[str, np.ndarray]) -> np.ndarray:
    """``tracklet_clip (N, T, clip_dim)`` float32 of a video's tracklets (module docstring): the true
    category's text vector of the entity each tracklet follows plus per-frame noise, random unit
    vectors for false tracks, zeros past each tracklet's length."""
    Dc = world.config.clip_dim
    tid, length = arrays["tracklet_tid"], arrays["tracklet_length"]
    N, T = arrays["tracklet_boxes"].shape[:2]
    cidx = world.vocab.object_index()
    base = rng.normal(size=(N, Dc))
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    real = tid >= 0
    base[real] = world.text_vectors[[cidx[cats[t]] for t in tid[real]]]
    out = base[:, None, :] + rng.normal(0, 0.1 / math.sqrt(Dc), (N, T, Dc))
    out[np.arange(T)[None, :] >= length[:, None]] = 0.0
    return out.astype(np.float32)


def write_world(out_dir: str | os.PathLike, config: SynthConfig | None = None) -> dict[str, Any]:
    """Generate a world and write it under ``out_dir``:
    ``annotations/{train,test}/<vid>.json`` (VidVRD layout), ``features/<vid>.npz`` (if
    ``config.features``) and ``world.json``: a dataset folder (:mod:`pyvrel.data.folder`) that
    ``pyvrel train/detect --data`` read like real data. Returns the ``world.json`` content."""
    config = config or SynthConfig()
    out = Path(out_dir)
    world = World(config)
    store = FeatureStore(out / "features")
    splits: dict[str, list[str]] = {"train": [], "test": []}
    counts: dict[str, int] = {}
    for i in range(config.num_videos):
        v = generate_video(config, i, world)
        write_annotations([v.annotation], out / "annotations" / v.split)
        if v.features is not None:
            store.write(v.annotation.video_id, v.features)
        splits[v.split].append(v.annotation.video_id)
        for r in v.annotation.relations:
            counts[r.predicate] = counts.get(r.predicate, 0) + 1
    recorded = {k: v for k, v in asdict(config).items() if k not in ("clip_dim", "grounding") or v}  # worlds without it as before
    meta = {"config": recorded, "width": WIDTH, "height": HEIGHT, "objects": list(world.vocab.objects),
            "predicates": list(world.vocab.predicates), "split": world.split, "videos": splits,
            "predicate_counts": dict(sorted(counts.items(), key=lambda kv: -kv[1]))}
    _json.dump(meta, out / "world.json")
    return meta
