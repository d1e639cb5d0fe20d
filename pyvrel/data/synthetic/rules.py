"""The world's rules: categories, motion models, and the geometry that decides every relation.

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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from pyvrel.data.synthetic.world import World

__all__ = ["CATEGORIES", "HEIGHT", "WIDTH", "Category", "entity_actions", "entity_geometry", "pair_predicates"]

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


def _entity_track(rng: np.random.Generator, world: "World", category: str, span: tuple[int, int],
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

