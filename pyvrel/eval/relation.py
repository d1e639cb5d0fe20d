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
from typing import Any

import numpy as np
import torch

from pyvrel.data._json import paused_gc
from pyvrel.data.relations import Relation, Triplet
from pyvrel.ops.types import Tubes

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

VARIANTS = ("official", "vru", "vidvrd2")
_EPS32 = np.finfo(np.float32).eps


@dataclass(frozen=True)
class _Variant:
    pixel_offset: float
    top: int | None
    tag_over_k: bool
    decimals: int | None
    warn_on_empty: bool


_VARIANT = {
    "official": _Variant(1.0, None, False, None, True),
    "vru": _Variant(1.0, 200, False, 4, False),
    "vidvrd2": _Variant(0.0, None, True, None, False),
}


def _variant(name: str) -> _Variant:
    if name not in _VARIANT:
        raise ValueError(f"variant must be one of {VARIANTS}, got {name!r}")
    return _VARIANT[name]


# ---- the official arithmetic, transcribed -------------------------------------------------------


def viou_official(traj_1: Sequence[Sequence[float]], duration_1: Sequence[int], traj_2: Sequence[Sequence[float]],
                  duration_2: Sequence[int], pixel_offset: float = 1) -> float:
    """The official vIoU in plain Python (``specs/evaluation.md`` §3.1): the executable spec.

    ``traj_k[i]`` is the box at frame ``duration_k[0] + i``. Intersections run over the frames
    both durations cover; each volume sums ``(x2 - x1 + off) * (y2 - y1 + off)`` over *all* boxes of
    its list (unclamped). Disjoint or touching durations give 0. Unlike the official code, a
    union that is not positive gives 0 instead of dividing by it (VidVRD-II divides by
    ``max(union, 1e-8)``; the two agree whenever any box has positive area).
    """
    s1, e1 = duration_1
    s2, e2 = duration_2
    if s1 >= e2 or e1 <= s2:
        return 0.0
    inter = 0.0
    for t in range(max(s1, s2), min(e1, e2)):
        a, b = traj_1[t - s1], traj_2[t - s2]
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]) + pixel_offset)
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + pixel_offset)
        inter += w * h
    v1 = sum((a[2] - a[0] + pixel_offset) * (a[3] - a[1] + pixel_offset) for a in traj_1)
    v2 = sum((b[2] - b[0] + pixel_offset) * (b[3] - b[1] + pixel_offset) for b in traj_2)
    union = v1 + v2 - inter
    return float(inter) / union if union > 0 else 0.0


def voc_ap(rec: np.ndarray, prec: np.ndarray) -> float:
    """All-point (area) VOC AP of a precision/recall curve, as the official ``voc_ap`` with
    ``use_07_metric=False``: pad with (0, 0) and (1, 0), take the running maximum of precision
    from the right, and sum precision times the recall steps."""
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


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
        rec = cum_tp / np.float32(max(float(self.n_gt), _EPS32))
        prec = cum_tp / np.maximum(cum_tp + cum_fp, np.float32(_EPS32))
        return voc_ap(rec, prec)


def _sort_order(preds: Sequence[Relation]) -> np.ndarray:
    scores = np.fromiter((p.score for p in preds), dtype=np.float64, count=len(preds))
    return np.argsort(-scores, kind="stable")


@dataclass
class _Job:
    """One video's matching problem. The pairs ``(preds[cand[pi[k]]], gt[gj[k]])`` have equal
    triplets; ``order`` is the predictions' score order; ``tid[i]`` numbers prediction ``i``'s
    triplet (first occurrence first) and ``hit[t]`` says whether triplet ``t`` is in the ground
    truth."""

    gt: Sequence[Relation]
    preds: Sequence[Relation]
    cand: list[int]
    pi: np.ndarray
    gj: np.ndarray
    order: np.ndarray
    tid: np.ndarray
    hit: np.ndarray

    @classmethod
    def build(cls, gt: Sequence[Relation], preds: Sequence[Relation]) -> "_Job":
        by_triplet: dict[tuple, list[int]] = {}
        for j, g in enumerate(gt):
            by_triplet.setdefault(tuple(g.triplet), []).append(j)
        ids: dict[tuple, int] = {}
        tid = np.fromiter((ids.setdefault(tuple(p.triplet), len(ids)) for p in preds), dtype=np.int64,
                          count=len(preds))
        groups = [by_triplet.get(t, ()) for t in ids]
        hit = np.array([bool(g) for g in groups], dtype=bool)
        cand = np.flatnonzero(hit[tid]) if len(preds) else np.zeros(0, dtype=np.int64)
        pi, gj = [], []
        for r, t in enumerate(tid[cand].tolist()):
            js = groups[t]
            pi.extend([r] * len(js))
            gj.extend(js)
        return cls(gt, preds, cand.tolist(), np.array(pi, dtype=np.int64), np.array(gj, dtype=np.int64),
                   _sort_order(preds), tid, hit)


class _Flat:
    """Trajectories of many relations in one float64 array ``(sum of 2 x duration, 4)``: for
    relation ``u``, subject boxes at ``sub[u]`` and object boxes at ``obj[u]``, ``length[u]`` each
    (boxes past a duration are left out; ``overlong[u]`` flags them)."""

    def __init__(self) -> None:
        self.parts: list[np.ndarray] = []
        self.starts: list[int] = []
        self.lengths: list[int] = []
        self.over: list[bool] = []
        self.size = 0

    def add(self, relations: Sequence[Relation], index: Sequence[int]) -> int:
        """Append ``relations[i]`` for ``i`` in ``index``; returns the id of the first one."""
        first = len(self.lengths)
        for i in index:
            r = relations[i]
            b, e = r.duration
            n = e - b
            sub, obj = r.sub_traj, r.obj_traj
            if len(sub) > n or len(obj) > n:
                self.parts += [sub[:n], obj[:n]]
                self.over.append(True)
            else:
                self.parts += [sub, obj]
                self.over.append(False)
            self.starts.append(b)
            self.lengths.append(n)
        return first

    def finish(self, pad: int) -> None:
        """Build the arrays; ``pad`` zero rows at the end let every relation be read as a window
        of ``pad`` rows."""
        self.boxes = np.concatenate(self.parts + [np.zeros((pad, 4))]).astype(np.float64, copy=False)
        self.length = np.array(self.lengths, dtype=np.int64)
        self.start = np.array(self.starts, dtype=np.int64)
        self.overlong = np.array(self.over, dtype=bool)
        ends = np.cumsum(np.repeat(self.length, 2))
        begins = ends - np.repeat(self.length, 2)
        self.sub, self.obj = begins[0::2], begins[1::2]

    def windows(self, offsets: np.ndarray, T: int) -> np.ndarray:
        """``boxes[offsets[k]: offsets[k] + T]`` for every ``k``, as a contiguous ``(K, T, 4)``
        array (rows past a relation's length hold other boxes; the tube ops never read them)."""
        b = self.boxes
        view = np.lib.stride_tricks.as_strided(b, shape=(len(b) - T + 1, T, 4), strides=(b.strides[0],) + b.strides,
                                               writeable=False)
        return view[offsets]


def _pair_overlaps(jobs: Sequence[_Job], pixel_offset: float, budget: int = 1 << 20) -> list[np.ndarray]:
    """``min(vIoU_sub, vIoU_obj)`` of every job's pairs, float64 ``(P,)`` per job.

    The pairs of all videos are sorted by length and scored by :func:`pyvrel.ops.tube_iou_aligned`
    in a few batches of at most ``budget`` padded boxes (little padding, few calls). A pair with an
    over-long trajectory (more boxes than frames, which the official volume counts) is recomputed
    with :func:`viou_official`.
    """
    from pyvrel.ops import tube_iou_aligned

    preds, gts = _Flat(), _Flat()
    pa, gb, sizes = [], [], []
    for job in jobs:
        p0 = preds.add(job.preds, job.cand)
        g0 = gts.add(job.gt, range(len(job.gt)))
        pa.append(job.pi + p0)
        gb.append(job.gj + g0)
        sizes.append(len(job.pi))
    longest = max(max(preds.lengths, default=0), max(gts.lengths, default=0))
    preds.finish(longest)
    gts.finish(longest)
    pa_all = np.concatenate(pa) if pa else np.zeros(0, dtype=np.int64)
    gb_all = np.concatenate(gb) if gb else np.zeros(0, dtype=np.int64)
    ov = np.zeros(len(pa_all))
    frames = np.maximum(preds.length[pa_all], gts.length[gb_all])
    order = np.argsort(frames, kind="stable")
    lo = 0
    while lo < len(order):
        hi = lo + 1
        while hi < len(order) and 2 * (hi + 1 - lo) * frames[order[hi]] <= budget:
            hi += 1
        sel = order[lo:hi]
        T = int(frames[sel].max())
        a, b = pa_all[sel], gb_all[sel]
        la, lb = np.concatenate([preds.length[a]] * 2), np.concatenate([gts.length[b]] * 2)
        A = preds.windows(np.concatenate([preds.sub[a], preds.obj[a]]), T)
        B = gts.windows(np.concatenate([gts.sub[b], gts.obj[b]]), T)
        ta = Tubes(torch.from_numpy(A), torch.from_numpy(np.concatenate([preds.start[a]] * 2)), torch.from_numpy(la))
        tb = Tubes(torch.from_numpy(B), torch.from_numpy(np.concatenate([gts.start[b]] * 2)), torch.from_numpy(lb))
        v = tube_iou_aligned(ta, tb, pixel_offset).numpy()
        ov[sel] = np.minimum(v[: len(sel)], v[len(sel):])
        lo = hi
    out = np.split(ov, np.cumsum(sizes)[:-1]) if sizes else []
    for k, job in enumerate(jobs):
        if not len(job.pi):
            continue
        long_pairs = preds.overlong[pa[k]] | gts.overlong[gb[k]]
        for q in np.flatnonzero(long_pairs).tolist():
            p, g = job.preds[job.cand[job.pi[q]]], job.gt[job.gj[q]]
            out[k][q] = min(
                viou_official(p.sub_traj.tolist(), p.duration, g.sub_traj.tolist(), g.duration, pixel_offset),
                viou_official(p.obj_traj.tolist(), p.duration, g.obj_traj.tolist(), g.duration, pixel_offset))
    return out


def _greedy(job: _Job, pair_ov: np.ndarray, viou_threshold: float) -> VideoMatch:
    n, m = len(job.preds), len(job.gt)
    tp = np.zeros(n, dtype=bool)
    matched = np.full(n, -1, dtype=np.int64)
    keep = np.flatnonzero(pair_ov >= viou_threshold)
    if not len(keep):
        return VideoMatch(job.order, tp, matched, m)
    rank = np.empty(n, dtype=np.int64)
    rank[job.order] = np.arange(n)
    options: dict[int, list[tuple[int, float]]] = {}  # candidate row -> [(gt index, overlap)] in gt order
    for r, j, o in zip(job.pi[keep].tolist(), job.gj[keep].tolist(), pair_ov[keep].tolist()):
        options.setdefault(r, []).append((j, o))
    cand_rank = rank[np.asarray(job.cand, dtype=np.int64)].tolist()
    taken: set[int] = set()
    for r in sorted(options, key=cand_rank.__getitem__):
        best_j, best = -1, -math.inf
        for j, o in options[r]:  # in ground-truth order (pairs are built that way)
            if j not in taken and o > best:  # strict: the lowest ground-truth index wins ties
                best_j, best = j, o
        if best_j >= 0:
            taken.add(best_j)
            k = cand_rank[r]
            matched[k] = best_j
            tp[k] = math.isfinite(job.preds[job.cand[r]].score)
    return VideoMatch(job.order, tp, matched, m)


def match_video(gt: Sequence[Relation], preds: Sequence[Relation], *, viou_threshold: float = 0.5,
                pixel_offset: float = 1) -> VideoMatch:
    """Greedy matching of one video's predictions to its ground truth (see the module docstring).

    Only the (prediction, ground truth) pairs with equal triplets are scored (no other pair can
    match), with :func:`pyvrel.ops.tube_iou_aligned` in float64, which with ``pixel_offset=1``
    reproduces the official arithmetic bit for bit.
    """
    job = _Job.build(gt, preds)
    return _greedy(job, _pair_overlaps([job], pixel_offset)[0], viou_threshold)


def _tag_precisions(job: _Job, ks: Sequence[int], over_k: bool) -> dict[int, Any]:
    ranked = job.tid[job.order]
    _, first = np.unique(ranked, return_index=True)
    hits = job.hit[ranked[np.sort(first)]]  # distinct triplets in score order, first occurrence kept
    m = len(hits)
    out: dict[int, Any] = {}
    for k in ks:
        if m == 0:
            out[k] = 0.0  # a Python float, as the official code's fallback
        else:
            c = k if over_k else min(k, m)
            out[k] = np.float32(int(hits[:c].sum())) / np.float32(c)
    return out


# ---- the whole evaluation -------------------------------------------------------------------------


def _mean_tag(values: list[Any]) -> float:
    # np.mean over np.float32 entries stays float32; a Python 0. (no predictions) makes it float64.
    if all(isinstance(v, np.float32) for v in values):
        return float(np.mean(np.array(values, dtype=np.float32)))
    return float(np.mean(np.array(values, dtype=np.float64)))


def evaluate_relations(
    groundtruth: Mapping[str, Sequence[Relation]],
    prediction: Mapping[str, Sequence[Relation]],
    variant: str = "official",
    *,
    viou_threshold: float = 0.5,
    det_nreturns: Sequence[int] = (50, 100),
    tag_nreturns: Sequence[int] = (1, 5, 10),
    mean_recall: bool = False,
    per_video: bool = False,
) -> dict[str, Any]:
    """Relation detection and tagging scores.

    Args:
        groundtruth: video id -> ground-truth relations (:func:`pyvrel.data.load_groundtruth`).
            Videos with no relation are skipped, as the official code does.
        prediction: video id -> predicted relations (``PredictionFile.results``).
        variant: ``"official"``, ``"vru"`` or ``"vidvrd2"`` (module docstring).
        mean_recall: also report per-predicate recall ``mR@K`` for each ``K`` of ``det_nreturns``
            and ``Mean`` (the average of the ``mR@K`` and ``R@K``, DLL's summary metric). ``mR@K``:
            for each predicate in the ground truth, true positives of that predicate among the
            per-video top-K predictions, pooled over videos, over its ground-truth count; then
            the mean over those predicates.
        per_video: also return ``per_video[vid] = {"AP", "P@k"..., "TP@K"..., "n_gt", "n_pred"}``.

    Returns:
        ``{"variant", "RelDet": {"mAP", "R@50", "R@100"[, "mR@50", "mR@100", "Mean"]},
        "RelTag": {"P@1", "P@5", "P@10"}, "videos": n}`` (+ ``"per_video"``), Python floats.

    Raises:
        ValueError: no ground-truth video has a relation (the official code raises ValueError too).
    """
    cfg = _variant(variant)
    with paused_gc():
        return _evaluate(groundtruth, prediction, cfg, variant, viou_threshold, det_nreturns, tag_nreturns,
                         mean_recall, per_video)


def _evaluate(groundtruth: Mapping[str, Sequence[Relation]], prediction: Mapping[str, Sequence[Relation]],
              cfg: _Variant, variant: str, viou_threshold: float, det_nreturns: Sequence[int],
              tag_nreturns: Sequence[int], mean_recall: bool, per_video: bool) -> dict[str, Any]:
    videos = [(vid, list(rels)) for vid, rels in groundtruth.items() if len(rels) > 0]
    if not videos:
        raise ValueError("evaluate_relations: the ground truth has no relation in any video (the official code "
                         "raises ValueError from np.concatenate here)")
    n_gt_total = sum(len(g) for _, g in videos)
    aps, tags, pv = [], {k: [] for k in tag_nreturns}, {}
    tp_at = {k: 0 for k in det_nreturns}
    pred_total = 0
    pred_hits: dict[int, dict[str, int]] = {k: {} for k in det_nreturns}
    jobs: list[_Job] = []
    for vid, gt in videos:
        preds = list(prediction.get(vid, []))
        if cfg.top is not None and len(preds) > cfg.top:
            preds = [preds[i] for i in _sort_order(preds)[: cfg.top]]
        pred_total += len(preds)
        jobs.append(_Job.build(gt, preds))
    overlaps = _pair_overlaps(jobs, cfg.pixel_offset)
    for (vid, gt), job, pair_ov in zip(videos, jobs, overlaps):
        preds = job.preds
        mt = _greedy(job, pair_ov, viou_threshold)
        ap = mt.ap()
        aps.append(ap)
        tag = _tag_precisions(job, tag_nreturns, cfg.tag_over_k)
        for k in tag_nreturns:
            tags[k].append(tag[k])
        for k in det_nreturns:
            top = mt.tp[:k]
            tp_at[k] += int(top.sum())
            for j in mt.matched[:k][top]:
                p = gt[j].triplet[1]
                pred_hits[k][p] = pred_hits[k].get(p, 0) + 1
        if per_video:
            pv[vid] = {"AP": ap, **{f"P@{k}": float(tag[k]) for k in tag_nreturns},
                       **{f"TP@{k}": int(mt.tp[:k].sum()) for k in det_nreturns}, "n_gt": len(gt),
                       "n_pred": len(preds)}

    det: dict[str, float] = {}
    rt: dict[str, float] = {}
    if pred_total == 0:
        if cfg.warn_on_empty:
            warnings.warn("evaluate_relations: no prediction for any ground-truth video; returning zeros (the "
                          "official code raises IndexError here)", RuntimeWarning, stacklevel=3)
        det["mAP"] = 0.0
        det.update({f"R@{k}": 0.0 for k in det_nreturns})
        rt.update({f"P@{k}": 0.0 for k in tag_nreturns})
    else:
        det["mAP"] = float(np.mean(np.array(aps, dtype=np.float64)))
        det.update({f"R@{k}": float(np.float32(tp_at[k]) / np.float32(n_gt_total)) for k in det_nreturns})
        rt.update({f"P@{k}": _mean_tag(tags[k]) for k in tag_nreturns})
    if mean_recall:
        counts: dict[str, int] = {}
        for _, gt in videos:
            for g in gt:
                counts[g.triplet[1]] = counts.get(g.triplet[1], 0) + 1
        for k in det_nreturns:
            det[f"mR@{k}"] = float(np.mean([pred_hits[k].get(p, 0) / c for p, c in counts.items()]))
        parts = [det[f"mR@{k}"] for k in det_nreturns] + [det[f"R@{k}"] for k in det_nreturns]
        det["Mean"] = float(np.mean(parts))
    if cfg.decimals is not None:
        det = {k: round(v, cfg.decimals) for k, v in det.items()}
        rt = {k: round(v, cfg.decimals) for k, v in rt.items()}
    out: dict[str, Any] = {"variant": variant, "RelDet": det, "RelTag": rt, "videos": len(videos)}
    if per_video:
        out["per_video"] = pv
    return out


# ---- zero-shot and splits ----------------------------------------------------------------------


def _triplets(gt: Mapping[str, Iterable[Relation]]) -> set[Triplet]:
    return {tuple(r.triplet) for rels in gt.values() for r in rels}


def zero_shot_triplets(train_groundtruth: Mapping[str, Iterable[Relation]] | Iterable[Triplet],
                       test_groundtruth: Mapping[str, Iterable[Relation]]) -> set[Triplet]:
    """Triplets of the test ground truth that never occur in training (``test - train``).

    ``train_groundtruth`` may be a relation mapping or an iterable of triplets."""
    train = (_triplets(train_groundtruth) if isinstance(train_groundtruth, Mapping)
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
    groundtruth: Mapping[str, Sequence[Relation]],
    prediction: Mapping[str, Sequence[Relation]],
    train: Mapping[str, Iterable[Relation]] | Iterable[Triplet],
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
    gt = filter_groundtruth(groundtruth, lambda r: tuple(r.triplet) in zs)
    pred = prediction if generalized else filter_predictions(prediction, lambda r: tuple(r.triplet) in zs)
    out = evaluate_relations(gt, pred, variant, **kwargs)
    out["triplets"] = len(zs)
    return out


def evaluate_predicate_split(
    groundtruth: Mapping[str, Sequence[Relation]],
    prediction: Mapping[str, Sequence[Relation]],
    predicates: Iterable[str],
    variant: str = "official",
    **kwargs: Any,
) -> dict[str, Any]:
    """Open-vocabulary split evaluation (UASAN's "novel" split): ground truth and predictions
    restricted to relations whose predicate is in ``predicates`` (all object categories kept);
    videos without such ground truth are dropped. The "all" split is :func:`evaluate_relations`."""
    keep = set(predicates)
    gt = filter_groundtruth(groundtruth, lambda r: r.triplet[1] in keep)
    pred = filter_predictions(prediction, lambda r: r.triplet[1] in keep)
    return evaluate_relations(gt, pred, variant, **kwargs)

