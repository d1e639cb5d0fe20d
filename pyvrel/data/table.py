"""Columnar relations (:class:`RelationTable`): the evaluator's input without one Python object per
relation, read straight from a prediction file by :func:`read_prediction_table` and from ground truth by
:func:`read_groundtruth_table`.

A table holds the relations of many videos in flat arrays: video ``v`` owns rows
``offsets[v]:offsets[v + 1]`` (in file order), row ``i`` has triplet ``triplets[triplet_id[i]]``
(interned, so equal ids mean equal strings), ``duration[i]``, ``score[i]`` and its subject and
object boxes in one float64 array. It keeps what the evaluation reads, nothing else (no track ids,
extra keys or integer dtypes): :class:`~pyvrel.data.Relation` records stay the lossless form.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pyvrel._gc import paused_gc
from pyvrel.data import _json
from pyvrel.data.relations import Relation, Triplet, results_of, video_relations

__all__ = ["RelationTable", "read_groundtruth_table", "read_prediction_table"]


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
    validation and errors) straight into a :class:`RelationTable`.

    A file of the plain form (see ``parse_prediction_file`` in ``csrc/cpu/prediction_json.h``: the
    keys VidVRD-helper writes, ASCII strings) is parsed into the columns by one C++ pass, with no
    Python object per relation. Any other file is parsed by the JSON parser with the trajectories cut out
    by the C++ pass (:func:`pyvrel.data._json.load_cut`), and no :class:`~pyvrel.data.Relation` is
    built for a relation whose fields all have the exact expected types. Either way a video id
    that appears twice is an error."""
    table = _plain_prediction_table(Path(path))
    if table is not None:
        return table
    with paused_gc():
        obj, cut = _json.load_cut(path)
        table = _table_from_json(obj, cut, str(path))
        if table is None:  # a trajectory key outside the relations: read plainly
            table = _table_from_json(_json.load(path), None, str(path))
        return table


def _plain_prediction_table(path: Path) -> RelationTable | None:
    """The table of a prediction file of the plain form, parsed by ``pyvrel._C.parse_prediction_file``;
    ``None`` for any other file or without the C++ extension. Capacities are bounds (a relation
    takes >= 64 bytes of text, a box >= 9), allocated but never touched beyond what is used."""
    from pyvrel import _ext

    if not _ext.has_cpu_ext():
        return None
    with _json.mapped(path) as data:
        columns = _parse_plain(data)
        if columns is None:
            return None
        status, sizes, arrays = columns
        n_videos, n, n_boxes, n_triplets, n_strings, v_at, v_len, d_at, d_len = sizes.tolist()
        if status == 2:
            from pyvrel.data.errors import FormatError

            raise FormatError("appears twice in results (a JSON parser would silently keep only its last list)",
                              file=str(path), video=bytes(data[d_at: d_at + d_len]).decode())
        if status != 0:
            return None
        text = lambda at, length: bytes(data[at: at + length]).decode()  # noqa: E731
        video_span, video_count, triplet_id, score, duration, traj, boxes, triplet_strings, string_span = arrays
        strings = [text(a, b) for a, b in string_span[:n_strings].tolist()]
        videos = [text(a, b) for a, b in video_span[:n_videos].tolist()]
        version = text(v_at, v_len) if v_at >= 0 else None
    triplets = [(strings[a], strings[b], strings[c]) for a, b, c in triplet_strings[:n_triplets].tolist()]
    boxes.resize((n_boxes, 4), refcheck=False)  # gives back the unused capacity without copying
    traj = traj[:n]
    return RelationTable(videos, np.concatenate([[0], np.cumsum(video_count[:n_videos])]).astype(np.int64), triplets,
                         triplet_id[:n].copy(), duration[:n].copy(), score[:n].copy(), boxes,
                         traj[:, :2].copy(), traj[:, 2:].copy(), version)


def _parse_plain(data: bytes | Any) -> tuple[int, np.ndarray, tuple[np.ndarray, ...]] | None:
    """``(status, sizes, column buffers)`` of ``pyvrel._C.parse_prediction_file`` over ``data``;
    ``None`` where the system refuses the buffers."""
    from pyvrel import _ext

    n_rel, n_box = len(data) // 64 + 1, len(data) // 9 + 1
    sizes = np.array([len(data) // 4 + 1, n_rel, n_box, n_rel, 3 * n_rel] + [0] * 4, dtype=np.int64)
    try:
        arrays = (np.empty((sizes[0], 2), np.int64), np.empty(sizes[0], np.int64), np.empty(n_rel, np.int64),
                  np.empty(n_rel), np.empty((n_rel, 2), np.int64), np.empty((n_rel, 4), np.int64),
                  np.empty((n_box, 4)), np.empty((n_rel, 3), np.int64), np.empty((3 * n_rel, 2), np.int64))
    except MemoryError:
        return None
    buf = np.frombuffer(data, dtype=np.uint8)
    status = _ext.cpu().parse_prediction_file(buf.ctypes.data, len(data), *(a.ctypes.data for a in arrays),
                                              sizes.ctypes.data)
    del buf  # no view of a memory map may outlive it
    return status, sizes, arrays


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


# ---- ground truth ---------------------------------------------------------------------------------


def read_groundtruth_table(path: _json.PathLike, *, normalize: bool = False) -> RelationTable:
    """Ground truth as :func:`pyvrel.data.load_groundtruth` reads it (an annotation folder, a
    per-video file, a JSON mapping video id -> annotation, or the relation view), with the same
    validation and errors, straight into a :class:`RelationTable` (``score`` is ``None``).

    All the annotation files go through one C++ pass (``pyvrel._C.parse_annotations``, see
    ``csrc/cpu/prediction_json.h``) that parses them into the table's columns and makes the checks
    of :meth:`VideoAnnotation.from_json` (known tids, one box per tid and frame, every frame of a
    relation's span present); a relation's boxes are a slice of its video's boxes sorted by
    (object, frame). A video that is not of the plain form (extra box keys, a check failing) is
    read by :class:`~pyvrel.data.VideoAnnotation` instead, which raises the exact error.
    ``normalize`` divides each video's coordinates by its width/height (VidVRD-II's normalised
    predictions).
    """
    from pyvrel.data.annotations import _annotations_from_obj, iter_annotation_files, load_groundtruth, read_annotation

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    with paused_gc():
        b = _GroundTruthBuilder(normalize)
        if p.is_dir():
            files = iter_annotation_files(p)
            text = _read_files(files)
            plain = _parse_annotations(*text, mapping=False) if text is not None else None
            if plain is None:
                for f in files:
                    b.add_annotation(read_annotation(f), f)
            else:
                b.add(plain, files, lambda v: read_annotation(files[v]))
            return b.finish()
        data = _json.read_bytes(p)
        text = np.frombuffer(data, dtype=np.uint8), [0, len(data)]
        plain = _parse_annotations(*text, mapping=False)
        if plain is None or plain.status[0]:  # not one plain annotation: a mapping video id -> annotation?
            plain = _parse_annotations(*text, mapping=True)
        annos: dict[str, Any] = {}

        def checked(v: int) -> Any:  # the annotation of video v through the record reader
            if not annos:
                annos.update(_annotations_from_obj(_json.load(p), str(p)))
            return annos[plain.ids[v]]

        if plain is not None:
            b.add(plain, [p] * len(plain.status), checked)
            return b.finish()
        obj = _json.load(p)
        if not (isinstance(obj, Mapping) and (("video_id" in obj and "trajectories" in obj)
                                              or all(isinstance(v, Mapping) for v in obj.values()))):
            # the relation view (or not ground truth): the record reader reads it, or says what is wrong
            if normalize:
                raise ValueError(f"{path}: normalised coordinates need each video's width and height, which "
                                 "the relation view does not hold; give the annotation files")
            return RelationTable.from_relations(load_groundtruth(p), scores=False)
        for anno in _annotations_from_obj(obj, str(p)).values():
            b.add_annotation(anno, p)
        return b.finish()


@dataclass(frozen=True)
class _PlainAnnotations:
    """Videos parsed by ``pyvrel._C.parse_annotations``: video ``v`` (``status[v]`` 0; else it is
    left to the record reader and has no rows) owns relation rows ``first_relation[v]:first_relation[v + 1]``
    and box rows ``first_box[v]:first_box[v + 1]``; ``relation`` columns: triplet id, begin, end,
    subject's and object's first box row."""

    status: list[int]
    ids: list[str | None]  # the video ids (mapping: the keys; None where unknown)
    size: np.ndarray  # (V, 2) width, height
    first_relation: list[int]
    first_box: list[int]
    relation: np.ndarray  # (N, 5) int64
    boxes: np.ndarray  # (B, 4) float64
    triplets: list[Triplet]


def _read_files(files: list[Path]) -> tuple[np.ndarray, list[int]] | None:
    """The files' bytes one after the other in one buffer (read into it, not copied) and where
    each starts, with the end: ``(text (n,) uint8, offsets)``; ``None`` when a file's size changed
    while reading."""
    offsets = [0]
    for f in files:
        offsets.append(offsets[-1] + f.stat().st_size)
    text = np.empty(offsets[-1], dtype=np.uint8)
    for f, a, b in zip(files, offsets, offsets[1:]):
        with open(f, "rb", buffering=0) as fh:
            if fh.readinto(text[a:b]) != b - a or fh.read(1):
                return None
    return text, offsets


def _parse_annotations(text: np.ndarray, offsets: list[int], *, mapping: bool) -> _PlainAnnotations | None:
    """The C++ pass over annotation texts ``text[offsets[i]: offsets[i + 1]]`` (uint8; each one
    annotation, or with ``mapping`` one text a mapping video id -> annotation); ``None`` without the
    extension, where the system refuses the buffers, or (``mapping``) when the text is not such a
    mapping. Capacities are bounds (a box takes >= 50 bytes of text, a relation >= 64, an interned
    string >= 16), allocated but never touched beyond what is used."""
    from pyvrel import _ext

    if not _ext.has_cpu_ext():
        return None
    n, n_texts = len(text), len(offsets) - 1
    sizes = np.array([n // 64 + 1 if mapping else n_texts, n // 64 + 1, n // 50 + 1, n // 64 + 1, n // 16 + 1],
                     dtype=np.int64)
    try:
        video, size = np.empty((sizes[0], 5), np.int64), np.empty((sizes[0], 2))
        relation, boxes = np.empty((sizes[1], 5), np.int64), np.empty((sizes[2], 4))
        triplet_strings, string_span = np.empty((sizes[3], 3), np.int64), np.empty((sizes[4], 2), np.int64)
    except MemoryError:
        return None
    starts = np.array(offsets, dtype=np.int64)
    status = _ext.cpu().parse_annotations(text.ctypes.data, starts.ctypes.data, n_texts, mapping, video.ctypes.data,
                                          size.ctypes.data, relation.ctypes.data, boxes.ctypes.data,
                                          triplet_strings.ctypes.data, string_span.ctypes.data, sizes.ctypes.data)
    if status != 0:
        return None
    n_videos, n_relations, n_boxes, n_triplets, n_strings = sizes.tolist()
    decode = lambda at, length: text[at: at + length].tobytes().decode()  # noqa: E731
    strings = [decode(a, k) for a, k in string_span[:n_strings].tolist()]
    rows = video[:n_videos].tolist()
    boxes.resize((n_boxes, 4), refcheck=False)  # gives back the unused capacity without copying
    return _PlainAnnotations([r[0] for r in rows], [decode(r[1], r[2]) if r[1] >= 0 else None for r in rows],
                             size[:n_videos], np.concatenate([[0], np.cumsum(video[:n_videos, 3])]).tolist(),
                             np.concatenate([[0], np.cumsum(video[:n_videos, 4])]).tolist(),
                             relation[:n_relations], boxes,
                             [(strings[a], strings[b], strings[c]) for a, b, c in triplet_strings[:n_triplets].tolist()])


class _GroundTruthBuilder:
    """Appends annotated videos as columns (see :func:`read_groundtruth_table`), in parts: runs of
    videos the C++ pass parsed, and videos read by the record reader. A part's triplet ids index
    its own triplet list; :meth:`finish` numbers the triplets in order of first appearance."""

    def __init__(self, normalize: bool) -> None:
        self.normalize = normalize
        self.videos: list[str] = []
        self.sources: dict[str, str] = {}
        self.counts: list[int] = []
        # per part: triplets, triplet ids, duration, subject and object rows (into the part's boxes), boxes
        self.parts: list[tuple[list[Triplet], np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def _video(self, vid: str, file: Path, count: int) -> None:
        if vid in self.sources:
            from pyvrel.data.errors import FormatError

            raise FormatError(f"duplicate video id (also in {self.sources[vid]})", file=str(file), video=vid,
                              field="video_id")
        self.sources[vid] = str(file)
        self.videos.append(vid)
        self.counts.append(count)

    def add(self, plain: _PlainAnnotations, files: list[Path], checked: Callable[[int], Any]) -> None:
        """The videos of a C++ pass (video ``v`` from ``files[v]``); ``checked(v)`` gives the
        :class:`~pyvrel.data.VideoAnnotation` of one it left to the record reader."""
        v, n = 0, len(plain.status)
        while v < n:
            if plain.status[v]:
                self.add_annotation(checked(v), files[v])
                v += 1
                continue
            w = v
            while w < n and not plain.status[w]:
                self._video(plain.ids[w], files[w], plain.first_relation[w + 1] - plain.first_relation[w])
                w += 1
            b0, b1 = plain.first_box[v], plain.first_box[w]
            rel = plain.relation[plain.first_relation[v]: plain.first_relation[w]]
            boxes = plain.boxes[b0:b1]
            if self.normalize:
                size = np.repeat(plain.size[v:w], np.diff(plain.first_box[v: w + 1]), axis=0)
                boxes = boxes / np.concatenate([size, size], axis=1)
            self.parts.append((plain.triplets, rel[:, 0], rel[:, 1:3], rel[:, 3] - b0, rel[:, 4] - b0, boxes))
            v = w

    def add_annotation(self, anno: Any, file: Path) -> None:
        """A :class:`~pyvrel.data.VideoAnnotation` read by the record reader."""
        rels = anno.relation_view()
        self._video(anno.video_id, file, len(rels))
        ids: dict[Triplet, int] = {}
        tid = np.array([ids.setdefault(tuple(r.triplet), len(ids)) for r in rels], dtype=np.int64)
        n = np.array([len(r.sub_traj) for r in rels] + [len(r.obj_traj) for r in rels], dtype=np.int64)
        first = np.cumsum(n) - n
        boxes = np.concatenate([r.sub_traj for r in rels] + [r.obj_traj for r in rels]) if rels else np.zeros((0, 4))
        boxes = boxes.astype(np.float64, copy=False)
        if self.normalize:
            boxes = boxes / np.array([anno.width, anno.height, anno.width, anno.height], dtype=np.float64)
        duration = np.array([r.duration for r in rels], dtype=np.int64).reshape(-1, 2)
        self.parts.append((list(ids), tid, duration, first[: len(rels)], first[len(rels):], boxes))

    def finish(self) -> RelationTable:
        ids: dict[Triplet, int] = {}
        tid, duration, sub, obj, boxes = [], [], [], [], []
        n_boxes = 0
        for triplets, t, d, s, o, b in self.parts:
            remap = np.full(len(triplets), -1, dtype=np.int64)
            for k in np.unique(t).tolist():  # in the part's order, which is the order of first appearance
                remap[k] = ids.setdefault(triplets[k], len(ids))
            tid.append(remap[t])
            duration.append(d)
            sub.append(s + n_boxes)
            obj.append(o + n_boxes)
            boxes.append(b)
            n_boxes += len(b)
        cat = lambda parts, shape: np.concatenate(parts) if parts else np.zeros(shape, dtype=np.int64)  # noqa: E731
        duration = cat(duration, (0, 2))
        length = duration[:, 1] - duration[:, 0]
        sub, obj = cat(sub, (0,)), cat(obj, (0,))
        box = (boxes[0] if len(boxes) == 1 else np.concatenate(boxes)) if boxes else np.zeros((0, 4))
        return RelationTable(self.videos, np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64),
                             list(ids), cat(tid, (0,)), duration, None, box, np.stack([sub, length], axis=1),
                             np.stack([obj, length], axis=1))
