"""Relation records (the view the evaluator consumes) and the official prediction JSON.

A prediction file is ``{"version": "VERSION 1.0", "results": {vid: [relation, ...]},
"external_data": {...}}`` (challenge submissions add ``external_data``); a bare ``{vid: [...]}``
mapping and ``.json.xz`` files are read too. One relation is::

    {"triplet": [subject_category, predicate, object_category], "score": 0.9,
     "duration": [begin, end],            # frames, half-open [begin, end)
     "sub_traj": [[x1, y1, x2, y2], ...], # one box per frame of the duration, inclusive pixels
     "obj_traj": [[x1, y1, x2, y2], ...]}

The ground truth the evaluator consumes has the same shape without ``score`` and with
``subject_tid``/``object_tid`` (VidVRD-helper's ``get_relation_insts``); see
:func:`pyvrel.data.load_groundtruth`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pyvrel._gc import paused_gc
from pyvrel.data import _json
from pyvrel.data.errors import FormatError

if TYPE_CHECKING:  # torch is imported only where tubes are built
    import torch

    from pyvrel.ops.types import Tubes

__all__ = [
    "Relation",
    "PredictionFile",
    "parse_predictions",
    "read_predictions",
    "write_predictions",
    "relations_to_tubes",
    "Triplet",
]

Triplet = tuple[str, str, str]
_KNOWN = ("triplet", "score", "duration", "sub_traj", "obj_traj", "subject_tid", "object_tid")


@dataclass(eq=False)
class Relation:
    """One video-level relation instance: ground truth (``score is None``) or a prediction.

    Attributes:
        triplet: ``(subject_category, predicate, object_category)``; compared by exact string
            equality, as the official evaluation does.
        duration: ``(begin, end)`` frames, half-open.
        sub_traj, obj_traj (ndarray[L, 4]): ``(x1, y1, x2, y2)`` per frame; row ``i`` is frame
            ``begin + i``. ``L == end - begin`` normally; the official evaluation accepts
            ``L > end - begin`` (the extra boxes add to the trajectory's volume, see
            :func:`pyvrel.eval.viou_official`), which :attr:`overlong` flags. The dtype is what the
            JSON held (int64 when every coordinate was an integer), so writing is lossless.
        score: prediction confidence; ``None`` for ground truth.
        subject_tid, object_tid: ground-truth object ids (``None`` for predictions).
        extra: any further keys of the JSON object (e.g. VidVRD-II's ``sub_duration``), kept for
            lossless round-trips and ignored by the evaluation.
    """

    triplet: Triplet
    duration: tuple[int, int]
    sub_traj: np.ndarray
    obj_traj: np.ndarray
    score: float | None = None
    subject_tid: int | None = None
    object_tid: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def predicate(self) -> str:
        return self.triplet[1]

    @property
    def overlong(self) -> bool:
        """True when a trajectory holds more boxes than the duration has frames."""
        n = self.duration[1] - self.duration[0]
        return len(self.sub_traj) > n or len(self.obj_traj) > n

    @classmethod
    def from_json(cls, obj: Any, *, file: str | None = None, video: str | None = None, index: int | None = None,
                  prediction: bool = True) -> "Relation":
        """Validate and convert one JSON relation; errors name the file, video and field."""
        fast = _well_formed(obj, prediction)
        if fast is not None:
            return fast
        where = f"[{index}]" if index is not None else ""

        def fail(fld: str, msg: str) -> FormatError:
            return FormatError(msg, file=file, video=video, field=f"relation{where}.{fld}" if fld else f"relation{where}")

        if not isinstance(obj, Mapping):
            raise fail("", f"must be a JSON object, got {type(obj).__name__}")
        required = ("triplet", "duration", "sub_traj", "obj_traj") + (("score",) if prediction else ())
        for key in required:
            if key not in obj:
                raise fail(key, "missing")
        triplet = obj["triplet"]
        if not isinstance(triplet, (list, tuple)) or len(triplet) != 3 or not all(isinstance(s, str) for s in triplet):
            raise fail("triplet", f"must be [subject, predicate, object] strings, got {triplet!r}")
        duration = obj["duration"]
        if (not isinstance(duration, (list, tuple)) or len(duration) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in duration)):
            raise fail("duration", f"must be [begin, end] integers, got {duration!r}")
        begin, end = duration
        if not 0 <= begin < end:
            raise fail("duration", f"must satisfy 0 <= begin < end, got [{begin}, {end}]")
        trajs = []
        for key in ("sub_traj", "obj_traj"):
            try:
                traj = np.asarray(obj[key]) if len(obj[key]) else np.zeros((0, 4))
            except (TypeError, ValueError):
                raise fail(key, "must be a list of [x1, y1, x2, y2] boxes") from None
            if traj.ndim != 2 or traj.shape[1] != 4 or traj.dtype.kind not in "iuf":
                raise fail(key, f"must be a list of [x1, y1, x2, y2] boxes, got an array of shape {traj.shape}")
            if len(traj) < end - begin:
                raise fail(key, f"has {len(traj)} boxes for the {end - begin} frames of duration [{begin}, {end}) "
                                "(the official evaluation would raise IndexError)")
            trajs.append(traj)
        score = None
        if prediction:
            score = obj["score"]
            if isinstance(score, bool) or not isinstance(score, (int, float)) or math.isnan(score):
                raise fail("score", f"must be a number (not NaN), got {score!r}")
        tids = []
        for key in ("subject_tid", "object_tid"):
            tid = obj.get(key)
            if tid is not None and (not isinstance(tid, int) or isinstance(tid, bool)):
                raise fail(key, f"must be an integer, got {tid!r}")
            tids.append(tid)
        extra = {k: v for k, v in obj.items() if k not in _KNOWN}
        return cls(tuple(triplet), (begin, end), trajs[0], trajs[1], score, tids[0], tids[1], extra)

    def to_json(self) -> dict[str, Any]:
        """The official JSON object (``score`` for predictions, tids for ground truth)."""
        out: dict[str, Any] = {"triplet": list(self.triplet)}
        if self.score is not None:
            out["score"] = self.score
        if self.subject_tid is not None:
            out["subject_tid"] = self.subject_tid
        if self.object_tid is not None:
            out["object_tid"] = self.object_tid
        out["duration"] = list(self.duration)
        out["sub_traj"] = self.sub_traj.tolist()
        out["obj_traj"] = self.obj_traj.tolist()
        out.update(self.extra)
        return out


_KINDS = frozenset("iuf")
_BASE_KEYS = {True: 5, False: 4}  # keys of a relation without extras: with / without "score"


def _well_formed(obj: Any, prediction: bool) -> Relation | None:
    """The common case of :meth:`Relation.from_json`, checked with exact types: a relation whose
    trajectories are already ``(L, 4)`` numeric arrays (:func:`read_predictions` makes them) and
    every field valid. Returns ``None`` for anything else, which the full validation then handles."""
    if type(obj) is not dict:
        return None
    triplet, duration = obj.get("triplet"), obj.get("duration")
    sub, ob = obj.get("sub_traj"), obj.get("obj_traj")
    if (type(triplet) is not list or len(triplet) != 3 or type(triplet[0]) is not str or type(triplet[1]) is not str
            or type(triplet[2]) is not str):
        return None
    if type(duration) is not list or len(duration) != 2 or type(duration[0]) is not int or type(duration[1]) is not int:
        return None
    begin, end = duration
    if not 0 <= begin < end:
        return None
    for t in (sub, ob):
        if type(t) is not np.ndarray or t.ndim != 2 or t.shape[1] != 4 or t.dtype.kind not in _KINDS or len(t) < end - begin:
            return None
    score = None
    if prediction:
        score = obj.get("score")
        if (type(score) is not float and type(score) is not int) or score != score:
            return None
    s_tid, o_tid = obj.get("subject_tid"), obj.get("object_tid")
    if (s_tid is not None and type(s_tid) is not int) or (o_tid is not None and type(o_tid) is not int):
        return None
    n_known = _BASE_KEYS[prediction] + (s_tid is not None) + (o_tid is not None) + (not prediction and "score" in obj)
    extra = {k: v for k, v in obj.items() if k not in _KNOWN} if len(obj) != n_known else {}
    return Relation((triplet[0], triplet[1], triplet[2]), (begin, end), sub, ob, score, s_tid, o_tid, extra)


@dataclass(eq=False)
class PredictionFile:
    """A parsed prediction file.

    Attributes:
        results: video id -> predicted relations, in file order.
        version: the file's ``"version"`` (``None`` for a bare mapping). VidVRD-II's
            ``"VERSION 2.1"`` means coordinates normalised to [0, 1].
        extra: other top-level keys (``external_data``), kept for round-trips.
        bare: the file was a bare ``{vid: [...]}`` mapping.
    """

    results: dict[str, list[Relation]]
    version: str | None = "VERSION 1.0"
    extra: dict[str, Any] = field(default_factory=dict)
    bare: bool = False

    def to_json(self) -> dict[str, Any]:
        results = {vid: [r.to_json() for r in rels] for vid, rels in self.results.items()}
        if self.bare:
            return results
        out: dict[str, Any] = {}
        if self.version is not None:
            out["version"] = self.version
        out["results"] = results
        out.update(self.extra)
        return out


def results_of(obj: Any, file: str | None) -> tuple[Mapping[str, Any], str | None, dict[str, Any], bool]:
    """``(results, version, extra, bare)`` of a parsed prediction JSON, wrapped or bare."""
    if not isinstance(obj, Mapping):
        raise FormatError(f"a prediction file must hold a JSON object, got {type(obj).__name__}", file=file)
    bare = "results" not in obj
    results = obj if bare else obj["results"]
    if not isinstance(results, Mapping):
        raise FormatError(f"must map video ids to lists of relations, got {type(results).__name__}", file=file,
                          field="results")
    if bare:
        return results, None, {}, True
    version = obj.get("version")
    if version is not None and not isinstance(version, str):
        raise FormatError(f"must be a string like 'VERSION 1.0', got {version!r}", file=file, field="version")
    return results, version, {k: v for k, v in obj.items() if k not in ("version", "results")}, False


def video_relations(results: Mapping[str, Any], file: str | None) -> Iterator[tuple[str, list[Any]]]:
    """``(video id, list of JSON relations)`` of a results mapping; a value that is not a list is an error."""
    for vid, rels in results.items():
        if not isinstance(rels, list):
            raise FormatError(f"must be a list of relations, got {type(rels).__name__}", file=file, video=vid)
        yield vid, rels


def parse_predictions(obj: Any, *, file: str | None = None) -> PredictionFile:
    """Convert a parsed prediction JSON (wrapped or bare) into a :class:`PredictionFile`."""
    results, version, extra, bare = results_of(obj, file)
    parsed = {vid: [Relation.from_json(r, file=file, video=vid, index=i) for i, r in enumerate(rels)]
              for vid, rels in video_relations(results, file)}
    return PredictionFile(parsed, version, extra, bare)


def read_predictions(path: _json.PathLike) -> PredictionFile:
    """Read an official prediction file (``.json`` or ``.json.xz``, wrapped or bare).

    Trajectories are parsed straight into numpy arrays (:func:`pyvrel.data._json.load_with_trajectories`).
    """
    with paused_gc():
        return parse_predictions(_json.load_with_trajectories(path), file=str(path))


def write_predictions(
    predictions: PredictionFile | Mapping[str, Sequence[Relation]],
    path: _json.PathLike,
    *,
    version: str = "VERSION 1.0",
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Write predictions in the official format (xz-compressed when ``path`` ends in ``.xz``).

    A plain ``{vid: [Relation]}`` mapping is wrapped as ``{"version", "results", **extra}``.
    """
    if not isinstance(predictions, PredictionFile):
        predictions = PredictionFile({k: list(v) for k, v in predictions.items()}, version, dict(extra or {}))
    _json.dump(predictions.to_json(), Path(path))


def relations_to_tubes(relations: Iterable[Relation], which: str = "sub", *,
                       dtype: torch.dtype | None = None) -> Tubes:
    """Pack the subject (``which="sub"``) or object trajectories of relations into :class:`Tubes`.

    Tube ``i`` starts at ``duration[0]`` and has ``duration[1] - duration[0]`` frames; boxes past
    the duration (see :attr:`Relation.overlong`) are not included. ``dtype`` of the boxes: float64
    when ``None``.
    """
    import torch

    from pyvrel.ops.types import Tubes

    if which not in ("sub", "obj"):
        raise ValueError(f"relations_to_tubes: which must be 'sub' or 'obj', got {which!r}")
    rels = list(relations)
    lengths = [r.duration[1] - r.duration[0] for r in rels]
    out = np.zeros((len(rels), max(lengths, default=0), 4), dtype=np.float64)
    for i, (r, n) in enumerate(zip(rels, lengths)):
        out[i, :n] = (r.sub_traj if which == "sub" else r.obj_traj)[:n]
    start = torch.tensor([r.duration[0] for r in rels], dtype=torch.int64)
    return Tubes(torch.from_numpy(out).to(dtype or torch.float64), start, torch.tensor(lengths, dtype=torch.int64))
