"""Columnar relations (:class:`RelationTable`): the evaluator's input without one Python object per
relation, read straight from a prediction file by :func:`read_prediction_table`.

A table holds the relations of many videos in flat arrays: video ``v`` owns rows
``offsets[v]:offsets[v + 1]`` (in file order), row ``i`` has triplet ``triplets[triplet_id[i]]``
(interned, so equal ids mean equal strings), ``duration[i]``, ``score[i]`` and its subject and
object boxes in one float64 array. It keeps what the evaluation reads, nothing else (no track ids,
extra keys or integer dtypes): :class:`~pyvrel.data.Relation` records stay the lossless form.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pyvrel.data import _json
from pyvrel.data.relations import Relation, Triplet, results_of, video_relations

__all__ = ["RelationTable", "read_prediction_table"]


@dataclass(eq=False)
class RelationTable:
    """Relations of many videos, column by column (``N`` relations, ``B`` boxes).

    Attributes:
        videos: the ``V`` video ids, in input order (each once).
        offsets (ndarray[V + 1] int64): video ``v`` owns rows ``offsets[v]:offsets[v + 1]``.
        triplets: the distinct triplets; ``triplet_id`` indexes this list.
        triplet_id (ndarray[N] int64): each relation's triplet.
        duration (ndarray[N, 2] int64): ``(begin, end)`` frames, half-open.
        score (ndarray[N] float64 or None): confidences; ``None`` for ground truth.
        boxes (ndarray[B, 4] float64): ``(x1, y1, x2, y2)`` of every trajectory.
        sub_rows, obj_rows (ndarray[N, 2] int64): ``(first row in boxes, number of boxes)`` of the
            subject / object trajectory; box ``k`` is frame ``begin + k``. There are at least
            ``end - begin`` boxes; more (allowed by the official evaluation, see
            :attr:`pyvrel.data.Relation.overlong`) add to the trajectory's volume.
        version: the prediction file's ``"version"`` (``None`` for a bare mapping or a table not
            read from a file).
    """

    videos: list[str]
    offsets: np.ndarray
    triplets: list[Triplet]
    triplet_id: np.ndarray
    duration: np.ndarray
    score: np.ndarray | None
    boxes: np.ndarray
    sub_rows: np.ndarray
    obj_rows: np.ndarray
    version: str | None = None

    def __len__(self) -> int:
        return len(self.triplet_id)

    def counts(self) -> np.ndarray:
        """Relations per video, ``(V,)`` int64."""
        return np.diff(self.offsets)

    @classmethod
    def from_relations(cls, relations: Mapping[str, Sequence[Relation]], *, scores: bool = True) -> "RelationTable":
        """Columns of a ``video id -> relations`` mapping (``scores=False`` for ground truth).

        Raises:
            ValueError: a prediction without a score, or a trajectory with fewer boxes than its
                duration has frames (naming the video and the relation's index).
        """
        videos = list(relations)
        per_video = [list(relations[v]) for v in videos]
        rels = [r for rs in per_video for r in rs]
        sizes = np.array([len(rs) for rs in per_video], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

        def where(i: int) -> str:  # video and index of flat relation i, for errors
            v = int(np.searchsorted(offsets, i, "right")) - 1
            return f"video {videos[v]!r}: relation [{i - int(offsets[v])}]"

        score = None
        if scores:
            values = [r.score for r in rels]
            if None in values:
                raise ValueError(f"{where(values.index(None))} is a prediction without a score")
            score = np.array(values, dtype=np.float64)
        ids: dict[Triplet, int] = {}
        triplet_id = np.array([ids.setdefault(tuple(r.triplet), len(ids)) for r in rels], dtype=np.int64)
        duration = np.array([r.duration for r in rels], dtype=np.int64).reshape(-1, 2)
        trajs = [a for r in rels for a in (r.sub_traj, r.obj_traj)]
        count = np.array([len(a) for a in trajs], dtype=np.int64).reshape(-1, 2)
        short = np.flatnonzero(count.min(axis=1, initial=np.iinfo(np.int64).max) < duration[:, 1] - duration[:, 0])
        if len(short):
            raise ValueError(f"{where(int(short[0]))} has fewer boxes than its duration "
                             f"{tuple(duration[short[0]].tolist())} has frames")
        first = (np.cumsum(count) - count.ravel()).reshape(-1, 2)
        boxes = np.concatenate(trajs).astype(np.float64, copy=False) if trajs else np.zeros((0, 4))
        return cls(videos, offsets, list(ids), triplet_id, duration, score, boxes,
                   np.stack([first[:, 0], count[:, 0]], axis=1), np.stack([first[:, 1], count[:, 1]], axis=1))

    def relations(self) -> dict[str, list[Relation]]:
        """The table as ``video id -> [Relation]`` (float64 trajectories viewing :attr:`boxes`)."""
        out: dict[str, list[Relation]] = {}
        score = self.score.tolist() if self.score is not None else [None] * len(self)
        tid, dur = self.triplet_id.tolist(), self.duration.tolist()
        sub, obj = self.sub_rows.tolist(), self.obj_rows.tolist()
        for v, vid in enumerate(self.videos):
            out[vid] = [Relation(self.triplets[tid[i]], (dur[i][0], dur[i][1]),
                                 self.boxes[sub[i][0]: sub[i][0] + sub[i][1]],
                                 self.boxes[obj[i][0]: obj[i][0] + obj[i][1]], score[i])
                        for i in range(int(self.offsets[v]), int(self.offsets[v + 1]))]
        return out

    def where_triplet(self, keep: Callable[[Triplet], bool], *, drop_empty_videos: bool = False) -> "RelationTable":
        """The relations whose triplet satisfies ``keep`` (called once per distinct triplet);
        videos left without relations are dropped if ``drop_empty_videos``. Shares :attr:`boxes`."""
        rows = np.flatnonzero(np.array([bool(keep(t)) for t in self.triplets], dtype=bool)[self.triplet_id]
                              if len(self.triplets) else np.zeros(len(self), dtype=bool))
        video = np.repeat(np.arange(len(self.videos)), self.counts())[rows]
        n = np.bincount(video, minlength=len(self.videos))
        kept = np.flatnonzero(n > 0) if drop_empty_videos else np.arange(len(self.videos))
        return RelationTable([self.videos[v] for v in kept.tolist()],
                             np.concatenate([[0], np.cumsum(n[kept])]).astype(np.int64), self.triplets,
                             self.triplet_id[rows], self.duration[rows],
                             None if self.score is None else self.score[rows], self.boxes, self.sub_rows[rows],
                             self.obj_rows[rows], self.version)


class _Builder:
    """Appends predicted relations column by column. A trajectory is given by an id: ``k >= 0`` is
    trajectory ``k`` of the C++ JSON pass (:class:`~pyvrel.data._json.CutTrajectories`), ``k < 0``
    an array of its own (added with :meth:`add_relation`)."""

    def __init__(self, cut: _json.CutTrajectories | None) -> None:
        self.cut = cut
        self.ids: dict[Triplet, int] = {}
        self.tid: list[int] = []
        self.begin: list[int] = []
        self.end: list[int] = []
        self.score: list[float] = []
        self.sub: list[int] = []
        self.obj: list[int] = []
        self.own: list[np.ndarray] = []
        self.videos: list[str] = []
        self.offsets: list[int] = [0]

    def add(self, triplet: Triplet, begin: int, end: int, score: float, sub: int, obj: int) -> None:
        t = self.ids.get(triplet)
        if t is None:
            t = self.ids[triplet] = len(self.ids)
        self.tid.append(t)
        self.begin.append(begin)
        self.end.append(end)
        self.score.append(score)
        self.sub.append(sub)
        self.obj.append(obj)

    def add_relation(self, r: Relation) -> None:
        self.own += [r.sub_traj, r.obj_traj]
        n = len(self.own)
        self.add(tuple(r.triplet), r.duration[0], r.duration[1], r.score, -n + 1, -n)

    def end_video(self, vid: str) -> None:
        self.videos.append(vid)
        self.offsets.append(len(self.tid))

    def finish(self, version: str | None) -> RelationTable:
        cut = self.cut
        own_len = np.array([len(a) for a in self.own], dtype=np.int64)
        n_cut = len(cut.boxes) if cut is not None else 0
        first = np.concatenate([cut.first if cut is not None else np.zeros(0, np.int64),
                                n_cut + np.cumsum(own_len) - own_len])
        count = np.concatenate([cut.count if cut is not None else np.zeros(0, np.int64), own_len])
        parts = ([cut.boxes] if cut is not None else []) + [np.asarray(a, dtype=np.float64).reshape(-1, 4)
                                                           for a in self.own]
        boxes = (parts[0] if len(parts) == 1 else np.concatenate(parts)) if parts else np.zeros((0, 4))
        n_traj = len(cut.count) if cut is not None else 0
        rows = []
        for ids in (self.sub, self.obj):
            k = np.array(ids, dtype=np.int64)
            k = np.where(k < 0, n_traj - 1 - k, k)  # own array j (id -1 - j) follows the cut trajectories
            rows.append(np.stack([first[k], count[k]], axis=1))
        return RelationTable(self.videos, np.array(self.offsets, dtype=np.int64), list(self.ids),
                             np.array(self.tid, dtype=np.int64),
                             np.array([self.begin, self.end], dtype=np.int64).T.reshape(-1, 2),
                             np.array(self.score, dtype=np.float64),
                             boxes.astype(np.float64, copy=False), rows[0], rows[1], version)


def read_prediction_table(path: _json.PathLike) -> RelationTable:
    """Read an official prediction file (as :func:`pyvrel.data.read_predictions` does, with the same
    validation and errors) straight into a :class:`RelationTable`: the boxes stay in the array the
    C++ JSON pass parsed them into, and no :class:`~pyvrel.data.Relation` is built for a relation
    whose fields all have the exact expected types."""
    with _json.paused_gc():
        obj, cut = _json.load_cut(path)
        table = _table_from_json(obj, cut, str(path))
        if table is None:  # a trajectory key outside the relations: read plainly
            table = _table_from_json(_json.load(path), None, str(path))
        return table


def _table_from_json(obj: Any, cut: _json.CutTrajectories | None, file: str) -> RelationTable | None:
    """The table of a parsed prediction JSON; ``None`` when not every cut trajectory was found in
    a relation's ``sub_traj``/``obj_traj``."""
    results, version, _, _ = results_of(obj, file)
    b = _Builder(cut)
    count = cut.count.tolist() if cut is not None else []
    found = 0
    for vid, rels in video_relations(results, file):
        for i, r in enumerate(rels):
            fast = _fast_row(r, count) if cut is not None else None
            if fast is not None:
                b.add(*fast)
                found += 2
                continue
            if cut is not None and type(r) is dict:  # markers back to arrays for the full validation
                traj = {k: cut.array(m) for k, v in r.items()
                        if (m := _json.marker(v)) is not None and m < len(count)}
                found += len(traj)
                r = {**r, **traj}
            b.add_relation(Relation.from_json(r, file=file, video=vid, index=i))
        b.end_video(vid)
    if cut is not None and found != len(count):
        return None
    return b.finish(version)


_MARK, _MARK_LEN = _json.MARK, len(_json.MARK)


def _fast_row(r: Any, count: list[int]) -> tuple | None:
    """``(triplet, begin, end, score, sub, obj)`` of a relation whose fields all have the exact
    expected types and whose trajectories were cut by the C++ pass; ``None`` for anything else
    (which :meth:`Relation.from_json` then validates). Written for speed: it runs once per relation."""
    if type(r) is not dict:
        return None
    get = r.get
    triplet, duration, score, sub, obj = get("triplet"), get("duration"), get("score"), get("sub_traj"), get("obj_traj")
    if (type(triplet) is not list or len(triplet) != 3 or type(duration) is not list or len(duration) != 2
            or type(sub) is not str or type(obj) is not str or not sub.startswith(_MARK) or not obj.startswith(_MARK)):
        return None
    s0, s1, s2 = triplet
    begin, end = duration
    if (type(s0) is not str or type(s1) is not str or type(s2) is not str or type(begin) is not int
            or type(end) is not int or not 0 <= begin < end):
        return None
    if (type(score) is not float and type(score) is not int) or score != score:
        return None
    if len(r) > 5:  # track ids or extra keys: the ids must be integers
        s_tid, o_tid = get("subject_tid"), get("object_tid")
        if (s_tid is not None and type(s_tid) is not int) or (o_tid is not None and type(o_tid) is not int):
            return None
    sub, obj = sub[_MARK_LEN:], obj[_MARK_LEN:]
    if not (sub.isdigit() and obj.isdigit()):  # a string of the file, not a marker
        return None
    sub, obj = int(sub), int(obj)
    if sub >= len(count) or obj >= len(count) or count[sub] < end - begin or count[obj] < end - begin:
        return None
    return (s0, s1, s2), begin, end, score, sub, obj
