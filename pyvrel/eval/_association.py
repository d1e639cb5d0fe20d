"""The association's one call into the C++ extension: the greedy linking of one video's segment
predictions (``pyvrel._C.associate_video``, csrc/cpu/association.cpp), with the operations of
:func:`pyvrel.eval.reference.associate_reference` in the same order, so its relations are those
bit for bit. torch is not imported.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pyvrel.eval.association import SegmentRelation

#: Columns of the relation table :func:`link` returns.
FIRST_PRED, SUB_START, SUB_LEN, OBJ_START, OBJ_LEN = range(5)


def available() -> bool:
    """Whether ``pyvrel._C`` is built (else the caller links another way)."""
    from pyvrel import _ext

    return _ext.has_cpu_ext()


def link(segments: Sequence[Sequence[SegmentRelation]], algorithm: str, threshold: float, tolerance: int,
         pixel_offset: float, later_confs_one: bool
         ) -> tuple[list[SegmentRelation], np.ndarray, np.ndarray, np.ndarray]:
    """Links the predictions of a video's segments, given in linking order (segments by start,
    each segment's top predictions by descending score).

    Returns ``(preds, rel, scores, boxes)``: the predictions flattened in that order; ``rel (R, 5)``
    int64, one row per relation in creation order (columns :data:`FIRST_PRED` .. :data:`OBJ_LEN`:
    the prediction that started it, its subject and object tracks' first frames and lengths);
    ``scores (R,)`` float64, the relations' scores (sum of their confidences for ``"vidvrd2"``, mean
    for ``"baseline"``); ``boxes (rows, 4)`` float64, each relation's subject then object boxes in
    turn.
    """
    from pyvrel import _ext

    preds = [p for seg in segments for p in seg]
    ids: dict[tuple, int] = {}
    tracks = [t for p in preds for t in (p.sub, p.obj)]
    lengths = np.array([len(t.boxes) for t in tracks], np.int64)
    rows = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    boxes = np.ascontiguousarray(np.concatenate([t.boxes for t in tracks]) if tracks else np.zeros((0, 4)))
    table = np.empty((len(preds), 7), np.int64)  # the columns of AssociationColumn (csrc/cpu/association.h)
    table[:, 0] = [ids.setdefault(tuple(p.triplet), len(ids)) for p in preds]
    table[:, 1] = [t.start for t in tracks[0::2]]
    table[:, 2], table[:, 3] = lengths[0::2], rows[0::2]
    table[:, 4] = [t.start for t in tracks[1::2]]
    table[:, 5], table[:, 6] = lengths[1::2], rows[1::2]
    scores = np.array([float(p.score) for p in preds], np.float64)
    counts = np.array([len(seg) for seg in segments], np.int64)
    rel = np.empty((len(preds), 5), np.int64)
    rel_scores = np.empty(len(preds), np.float64)
    sizes = np.zeros(2, np.int64)
    capacity = len(boxes) + 64
    while True:
        out = np.empty((capacity, 4), np.float64)
        _ext.cpu().associate_video(counts.ctypes.data, len(counts), table.ctypes.data, scores.ctypes.data,
                                   boxes.ctypes.data, algorithm == "vidvrd2", float(threshold), int(tolerance),
                                   float(pixel_offset), bool(later_confs_one), rel.ctypes.data, rel_scores.ctypes.data,
                                   out.ctypes.data, capacity, sizes.ctypes.data)
        if sizes[1] <= capacity:
            R = int(sizes[0])
            return preds, rel[:R], rel_scores[:R], out[: sizes[1]]
        capacity = int(sizes[1])
