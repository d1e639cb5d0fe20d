"""A world's parameters (:class:`SynthConfig`), its seed-level constants (:class:`World`) and its
videos (:func:`generate_video`, :func:`generate`): the annotation from :mod:`.rules`, the
detector-like arrays from :mod:`.detector`, then each extra stream of :mod:`.streams` that the
config switches on.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from pyvrel.data.annotations import FrameBox, ObjectInfo, RelationInstance, VideoAnnotation
from pyvrel.data.synthetic.detector import detector_outputs
from pyvrel.data.synthetic.longtail import keep_probabilities, thin_relations
from pyvrel.data.synthetic.rules import (_MODES, _POPULARITY, CATEGORIES, HEIGHT, WIDTH, _boxes, _draw,
                                         _entity_track, _runs, entity_actions, entity_geometry, pair_predicates)
from pyvrel.data.synthetic.streams import STREAMS, Stream
from pyvrel.data.vocab import Vocabulary, load_vocabulary

__all__ = ["SynthConfig", "SyntheticVideo", "World", "generate", "generate_video", "video_split"]


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
            sampled for proposals (vRGV: 120; with ``grounding``, shorter videos repeat frames).
        confusion: probability that a detected tracklet's top category is a wrong one.
        false_tracks: mean number of false tracklets per video.
        clip_dim: width of the extra per-entity stream ``tracklet_clip``
            (:mod:`pyvrel.data.synthetic.streams.clip`); 0 = not written.
        grounding: replace the plain proposals by vRGV's grounding stream
            (:mod:`pyvrel.data.synthetic.streams.grounding`: distractors, jitter, shuffled slots).
        predicate_tail: long-tail exponent of the training split's predicate labels
            (:mod:`pyvrel.data.synthetic.longtail`); 0 = every relation kept.
        open_vocab: width of UASAN's concept features (``tracklet_concept``, ``union_grid``) and a
            base/novel split whose names carry meaning
            (:mod:`pyvrel.data.synthetic.streams.openvocab`); 0 = not written.
        hvrnet: add HVR-Net's stream (:mod:`pyvrel.data.synthetic.streams.hvrnet`): RoI proposals
            with confusable categories, and ``det_features`` for ``pyvrel track``.
        hvrnet_cue: how a confusable entity shows its cue in that stream: ``"frames"`` (in 30 % of
            its frames, drawn per frame) or ``"bursts"`` (in one run of 15 % of the video's frames,
            and a faint category offset in every frame: most windows of a video lack the cue).
        pair_relations: keep at most this many relation instances per ordered subject–object pair
            (the longest, ties by begin frame then predicate) in every split, so a pair's labels are
            few and temporally localised (vRGV grounds a pair once); 0 = every instance kept. The
            videos themselves do not change.
        twins: vRGV's grounding world of same-category entities: every drawn entity gets this many
            *twins*, entities of its category with motions of their own over its span that take part in
            no relation (the relations are those of the world without twins), and, in the grounding
            stream, each relation instance leaves a trace of its predicate on the features of its
            subject and object while it holds (:mod:`pyvrel.data.synthetic.streams.grounding`), so
            that only the predicate tells the related entities and frames apart; 0 = none.
        twins_trace: the share (in energy) of a twins world's predicate trace common to every
            predicate of its role (an engaged look), the rest its own; 0 = each predicate's own look only.
        grounding_clutter: in the grounding stream, the shifted *distractors* per visible entity and the
            other-category *confusers* per frame (2 each by default); 0 = the proposals are the entities'
            jittered boxes and background boxes only, so that a grounder's spatial errors are the choice
            between entities (e.g. a twin), not between an entity and its partial boxes.
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
    predicate_tail: float = 0.0
    open_vocab: int = 0
    hvrnet: bool = False
    hvrnet_cue: str = "frames"
    pair_relations: int = 0
    twins: int = 0
    twins_trace: float = 0.5
    grounding_clutter: int = 2

    def __post_init__(self) -> None:
        from pyvrel.engine.config import ConfigError  # only here: the world needs no training code

        for key in ("frames", "entities"):
            low, high = getattr(self, key)
            if not 1 <= low <= high:
                raise ConfigError(key, f"expected [low, high] with 1 <= low <= high, got [{low}, {high}]")
        if self.hvrnet_cue not in ("frames", "bursts"):
            raise ConfigError("hvrnet_cue", f"expected 'frames' or 'bursts', got {self.hvrnet_cue!r}")
        if self.num_videos < 1:
            raise ConfigError("num_videos", f"must be >= 1, got {self.num_videos}")
        for key, low, high in _RANGES:
            value = getattr(self, key)
            integer = isinstance(low, int)
            kind = int if integer else (int, float)
            if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value):
                raise ConfigError(key, f"expected a finite {'integer' if integer else 'number'}, got {value!r}")
            if not low <= value <= high:
                raise ConfigError(key, f"must be in [{low}, {high}], got {value}")


#: (field, low, high) of the numeric SynthConfig fields; an int bound means the field is an integer.
_RANGES = (("seed", 0, 2**63 - 1), ("train_fraction", 0.0, 1.0), ("min_run", 1, 10**6), ("tail", 0.0, 100.0),
           ("ride_prob", 0.0, 1.0), ("feature_dim", 1, 1 << 16), ("proposals", 1, 1 << 16),
           ("sampled_frames", 1, 1 << 16), ("confusion", 0.0, 1.0), ("false_tracks", 0.0, 1000.0),
           ("clip_dim", 0, 1 << 16), ("predicate_tail", 0.0, 100.0), ("open_vocab", 0, 1 << 16),
           ("pair_relations", 0, 10**6), ("twins", 0, 16), ("twins_trace", 0.0, 1.0),
           ("grounding_clutter", 0, 64))


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
        #: the extra streams the config switches on (:mod:`pyvrel.data.synthetic.streams`), in order
        self.streams: list[Stream] = [stream(self) for stream in STREAMS if getattr(config, stream.option)]
        #: a stream may bring its own base/novel split (the open-vocabulary stream's names carry meaning)
        self.split = next((s.split for s in self.streams if hasattr(s, "split")), self.split)
        #: keep probability of each predicate's training labels (:mod:`pyvrel.data.synthetic.longtail`)
        self.predicate_keep = keep_probabilities(self) if config.predicate_tail else None


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
    for i in range(n_ent * bool(config.twins)):  # after the riding: the drawn entities are unchanged
        for _ in range(config.twins):
            cats.append(cats[i])
            tracks.append(_entity_track(rng, world, cats[i], tracks[i]["span"], tracks))
    boxes = [_boxes(t) for t in tracks]
    geoms = [entity_geometry(b) for b in boxes[:n_ent]]
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
    if config.pair_relations:
        per_pair: dict[tuple[int, int], list[RelationInstance]] = {}
        for r in sorted(relations, key=lambda r: (r.begin_fid - r.end_fid, r.begin_fid, r.predicate)):
            per_pair.setdefault((r.subject_tid, r.object_tid), []).append(r)
        relations = [r for kept in per_pair.values() for r in kept[: config.pair_relations]]
    relations.sort(key=lambda r: (r.begin_fid, r.subject_tid, r.object_tid, r.predicate))
    if world.predicate_keep is not None and video_split(config, index) == "train":
        relations = thin_relations(config, index, world.predicate_keep, relations)

    trajectories: list[list[FrameBox]] = [[] for _ in range(frame_count)]
    for tid, (t, b) in enumerate(zip(tracks, boxes)):
        for k, box in enumerate(b.tolist()):
            trajectories[t["span"][0] + k].append(FrameBox(tid, tuple(box), {}))
    vid = _video_id(config, index)
    split = video_split(config, index)
    anno = VideoAnnotation(vid, frame_count, 30.0, WIDTH, HEIGHT, [ObjectInfo(i, c, {}) for i, c in enumerate(cats)],
                           trajectories, relations, {})
    feats = detector_outputs(rng, world, cats, tracks, boxes, frame_count) if config.features else None
    for stream in world.streams if feats is not None else ():
        feats.update(stream.arrays(np.random.default_rng([config.seed, index, stream.tag]), anno, cats, feats))
    return SyntheticVideo(anno, feats, split)


def video_split(config: SynthConfig, index: int) -> str:
    """``"train"`` for the first ``train_fraction`` of the videos, else ``"test"``."""
    return "train" if index < round(config.train_fraction * config.num_videos) else "test"


def generate(config: SynthConfig, split: str | None = None) -> Iterator[SyntheticVideo]:
    """All videos of the world (only those of ``split`` when given), in index order."""
    world = World(config)
    for i in range(config.num_videos):
        if split is None or video_split(config, i) == split:
            yield generate_video(config, i, world)

