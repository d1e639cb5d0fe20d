"""Relation detection (mAP, R@K) and relation tagging (P@k), identical to the official
VidVRD-helper evaluation, with the VRU'20 server's and VidVRD-II's variants.

What "identical" means (``docs/architecture.md``, "Evaluation"; the quirks are tested one by one
in ``tests/test_eval.py``):

* vIoU with inclusive-pixel ("+1") areas, also on float coordinates; a trajectory's volume sums
  all of its boxes (so boxes past the duration count); spans are half-open and touching spans give 0.
* Per video, predictions are sorted by score with a stable sort (ties keep input order) and
  matched greedily: each takes the not-yet-matched ground truth with the same triplet (exact
  string equality) and the largest ``min(vIoU_sub, vIoU_obj) >= 0.5``, the first in ground-truth
  order on ties. A matched prediction whose score is not finite counts as a false positive.
* Precision and recall are float32; AP is the all-point (area) VOC AP on them; mAP is the
  unweighted mean over ground-truth videos with at least one relation (a video without
  predictions scores 0; videos only in the predictions are ignored).
* R@K pools over videos: true positives among each video's top ``min(K, n)`` predictions, summed,
  over all ground-truth relations, in float32.
* P@k per video: the distinct predicted triplets in score order (first occurrence kept); hits in
  the first ``c = min(k, m)`` over ``c`` (``m`` distinct triplets; 0 when ``m = 0``), float32;
  the mean is float32 unless some video had no predictions (then float64), as numpy does there.

Variants: ``"official"`` (VidVRD-helper master), ``"vru"`` (VRU'20/'21 server: top 200
predictions per video for detection and tagging, results rounded to 4 decimals), ``"vidvrd2"``
(VidVRD-II: no +1 on areas, P@k divides by ``k``). Where the official code crashes pyvrel does
not: no ground-truth relation at all raises ``ValueError`` (every variant), and no prediction at
all returns zeros (with a ``RuntimeWarning`` for ``"official"``, whose code raises IndexError).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import numpy as np

from pyvrel._gc import paused_gc
from pyvrel.data.relations import Relation, Triplet
from pyvrel.data.table import RelationTable
from pyvrel.eval._official import EPS32, VARIANTS, Variant, settings, viou_official, voc_ap

__all__ = [
    "VARIANTS",
    "viou_official",
    "voc_ap",
    "VideoMatch",
    "match_video",
    "evaluate_relations",
    "zero_shot_triplets",
    "filter_groundtruth",
    "filter_predictions",
    "evaluate_zero_shot",
    "evaluate_predicate_split",
]


# ---- one video ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoMatch:
    """Greedy matching of one video's predictions (already truncated for ``"vru"``).

    Attributes:
        order (ndarray[n] int64): prediction indices in score order (stable, descending).
        tp (ndarray[n] bool): true positive flags in that order.
        matched (ndarray[n] int64): the ground-truth index each prediction matched, or -1.
        n_gt: number of ground-truth relations.
    """

    order: np.ndarray
    tp: np.ndarray
    matched: np.ndarray
    n_gt: int

    def ap(self) -> float:
        """All-point AP from float32 precision/recall."""
        cum_tp = np.cumsum(self.tp).astype(np.float32)
        cum_fp = np.cumsum(~self.tp).astype(np.float32)
        rec = cum_tp / np.float32(max(float(self.n_gt), EPS32))
        prec = cum_tp / np.maximum(cum_tp + cum_fp, np.float32(EPS32))
        return voc_ap(rec, prec)


def _ranges(first: np.ndarray, count: np.ndarray) -> np.ndarray:
    """``concatenate([arange(f, f + c) for f, c in zip(first, count)])``, int64."""
    total = int(count.sum())
    return np.repeat(first - (np.cumsum(count) - count), count) + np.arange(total, dtype=np.int64)


@dataclass
class _Matching:
    """Greedy matching of many videos at once. ``R`` predictions (after ``"vru"``'s top-200), grouped
    by video (in the order of ``videos``) and in score order inside each (stable, descending).

    Attributes:
        row (ndarray[R] int64): the prediction's row in the prediction table.
        video (ndarray[R] int64): its video, an index into ``videos``.
        rank (ndarray[R] int64): its position in its video's score order.
        local (ndarray[R] int64): its index in its video's prediction list.
        matched (ndarray[R] int64): the ground-truth index (within the video) it matched, or -1.
        tp (ndarray[R] bool): matched and its score is finite.
        in_gt (ndarray[R] bool): its video's ground truth has its triplet.
        n_gt, n_pred (ndarray[V] int64): relations per video.
        gt_first (ndarray[V] int64): the videos' first rows in the ground-truth table.
        start (ndarray[V + 1] int64): video ``v``'s predictions are positions ``start[v]:start[v + 1]``.
    """

    row: np.ndarray
    video: np.ndarray
    rank: np.ndarray
    local: np.ndarray
    matched: np.ndarray
    tp: np.ndarray
    in_gt: np.ndarray
    n_gt: np.ndarray
    n_pred: np.ndarray
    gt_first: np.ndarray
    start: np.ndarray

    def video_match(self, v: int) -> VideoMatch:
        s, e = self.start[v: v + 2].tolist()
        return VideoMatch(self.local[s:e], self.tp[s:e], self.matched[s:e], int(self.n_gt[v]))


def _match(gt: RelationTable, gt_videos: np.ndarray, pred: RelationTable, top: int | None, pixel_offset: float,
           viou_threshold: float) -> _Matching:
    """Match the predictions of the ground-truth videos ``gt_videos`` (indices into ``gt.videos``)."""
    V = len(gt_videos)
    gt_first, n_gt = gt.offsets[gt_videos], gt.counts()[gt_videos]
    where = {vid: v for v, vid in enumerate(pred.videos)}
    pv = np.array([where.get(gt.videos[v], -1) for v in gt_videos.tolist()], dtype=np.int64)  # -1: none
    p_first = np.append(pred.offsets[:-1], 0)[pv]
    n_all = np.append(pred.counts(), 0)[pv]
    rows = _ranges(p_first, n_all)
    video = np.repeat(np.arange(V, dtype=np.int64), n_all)
    order = np.lexsort((-pred.score[rows], video))  # by video, then by score descending; stable
    rows, video = rows[order], video[order]
    rank = np.arange(len(rows), dtype=np.int64) - np.repeat(np.cumsum(n_all) - n_all, n_all)
    n_pred = n_all
    if top is not None:
        keep = rank < top
        rows, video, rank = rows[keep], video[keep], rank[keep]
        n_pred = np.minimum(n_all, top)
    local = rows - p_first[video]

    # candidate pairs: equal triplets in the same video, ground truth in index order
    gt_ids = {t: i for i, t in enumerate(gt.triplets)}
    to_gt = np.fromiter(map(gt_ids.get, pred.triplets, repeat(-1)), dtype=np.int64, count=len(pred.triplets))
    gt_triplet = to_gt[pred.triplet_id[rows]]
    T = max(len(gt.triplets), 1)
    g_rows = _ranges(gt_first, n_gt)
    g_key = np.repeat(np.arange(V, dtype=np.int64), n_gt) * T + gt.triplet_id[g_rows]
    g_sorted = np.argsort(g_key, kind="stable")
    p_key = np.where(gt_triplet >= 0, video * T + gt_triplet, -1)
    lo = np.searchsorted(g_key[g_sorted], p_key, "left")
    n_pairs = np.where(p_key >= 0, np.searchsorted(g_key[g_sorted], p_key, "right") - lo, 0)
    pair_p = np.repeat(np.arange(len(rows), dtype=np.int64), n_pairs)
    pair_g = g_rows[g_sorted[_ranges(lo, n_pairs)]]
    ov = _pair_overlaps(pred, rows[pair_p], gt, pair_g, pixel_offset)

    matched = np.full(len(rows), -1, dtype=np.int64)
    keep = np.flatnonzero(ov >= viou_threshold)
    if len(keep):
        # Greedy in score order; each video's ground-truth rows are its own, so one "taken" set serves all.
        hits_p, hits_g = [], []
        taken: set[int] = set()
        cur, best_g, best = -1, -1, -math.inf
        for p, g, o in zip(pair_p[keep].tolist(), pair_g[keep].tolist(), ov[keep].tolist()):
            if p != cur:
                if best_g >= 0:
                    taken.add(best_g)
                    hits_p.append(cur)
                    hits_g.append(best_g)
                cur, best_g, best = p, -1, -math.inf
            if o > best and g not in taken:  # strict: the lowest ground-truth index wins ties
                best_g, best = g, o
        if best_g >= 0:
            hits_p.append(cur)
            hits_g.append(best_g)
        hp = np.array(hits_p, dtype=np.int64)
        matched[hp] = np.array(hits_g, dtype=np.int64) - gt_first[video[hp]]
    tp = (matched >= 0) & np.isfinite(pred.score[rows])
    return _Matching(rows, video, rank, local, matched, tp, n_pairs > 0, n_gt, n_pred, gt_first,
                     np.concatenate([[0], np.cumsum(n_pred)]).astype(np.int64))


def _windows(table: RelationTable, first: np.ndarray, T: int) -> np.ndarray:
    """``boxes[first[k]: first[k] + T]`` for every ``k`` as a contiguous ``(K, T, 4)`` array (rows
    past a relation's boxes hold other boxes, or repeat the last row at the end of the array; the
    tube ops never read them)."""
    b = table.boxes
    n = len(b)
    if n < T:
        b = np.concatenate([b, np.zeros((T - n, 4))])
    view = np.lib.stride_tricks.as_strided(b, shape=(len(b) - T + 1, T, 4), strides=(b.strides[0],) + b.strides,
                                           writeable=False)
    out = view[np.minimum(first, len(b) - T)]  # block copies
    for k in np.flatnonzero(first > len(b) - T).tolist():  # windows running past the end
        out[k] = b[np.minimum(first[k] + np.arange(T), len(b) - 1)]
    return out


def _pair_overlaps(a: RelationTable, ia: np.ndarray, b: RelationTable, ib: np.ndarray, pixel_offset: float,
                   budget: int = 1 << 20, use_ext: bool | None = None) -> np.ndarray:
    """``min(vIoU_sub, vIoU_obj)`` of the relation pairs ``(a[ia[k]], b[ib[k]])``, float64 ``(P,)``.

    With the C++ extension (``use_ext=None``: when built) one call scores every pair straight from
    the tables' box arrays (:mod:`pyvrel.eval._viou_pairs`, the arithmetic of
    :func:`pyvrel.ops.tube_iou_aligned`). Otherwise the pairs are sorted by length and scored by
    :func:`pyvrel.ops.tube_iou_aligned` in batches of at most ``budget`` padded boxes. A pair with
    an over-long trajectory (more boxes than frames, which the official volume counts) is
    recomputed with :func:`viou_official`.
    """
    from pyvrel.eval import _viou_pairs

    la = a.duration[ia, 1] - a.duration[ia, 0]
    lb = b.duration[ib, 1] - b.duration[ib, 0]
    ov = np.zeros(len(ia))
    if (_viou_pairs.available() if use_ext is None else use_ext) and len(ia):
        _viou_pairs.relation_viou_pairs(_columns(a), ia, _columns(b), ib, pixel_offset, ov)
    else:
        import torch

        from pyvrel.ops import Tubes, tube_iou_aligned

        frames = np.maximum(la, lb)
        order = np.argsort(frames, kind="stable")
        lo = 0
        while lo < len(order):
            size = 2 * np.arange(1, len(order) - lo + 1) * frames[order[lo:]]  # padded boxes of order[lo:hi]
            hi = lo + max(1, int(np.searchsorted(size, budget, "right")))
            sel = order[lo:hi]
            T = int(frames[sel].max())
            x, y = ia[sel], ib[sel]
            A = _windows(a, np.concatenate([a.sub_rows[x, 0], a.obj_rows[x, 0]]), T)
            B = _windows(b, np.concatenate([b.sub_rows[y, 0], b.obj_rows[y, 0]]), T)
            ta = Tubes(torch.from_numpy(A), torch.from_numpy(np.tile(a.duration[x, 0], 2)),
                       torch.from_numpy(np.tile(la[sel], 2)))
            tb = Tubes(torch.from_numpy(B), torch.from_numpy(np.tile(b.duration[y, 0], 2)),
                       torch.from_numpy(np.tile(lb[sel], 2)))
            v = tube_iou_aligned(ta, tb, pixel_offset).numpy()
            ov[sel] = np.minimum(v[: len(sel)], v[len(sel):])
            lo = hi
    over_a = np.maximum(a.sub_rows[ia, 1], a.obj_rows[ia, 1]) > la
    over_b = np.maximum(b.sub_rows[ib, 1], b.obj_rows[ib, 1]) > lb
    for k in np.flatnonzero(over_a | over_b).tolist():
        ov[k] = min(viou_official(*_traj(a, ia[k], a.sub_rows), *_traj(b, ib[k], b.sub_rows), pixel_offset),
                    viou_official(*_traj(a, ia[k], a.obj_rows), *_traj(b, ib[k], b.obj_rows), pixel_offset))
    return ov


def _columns(t: RelationTable) -> tuple[np.ndarray, ...]:
    """``(boxes, first subject row, first object row, first frame, frames)``, contiguous, for the C++ kernel."""
    i64 = lambda x: np.ascontiguousarray(x, dtype=np.int64)  # noqa: E731
    return (np.ascontiguousarray(t.boxes, dtype=np.float64), i64(t.sub_rows[:, 0]), i64(t.obj_rows[:, 0]),
            i64(t.duration[:, 0]), i64(t.duration[:, 1] - t.duration[:, 0]))


def _traj(t: RelationTable, i: int, rows: np.ndarray) -> tuple[list[list[float]], list[int]]:
    first, n = rows[i].tolist()
    return t.boxes[first: first + n].tolist(), t.duration[i].tolist()


def _as_table(relations: Mapping[str, Sequence[Relation]] | RelationTable, scores: bool) -> RelationTable:
    if isinstance(relations, RelationTable):
        if scores and relations.score is None:
            raise ValueError("evaluate_relations: the prediction table has no scores (a ground-truth table?)")
        return relations
    return RelationTable.from_relations(relations, scores=scores)


def match_video(gt: Sequence[Relation], preds: Sequence[Relation], *, viou_threshold: float = 0.5,
                pixel_offset: float = 1) -> VideoMatch:
    """Greedy matching of one video's predictions to its ground truth (see the module docstring).

    Only the (prediction, ground truth) pairs with equal triplets are scored (no other pair can
    match), in float64 with the arithmetic of :func:`pyvrel.ops.tube_iou_aligned`, which with
    ``pixel_offset=1`` reproduces the official arithmetic bit for bit.
    """
    g = RelationTable.from_relations({"": gt}, scores=False)
    p = RelationTable.from_relations({"": preds})
    return _match(g, np.zeros(1, dtype=np.int64), p, None, pixel_offset, viou_threshold).video_match(0)


def _tag_precisions(m: _Matching, pred: RelationTable, ks: Sequence[int], over_k: bool) -> dict[int, np.ndarray]:
    """P@k per video (``(V,)`` float64 holding float32 values; NaN where a video has no prediction):
    the distinct predicted triplets in score order (first occurrence kept), hits over ``min(k, m)``
    (or ``k``)."""
    V = len(m.n_gt)
    key = m.video * max(len(pred.triplets), 1) + pred.triplet_id[m.row]
    _, first = np.unique(key, return_index=True)
    first = np.sort(first)  # distinct (video, triplet) in video then score order
    video = m.video[first]
    n_distinct = np.bincount(video, minlength=V)
    pos = np.arange(len(first)) - np.repeat(np.cumsum(n_distinct) - n_distinct, n_distinct)
    hit = m.in_gt[first]
    out = {}
    for k in ks:
        c = np.full(V, k) if over_k else np.minimum(k, n_distinct)
        hits = np.bincount(video, weights=hit & (pos < c[video]), minlength=V)
        with np.errstate(invalid="ignore", divide="ignore"):
            p = hits.astype(np.float32) / c.astype(np.float32)
        out[k] = np.where(n_distinct > 0, p, np.nan).astype(np.float64)
    return out


# ---- the whole evaluation -------------------------------------------------------------------------


def _mean_tag(values: np.ndarray) -> float:
    # The official mean: over np.float32 values it stays float32; a video without predictions
    # contributes a Python 0. (NaN here), which makes numpy average in float64.
    if not np.isnan(values).any():
        return float(np.mean(values.astype(np.float32)))
    return float(np.mean(np.nan_to_num(values, nan=0.0)))


def evaluate_relations(
    groundtruth: Mapping[str, Sequence[Relation]] | RelationTable,
    prediction: Mapping[str, Sequence[Relation]] | RelationTable,
    variant: str = "official",
    *,
    viou_threshold: float = 0.5,
    det_nreturns: Sequence[int] = (50, 100),
    tag_nreturns: Sequence[int] = (1, 5, 10),
    mean_recall: bool = False,
    per_video: bool = False,
    per_predicate: bool = False,
) -> dict[str, Any]:
    """Relation detection and tagging scores.

    Args:
        groundtruth: video id -> ground-truth relations (:func:`pyvrel.data.load_groundtruth`), or
            a :class:`~pyvrel.data.RelationTable` of them. Videos with no relation are skipped, as
            the official code does.
        prediction: video id -> predicted relations (``PredictionFile.results``), or a
            :class:`~pyvrel.data.RelationTable` (:func:`pyvrel.data.read_prediction_table`, the
            fast path: records are converted to a table first).
        variant: ``"official"``, ``"vru"`` or ``"vidvrd2"`` (module docstring).
        mean_recall: also report per-predicate recall ``mR@K`` for each ``K`` of ``det_nreturns``
            and ``Mean`` (the average of the ``mR@K`` and ``R@K``, DLL's summary metric). ``mR@K``:
            for each predicate in the ground truth, true positives of that predicate among the
            per-video top-K predictions, pooled over videos, over its ground-truth count; then
            the mean over those predicates.
        per_video: also return ``per_video[vid] = {"AP", "P@k"..., "TP@K"..., "n_gt", "n_pred"}``.
        per_predicate: with ``mean_recall``, also return ``per_predicate[predicate] = {"n_gt", "R@K"...}``,
            the recalls ``mR@K`` averages (in the ground truth's order of first appearance).

    Returns:
        ``{"variant", "RelDet": {"mAP", "R@50", "R@100"[, "mR@50", "mR@100", "Mean"]},
        "RelTag": {"P@1", "P@5", "P@10"}, "videos": n}`` (+ ``"per_video"``, ``"per_predicate"``), Python floats.

    Raises:
        ValueError: no ground-truth video has a relation (the official code raises ValueError too).
    """
    cfg = settings(variant)
    with paused_gc():
        return _evaluate(groundtruth, prediction, cfg, variant, viou_threshold, det_nreturns, tag_nreturns,
                         mean_recall, per_video, per_predicate)


def _evaluate(groundtruth: Mapping[str, Sequence[Relation]] | RelationTable,
              prediction: Mapping[str, Sequence[Relation]] | RelationTable, cfg: Variant, variant: str,
              viou_threshold: float, det_nreturns: Sequence[int], tag_nreturns: Sequence[int], mean_recall: bool,
              per_video: bool, per_predicate: bool = False) -> dict[str, Any]:
    gt, pred = _as_table(groundtruth, False), _as_table(prediction, True)
    videos = np.flatnonzero(gt.counts() > 0)
    if not len(videos):
        raise ValueError("evaluate_relations: the ground truth has no relation in any video (the official code "
                         "raises ValueError from np.concatenate here)")
    m = _match(gt, videos, pred, cfg.top, cfg.pixel_offset, viou_threshold)
    V = len(videos)
    aps = [m.video_match(v).ap() for v in range(V)]
    tags = _tag_precisions(m, pred, tag_nreturns, cfg.tag_over_k)
    tp_at = {k: np.bincount(m.video, weights=m.tp & (m.rank < k), minlength=V).astype(np.int64) for k in det_nreturns}

    det: dict[str, float] = {}
    rt: dict[str, float] = {}
    recalls: dict[str, dict[str, float]] = {}
    if m.start[-1] == 0:
        if cfg.warn_on_empty:
            warnings.warn("evaluate_relations: no prediction for any ground-truth video; returning zeros (the "
                          "official code raises IndexError here)", RuntimeWarning, stacklevel=3)
        det["mAP"] = 0.0
        det.update({f"R@{k}": 0.0 for k in det_nreturns})
        rt.update({f"P@{k}": 0.0 for k in tag_nreturns})
    else:
        det["mAP"] = float(np.mean(np.array(aps, dtype=np.float64)))
        n_gt_total = np.float32(int(m.n_gt.sum()))
        det.update({f"R@{k}": float(np.float32(int(tp_at[k].sum())) / n_gt_total) for k in det_nreturns})
        rt.update({f"P@{k}": _mean_tag(tags[k]) for k in tag_nreturns})
    if mean_recall:
        # predicates in order of first appearance in the ground truth (the official dict order)
        rows = _ranges(m.gt_first, m.n_gt)
        predicates, code = np.unique([gt.triplets[t][1] for t in gt.triplet_id[rows].tolist()], return_inverse=True)
        _, first = np.unique(code, return_index=True)
        counts = np.bincount(code, minlength=len(predicates))
        where = np.full(len(gt), -1, dtype=np.int64)
        where[rows] = code
        order = np.argsort(first).tolist()
        recalls = {str(predicates[p]): {"n_gt": int(counts[p])} for p in order}
        for k in det_nreturns:
            hit = m.tp & (m.rank < k)
            hits = np.bincount(where[m.gt_first[m.video[hit]] + m.matched[hit]], minlength=len(predicates))
            for p in order:
                recalls[str(predicates[p])][f"R@{k}"] = int(hits[p]) / int(counts[p])
            det[f"mR@{k}"] = float(np.mean([int(hits[p]) / int(counts[p]) for p in order]))
        parts = [det[f"mR@{k}"] for k in det_nreturns] + [det[f"R@{k}"] for k in det_nreturns]
        det["Mean"] = float(np.mean(parts))
    if cfg.decimals is not None:
        det = {k: round(v, cfg.decimals) for k, v in det.items()}
        rt = {k: round(v, cfg.decimals) for k, v in rt.items()}
    out: dict[str, Any] = {"variant": variant, "RelDet": det, "RelTag": rt, "videos": V}
    if per_predicate and mean_recall:
        out["per_predicate"] = recalls
    if per_video:
        out["per_video"] = {
            gt.videos[g]: {"AP": aps[v], **{f"P@{k}": float(np.nan_to_num(tags[k][v], nan=0.0)) for k in tag_nreturns},
                           **{f"TP@{k}": int(tp_at[k][v]) for k in det_nreturns}, "n_gt": int(m.n_gt[v]),
                           "n_pred": int(m.n_pred[v])}
            for v, g in enumerate(videos.tolist())}
    return out


# ---- zero-shot and splits ----------------------------------------------------------------------


_Relations = Mapping[str, Sequence[Relation]] | RelationTable


def _triplets(relations: Mapping[str, Iterable[Relation]] | RelationTable) -> set[Triplet]:
    if isinstance(relations, RelationTable):
        return {relations.triplets[t] for t in np.unique(relations.triplet_id).tolist()}
    return {tuple(r.triplet) for rels in relations.values() for r in rels}


def _where_triplet(relations: _Relations, keep: Callable[[Triplet], bool], drop_empty: bool) -> _Relations:
    """The relations whose triplet satisfies ``keep``, from records or a table."""
    if isinstance(relations, RelationTable):
        return relations.where_triplet(keep, drop_empty_videos=drop_empty)
    return (filter_groundtruth if drop_empty else filter_predictions)(relations, lambda r: keep(tuple(r.triplet)))


def zero_shot_triplets(train_groundtruth: _Relations | Iterable[Triplet], test_groundtruth: _Relations) -> set[Triplet]:
    """Triplets of the test ground truth that never occur in training (``test - train``).

    ``train_groundtruth`` may be relations (a mapping or a table) or an iterable of triplets."""
    train = (_triplets(train_groundtruth) if isinstance(train_groundtruth, (Mapping, RelationTable))
             else {tuple(t) for t in train_groundtruth})
    return _triplets(test_groundtruth) - train


def filter_groundtruth(groundtruth: Mapping[str, Sequence[Relation]],
                       keep: Callable[[Relation], bool]) -> dict[str, list[Relation]]:
    """Keep the relations for which ``keep`` holds; videos left without any are dropped (the
    official zero-shot evaluation uses only videos with zero-shot ground truth, helper #14)."""
    out = {vid: [r for r in rels if keep(r)] for vid, rels in groundtruth.items()}
    return {vid: rels for vid, rels in out.items() if rels}


def filter_predictions(prediction: Mapping[str, Sequence[Relation]],
                       keep: Callable[[Relation], bool]) -> dict[str, list[Relation]]:
    """Keep the predicted relations for which ``keep`` holds (videos are kept, possibly empty)."""
    return {vid: [r for r in rels if keep(r)] for vid, rels in prediction.items()}


def evaluate_zero_shot(
    groundtruth: _Relations,
    prediction: _Relations,
    train: _Relations | Iterable[Triplet],
    variant: str = "official",
    *,
    generalized: bool = False,
    **kwargs: Any,
) -> dict[str, Any]:
    """Zero-shot evaluation: ground truth restricted to triplets unseen in ``train``.

    ``generalized=False`` (VidVRD-helper's default, "new") also restricts the predictions to those
    triplets; ``generalized=True`` keeps every prediction (helper "old", VidVRD-II's "generalized
    zero-shot", the VRU'20 server). Other arguments as in :func:`evaluate_relations`.
    """
    zs = zero_shot_triplets(train, groundtruth)
    gt = _where_triplet(groundtruth, zs.__contains__, True)
    pred = prediction if generalized else _where_triplet(prediction, zs.__contains__, False)
    out = evaluate_relations(gt, pred, variant, **kwargs)
    out["triplets"] = len(zs)
    return out


def evaluate_predicate_split(
    groundtruth: _Relations,
    prediction: _Relations,
    predicates: Iterable[str],
    variant: str = "official",
    **kwargs: Any,
) -> dict[str, Any]:
    """Open-vocabulary split evaluation (UASAN's "novel" split): ground truth and predictions
    restricted to relations whose predicate is in ``predicates`` (all object categories kept);
    videos without such ground truth are dropped. The "all" split is :func:`evaluate_relations`."""
    keep = set(predicates)
    gt = _where_triplet(groundtruth, lambda t: t[1] in keep, True)
    pred = _where_triplet(prediction, lambda t: t[1] in keep, False)
    return evaluate_relations(gt, pred, variant, **kwargs)

