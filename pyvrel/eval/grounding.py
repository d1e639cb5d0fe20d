"""Relation grounding accuracy (vRGV, Xiao et al. ECCV 2020, as its evaluation code computes it).

A query is a relation triplet of a video's ground truth; the grounder returns one subject and
one object trajectory for it. Against a ground-truth instance of the same triplet, a trajectory
scores ``tiou = sum_{t in (0.3, 0.5, 0.7)} #frames(IoU >= t) / (3 * |frames(pred) U frames(gt)|)``
(per-frame box IoU; a frame only one side covers counts in the denominator and never as a hit).
The subject is correct if ``tiou_s >= threshold`` for some instance, the object likewise, and the
relation if ``min(tiou_s, tiou_o) >= threshold`` for some instance (the same instance for both).
AccS, AccO and AccR average over a video's queries, then over videos.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pyvrel.data.boxes import box_ious
from pyvrel.data.relations import Relation, Triplet

__all__ = ["frame_tiou", "grounding_accuracy"]


def frame_tiou(traj_p: np.ndarray, dur_p: Sequence[int], traj_g: np.ndarray, dur_g: Sequence[int], *,
               iou_thresholds: Sequence[float] = (0.3, 0.5, 0.7), pixel_offset: float = 1) -> float:
    """vRGV's per-frame-thresholded temporal IoU of one predicted and one ground-truth trajectory.

    ``traj (L, 4)`` holds the box of frame ``dur[0] + i``; only the first ``dur[1] - dur[0]`` rows
    are used. ``pixel_offset=1`` (inclusive pixels, the VidVRD convention) is pyvrel's default; the
    spec does not say which vRGV's script uses.
    """
    (ps, pe), (gs, ge) = dur_p, dur_g
    union = (pe - ps) + (ge - gs) - max(0, min(pe, ge) - max(ps, gs))
    if union <= 0:
        return 0.0
    lo, hi = max(ps, gs), min(pe, ge)
    if hi <= lo:
        return 0.0
    a = np.asarray(traj_p, dtype=np.float64)[lo - ps: hi - ps]
    b = np.asarray(traj_g, dtype=np.float64)[lo - gs: hi - gs]
    iou = box_ious(a, b, pixel_offset)
    hits = sum(int((iou >= t).sum()) for t in iou_thresholds)
    return hits / (len(iou_thresholds) * union)


def grounding_accuracy(
    groundtruth: Mapping[str, Sequence[Relation]],
    groundings: Mapping[str, Mapping[Triplet, Relation] | Sequence[Relation]],
    *,
    threshold: float = 0.5,
    iou_thresholds: Sequence[float] = (0.3, 0.5, 0.7),
    pixel_offset: float = 1,
    per_video: bool = False,
) -> dict[str, Any]:
    """AccS, AccO and AccR (fractions in [0, 1]).

    Args:
        groundtruth: video id -> ground-truth relations; each distinct triplet is one query.
        groundings: video id -> the grounded relation per query, as a mapping triplet ->
            :class:`~pyvrel.data.Relation` or a list (the first relation of each triplet is used).
            A query without a grounding counts as wrong.
        threshold: the tIoU a trajectory needs (vRGV Table 6 varies it: 0.3, 0.5, 0.7).

    Returns:
        ``{"AccS", "AccO", "AccR", "videos", "queries"}`` (+ ``"per_video"``).
    """
    per: dict[str, dict[str, float]] = {}
    n_queries = 0
    for vid, gts in groundtruth.items():
        if not gts:
            continue
        by_triplet: dict[Triplet, list[Relation]] = {}
        for g in gts:
            by_triplet.setdefault(tuple(g.triplet), []).append(g)
        given = groundings.get(vid, {})
        if not isinstance(given, Mapping):
            first: dict[Triplet, Relation] = {}
            for r in given:
                first.setdefault(tuple(r.triplet), r)
            given = first
        s_ok = o_ok = r_ok = 0
        for triplet, insts in by_triplet.items():
            pred = given.get(triplet)
            if pred is None:
                continue
            kw = dict(iou_thresholds=iou_thresholds, pixel_offset=pixel_offset)
            ts = [frame_tiou(pred.sub_traj, pred.duration, g.sub_traj, g.duration, **kw) for g in insts]
            to = [frame_tiou(pred.obj_traj, pred.duration, g.obj_traj, g.duration, **kw) for g in insts]
            s_ok += any(t >= threshold for t in ts)
            o_ok += any(t >= threshold for t in to)
            r_ok += any(min(a, b) >= threshold for a, b in zip(ts, to))
        q = len(by_triplet)
        n_queries += q
        per[vid] = {"AccS": s_ok / q, "AccO": o_ok / q, "AccR": r_ok / q, "queries": q}
    if not per:
        raise ValueError("grounding_accuracy: the ground truth has no relation in any video")
    out: dict[str, Any] = {k: float(np.mean([v[k] for v in per.values()])) for k in ("AccS", "AccO", "AccR")}
    out.update(videos=len(per), queries=n_queries)
    if per_video:
        out["per_video"] = per
    return out
