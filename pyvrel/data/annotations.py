"""Typed records and readers/writers for the official ImageNet-VidVRD and VidOR annotation JSON.

One file per video (VidVRD ``{train,test}/<vid>.json``; VidOR
``annotation/{training,validation}/<group>/<vid>.json``)::

    {"video_id": "...", "frame_count": 300, "fps": 29.97, "width": 1280, "height": 720,
     "version": "VERSION 1.0",                 # VidOR only (with "video_path", "video_hash")
     "subject/objects": [{"tid": 0, "category": "dog"}, ...],
     "trajectories": [[{"tid": 0, "bbox": {"xmin": 10, "ymin": 20, "xmax": 110, "ymax": 220}}, ...],
                      ...],                    # one list per frame; an object may be absent
     "relation_instances": [{"subject_tid": 0, "object_tid": 1, "predicate": "chase",
                             "begin_fid": 12, "end_fid": 57}, ...]}   # end_fid exclusive

Keys beyond these (at any level, e.g. a per-box ``"generated"`` flag) are kept in ``extra``
dicts, so reading then writing gives back the same JSON value. Validation (on reading) raises
:class:`~pyvrel.data.FormatError` naming the file, video and field for: missing keys, unknown
tids, duplicate boxes of one tid in a frame, spans that are empty or past ``frame_count``, more
trajectory frames than ``frame_count``, and a relation whose subject or object has no box in a
frame of its span (the official conversion would raise ``KeyError`` there).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pyvrel._gc import paused_gc
from pyvrel.data import _json
from pyvrel.data.errors import FormatError
from pyvrel.data.relations import Relation, Triplet

if TYPE_CHECKING:  # torch is imported only where tubes are built
    import torch

    from pyvrel.ops.types import Tubes

__all__ = [
    "ObjectInfo",
    "FrameBox",
    "RelationInstance",
    "VideoAnnotation",
    "read_annotation",
    "read_annotations",
    "write_annotations",
    "load_groundtruth",
    "iter_annotation_files",
]

_TOP = ("video_id", "frame_count", "fps", "width", "height", "subject/objects", "trajectories",
        "relation_instances")
_BBOX = ("xmin", "ymin", "xmax", "ymax")
_NUM = (int, float)  # exact types: bool is not a coordinate
_REL = ("subject_tid", "object_tid", "predicate", "begin_fid", "end_fid")


@dataclass(eq=False, slots=True)
class ObjectInfo:
    """An annotated object (``subject/objects`` entry): track id and category."""

    tid: int
    category: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=False, slots=True)
class FrameBox:
    """One object's box in one frame: ``bbox = (xmin, ymin, xmax, ymax)`` in inclusive pixels."""

    tid: int
    bbox: tuple[float, float, float, float]
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(eq=False, slots=True)
class RelationInstance:
    """An annotated relation: ``subject_tid predicate object_tid`` over frames ``[begin_fid, end_fid)``."""

    subject_tid: int
    object_tid: int
    predicate: str
    begin_fid: int
    end_fid: int
    extra: dict[str, Any] = field(default_factory=dict)


def _box_error(fail: Any, f: int, i: int, b: Any) -> FormatError:
    """The error for a box entry that is not ``{"tid": ..., "bbox": {xmin, ymin, xmax, ymax}}``."""
    if not isinstance(b, Mapping) or "tid" not in b or "bbox" not in b:
        return fail(f"trajectories[{f}][{i}]", f"must be an object with 'tid' and 'bbox', got {b!r}")
    return fail(f"trajectories[{f}][{i}].bbox", f"must hold numeric xmin, ymin, xmax, ymax, got {b['bbox']!r}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@dataclass(eq=False)
class VideoAnnotation:
    """The annotation of one video.

    Attributes:
        video_id, frame_count, fps, width, height: as in the JSON.
        objects: the ``subject/objects`` list.
        trajectories: per frame (0-based), the boxes present in that frame. May be shorter than
            ``frame_count`` (some released files are).
        relations: the ``relation_instances``.
        extra: other top-level keys (VidOR's ``version``, ``video_path``, ``video_hash``).
        source: the file it was read from, for error messages.
    """

    video_id: str
    frame_count: int
    fps: float
    width: int
    height: int
    objects: list[ObjectInfo]
    trajectories: list[list[FrameBox]]
    relations: list[RelationInstance]
    extra: dict[str, Any] = field(default_factory=dict)
    source: str | None = None

    # ---- JSON ------------------------------------------------------------------------------

    @classmethod
    def from_json(cls, obj: Any, *, source: str | None = None) -> "VideoAnnotation":
        """Validate and convert one video's annotation JSON (see the module docstring)."""
        vid = obj.get("video_id") if isinstance(obj, Mapping) else None

        def fail(fld: str | None, msg: str) -> FormatError:
            return FormatError(msg, file=source, video=vid, field=fld)

        if not isinstance(obj, Mapping):
            raise fail(None, f"an annotation must be a JSON object, got {type(obj).__name__}")
        for key in _TOP:
            if key not in obj:
                raise fail(key, "missing")
        if not isinstance(vid, str):
            raise fail("video_id", f"must be a string, got {vid!r}")
        frame_count = obj["frame_count"]
        if not _is_int(frame_count) or frame_count < 0:
            raise fail("frame_count", f"must be a non-negative integer, got {frame_count!r}")
        for key in ("fps", "width", "height"):
            if not _is_num(obj[key]):
                raise fail(key, f"must be a number, got {obj[key]!r}")

        objects, tids = [], set()
        if not isinstance(obj["subject/objects"], list):
            raise fail("subject/objects", "must be a list")
        for i, o in enumerate(obj["subject/objects"]):
            fld = f"subject/objects[{i}]"
            if not isinstance(o, Mapping) or "tid" not in o or "category" not in o:
                raise fail(fld, f"must be an object with 'tid' and 'category', got {o!r}")
            if not _is_int(o["tid"]) or not isinstance(o["category"], str):
                raise fail(fld, f"tid must be an integer and category a string, got {o!r}")
            if o["tid"] in tids:
                raise fail(fld, f"duplicate tid {o['tid']}")
            tids.add(o["tid"])
            objects.append(ObjectInfo(o["tid"], o["category"], {k: v for k, v in o.items() if k not in ("tid", "category")}))

        trajs_json = obj["trajectories"]
        if not isinstance(trajs_json, list):
            raise fail("trajectories", "must be a list with one list of boxes per frame")
        if len(trajs_json) > frame_count:
            raise fail("trajectories", f"has {len(trajs_json)} frames, more than frame_count={frame_count}")
        trajectories: list[list[FrameBox]] = []
        present: dict[int, set[int]] = {t: set() for t in tids}
        for f, frame in enumerate(trajs_json):
            if type(frame) is not list:
                raise fail(f"trajectories[{f}]", "must be a list of boxes")
            boxes: list[FrameBox] = []
            append = boxes.append
            for i, b in enumerate(frame):
                try:
                    tid, bb = b["tid"], b["bbox"]
                    box = (bb["xmin"], bb["ymin"], bb["xmax"], bb["ymax"])
                except (KeyError, TypeError):
                    raise _box_error(fail, f, i, b) from None
                seen = present.get(tid) if type(tid) is int else None
                if seen is None:
                    raise fail(f"trajectories[{f}][{i}].tid", f"unknown tid {tid!r} (not in subject/objects)")
                if f in seen:
                    raise fail(f"trajectories[{f}][{i}].tid", f"tid {tid} has two boxes in frame {f}")
                seen.add(f)
                if not (type(box[0]) in _NUM and type(box[1]) in _NUM and type(box[2]) in _NUM
                        and type(box[3]) in _NUM):
                    raise fail(f"trajectories[{f}][{i}].bbox", f"must hold numeric xmin, ymin, xmax, ymax, got {bb!r}")
                if len(b) == 2 and len(bb) == 4:
                    append(FrameBox(tid, box, {}))
                else:
                    extra = {k: v for k, v in b.items() if k != "tid" and k != "bbox"}
                    if len(bb) != 4:
                        extra["bbox"] = {k: v for k, v in bb.items() if k not in _BBOX}
                    append(FrameBox(tid, box, extra))
            trajectories.append(boxes)

        relations = []
        if not isinstance(obj["relation_instances"], list):
            raise fail("relation_instances", "must be a list")
        for k, r in enumerate(obj["relation_instances"]):
            fld = f"relation_instances[{k}]"
            if not isinstance(r, Mapping):
                raise fail(fld, f"must be an object, got {r!r}")
            for key in _REL:
                if key not in r:
                    raise fail(f"{fld}.{key}", "missing")
            for key in ("subject_tid", "object_tid", "begin_fid", "end_fid"):
                if not _is_int(r[key]):
                    raise fail(f"{fld}.{key}", f"must be an integer, got {r[key]!r}")
            if not isinstance(r["predicate"], str):
                raise fail(f"{fld}.predicate", f"must be a string, got {r['predicate']!r}")
            begin, end = r["begin_fid"], r["end_fid"]
            if not 0 <= begin < end:
                raise fail(fld, f"span [begin_fid={begin}, end_fid={end}) is empty or negative")
            if end > frame_count:
                raise fail(f"{fld}.end_fid", f"span [{begin}, {end}) goes past frame_count={frame_count}")
            for role in ("subject_tid", "object_tid"):
                tid = r[role]
                if tid not in tids:
                    raise fail(f"{fld}.{role}", f"unknown tid {tid} (not in subject/objects)")
                missing = next((f for f in range(begin, end) if f not in present[tid]), None)
                if missing is not None:
                    raise fail(fld, f"{role.split('_')[0]} tid {tid} has no box in frame {missing} of the relation's "
                                    f"span [{begin}, {end})" + (f" (trajectories has {len(trajectories)} frames)"
                                                                if missing >= len(trajectories) else ""))
            relations.append(RelationInstance(r["subject_tid"], r["object_tid"], r["predicate"], begin, end,
                                              {k: v for k, v in r.items() if k not in _REL}))

        extra = {k: v for k, v in obj.items() if k not in _TOP}
        return cls(vid, frame_count, obj["fps"], obj["width"], obj["height"], objects, trajectories, relations,
                   extra, source)

    def to_json(self) -> dict[str, Any]:
        """The official JSON value (equal to the one read, extra keys included)."""
        def box(b: FrameBox) -> dict[str, Any]:
            bbox = dict(zip(_BBOX, b.bbox))
            extra = b.extra
            if "bbox" in extra:
                bbox.update(extra["bbox"])
                extra = {k: v for k, v in extra.items() if k != "bbox"}
            return {"tid": b.tid, "bbox": bbox, **extra}

        out: dict[str, Any] = {"video_id": self.video_id, "frame_count": self.frame_count, "fps": self.fps,
                               "width": self.width, "height": self.height}
        out.update(self.extra)
        out["subject/objects"] = [{"tid": o.tid, "category": o.category, **o.extra} for o in self.objects]
        out["trajectories"] = [[box(b) for b in frame] for frame in self.trajectories]
        out["relation_instances"] = [
            {"subject_tid": r.subject_tid, "object_tid": r.object_tid, "predicate": r.predicate,
             "begin_fid": r.begin_fid, "end_fid": r.end_fid, **r.extra} for r in self.relations]
        return out

    # ---- views -----------------------------------------------------------------------------

    def category_of(self) -> dict[int, str]:
        """tid -> category."""
        return {o.tid: o.category for o in self.objects}

    def boxes_by_tid(self) -> dict[int, dict[int, tuple[float, float, float, float]]]:
        """tid -> {frame: (xmin, ymin, xmax, ymax)} for every frame the object appears in."""
        out: dict[int, dict[int, tuple[float, float, float, float]]] = {o.tid: {} for o in self.objects}
        for f, frame in enumerate(self.trajectories):
            for b in frame:
                out[b.tid][f] = b.bbox
        return out

    def object_tubes(self, *, fill_gaps: bool = True, dtype: torch.dtype | None = None) -> tuple[list[int], Tubes]:
        """Each object's trajectory as pyvrel's tube layout.

        Returns:
            ``(tids, tubes)``: tube ``i`` is object ``tids[i]`` (in ``subject/objects`` order), from
            its first to its last annotated frame. Frames where it is absent inside that span are
            linearly interpolated (``fill_gaps=True``) or raise ``ValueError``. Objects without any
            box get ``length 0``. Boxes are ``dtype`` (float64 when ``None``).
        """
        import torch

        from pyvrel.ops.tubes import tubes_from_frame_boxes

        by_tid = self.boxes_by_tid()
        tids = [o.tid for o in self.objects]
        try:
            tubes = tubes_from_frame_boxes([by_tid[t] for t in tids], fill_gaps=fill_gaps, dtype=dtype or torch.float64)
        except ValueError as e:
            raise FormatError(str(e), file=self.source, video=self.video_id, field="trajectories") from None
        return tids, tubes

    def relation_view(self) -> list[Relation]:
        """The ground-truth relations as the evaluator consumes them (VidVRD-helper's
        ``get_relation_insts``): triplet ``(subject category, predicate, object category)``,
        duration ``(begin_fid, end_fid)`` and the subject/object boxes of those frames as float64
        ``(L, 4)`` arrays. Spans were validated on reading, so every box exists."""
        cat = self.category_of()
        frames: dict[int, list[int]] = {o.tid: [] for o in self.objects}
        boxes: dict[int, list[tuple]] = {o.tid: [] for o in self.objects}
        for f, frame in enumerate(self.trajectories):
            for b in frame:
                frames[b.tid].append(f)
                boxes[b.tid].append(b.bbox)
        arrays = {t: (np.array(frames[t], dtype=np.int64), np.array(boxes[t], dtype=np.float64).reshape(-1, 4))
                  for t in frames}

        def span(tid: int, begin: int, end: int) -> np.ndarray:
            fr, bx = arrays[tid]
            k = int(np.searchsorted(fr, begin))  # every frame of [begin, end) is present (validated)
            return bx[k: k + end - begin]

        return [Relation((cat[r.subject_tid], r.predicate, cat[r.object_tid]), (r.begin_fid, r.end_fid),
                         span(r.subject_tid, r.begin_fid, r.end_fid), span(r.object_tid, r.begin_fid, r.end_fid),
                         None, r.subject_tid, r.object_tid) for r in self.relations]

    def triplets(self) -> set[Triplet]:
        """The distinct ``(subject category, predicate, object category)`` triplets."""
        cat = self.category_of()
        return {(cat[r.subject_tid], r.predicate, cat[r.object_tid]) for r in self.relations}


# ---- files -----------------------------------------------------------------------------------


def iter_annotation_files(folder: _json.PathLike) -> list[Path]:
    """Every ``*.json`` file under ``folder`` (recursively, so VidOR's group folders work), sorted."""
    return sorted(p for p in Path(folder).rglob("*.json") if p.is_file())


def read_annotation(path: _json.PathLike) -> VideoAnnotation:
    """Read one per-video annotation file."""
    return VideoAnnotation.from_json(_json.load(path), source=str(path))


def _is_annotation(obj: Any) -> bool:
    return isinstance(obj, Mapping) and "video_id" in obj and "trajectories" in obj


def read_annotations(path: _json.PathLike) -> dict[str, VideoAnnotation]:
    """Read annotations from a per-video file, a JSON file mapping video id -> annotation, or a
    folder of per-video files (nested folders too). Returns video id -> annotation, in file order
    (folders: sorted by path). A video id found twice is an error naming both files."""
    with paused_gc():
        return _read_annotations(Path(path))


def _read_annotations(path: Path) -> dict[str, VideoAnnotation]:
    out: dict[str, VideoAnnotation] = {}
    if path.is_dir():
        files = iter_annotation_files(path)
        if not files:
            raise FileNotFoundError(f"{path}: no annotation files (*.json) in this folder")
        for p in files:
            anno = read_annotation(p)
            if anno.video_id in out:
                raise FormatError(f"duplicate video id (also in {out[anno.video_id].source})", file=str(p),
                                  video=anno.video_id, field="video_id")
            out[anno.video_id] = anno
        return out
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    return _annotations_from_obj(_json.load(path), str(path))


def _annotations_from_obj(obj: Any, file: str) -> dict[str, VideoAnnotation]:
    out: dict[str, VideoAnnotation] = {}
    if _is_annotation(obj):
        anno = VideoAnnotation.from_json(obj, source=file)
        return {anno.video_id: anno}
    if not isinstance(obj, Mapping):
        raise FormatError(f"expected an annotation or a mapping video id -> annotation, got {type(obj).__name__}",
                          file=file)
    for vid, value in obj.items():
        anno = VideoAnnotation.from_json(value, source=file)
        if anno.video_id != vid:
            raise FormatError(f"mapped under key {vid!r} but its video_id is {anno.video_id!r}", file=file,
                              video=vid, field="video_id")
        out[vid] = anno
    return out


def write_annotations(annotations: Mapping[str, VideoAnnotation] | Iterable[VideoAnnotation],
                      path: _json.PathLike, *, layout: str = "folder") -> list[Path]:
    """Write annotations.

    Args:
        layout: ``"folder"`` — ``path/<video_id>.json`` per video (VidVRD);
            ``"nested"`` — ``path/<group>/<video_id>.json`` with ``group`` the folder part of the
            video's ``video_path`` (VidOR, e.g. ``"1025/5159741010.mp4"`` -> ``1025``);
            ``"file"`` — one JSON file ``path`` mapping video id -> annotation.

    Returns:
        The files written.
    """
    annos = list(annotations.values()) if isinstance(annotations, Mapping) else list(annotations)
    path = Path(path)
    if layout == "file":
        path.parent.mkdir(parents=True, exist_ok=True)
        _json.dump({a.video_id: a.to_json() for a in annos}, path)
        return [path]
    if layout not in ("folder", "nested"):
        raise ValueError(f"write_annotations: layout must be 'folder', 'nested' or 'file', got {layout!r}")
    written = []
    for a in annos:
        folder = path
        if layout == "nested":
            video_path = a.extra.get("video_path")
            if not isinstance(video_path, str) or "/" not in video_path:
                raise FormatError("layout='nested' needs a 'video_path' like '1025/5159741010.mp4'",
                                  file=a.source, video=a.video_id, field="video_path")
            folder = path / Path(video_path).parent
        folder.mkdir(parents=True, exist_ok=True)
        out = folder / f"{a.video_id}.json"
        _json.dump(a.to_json(), out)
        written.append(out)
    return written


def _iter_relation_view(obj: Mapping[str, Any], file: str) -> Iterator[tuple[str, list[Relation]]]:
    for vid, rels in obj.items():
        if not isinstance(rels, list):
            raise FormatError(f"must be a list of relations, got {type(rels).__name__}", file=file, video=vid)
        yield vid, [Relation.from_json(r, file=file, video=vid, index=i, prediction=False) for i, r in enumerate(rels)]


def load_groundtruth(path: _json.PathLike | Mapping[str, VideoAnnotation]) -> dict[str, list[Relation]]:
    """Ground truth as the evaluator consumes it: video id -> relations (:meth:`VideoAnnotation.relation_view`).

    ``path`` may be annotations already read, an annotation folder or file (see
    :func:`read_annotations`), or a JSON file already in the relation view (``{vid: [{"triplet",
    "subject_tid", "object_tid", "duration", "sub_traj", "obj_traj"}]}``, as VidVRD-helper writes
    with ``python -m dataset.vidvrd test relation out.json``).
    """
    with paused_gc():
        return _load_groundtruth(path)


def _load_groundtruth(path: _json.PathLike | Mapping[str, VideoAnnotation]) -> dict[str, list[Relation]]:
    if isinstance(path, Mapping):
        return {vid: a.relation_view() for vid, a in path.items()}
    p = Path(path)
    if p.is_file():
        obj = _json.load(p)
        if isinstance(obj, Mapping) and obj and not _is_annotation(obj) and all(isinstance(v, list) for v in obj.values()):
            return dict(_iter_relation_view(obj, str(p)))
        annos = _annotations_from_obj(obj, str(p))
    else:
        annos = _read_annotations(p)
    return {vid: a.relation_view() for vid, a in annos.items()}
