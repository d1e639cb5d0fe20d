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

from pyvrel.data.relations import Relation, Triplet, relations_to_tubes

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


def _overlaps(gt: Sequence[Relation], preds: Sequence[Relation], pixel_offset: float) -> np.ndarray:
    """min(vIoU_sub, vIoU_obj) for every (prediction, ground truth) pair, float64 (n, m)."""
    from pyvrel.ops import tube_iou

    if not gt or not preds:
        return np.zeros((len(preds), len(gt)))
    ov = None
    for which in ("sub", "obj"):
        a = relations_to_tubes(preds, which)
        b = relations_to_tubes(gt, which)
        v = tube_iou(a, b, pixel_offset).numpy()
        ov = v if ov is None else np.minimum(ov, v)
    # Boxes past a duration add to the official volume; the tube layout has no place for them.
    long_p = [i for i, p in enumerate(preds) if p.overlong]
    long_g = [j for j, g in enumerate(gt) if g.overlong]
    pairs = {(i, j) for i in long_p for j in range(len(gt))} | {(i, j) for j in long_g for i in range(len(preds))}
    for i, j in pairs:
        p, g = preds[i], gt[j]
        ov[i, j] = min(viou_official(p.sub_traj.tolist(), p.duration, g.sub_traj.tolist(), g.duration, pixel_offset),
                       viou_official(p.obj_traj.tolist(), p.duration, g.obj_traj.tolist(), g.duration, pixel_offset))
    return ov


def _sort_order(preds: Sequence[Relation]) -> np.ndarray:
    scores = np.array([p.score for p in preds], dtype=np.float64)
    return np.argsort(-scores, kind="stable")


def match_video(gt: Sequence[Relation], preds: Sequence[Relation], *, viou_threshold: float = 0.5,
                pixel_offset: float = 1) -> VideoMatch:
    """Greedy matching of one video's predictions to its ground truth (see the module docstring).

    Only predictions whose triplet occurs in the ground truth are packed and scored (the others
    cannot match); vIoU runs through :func:`pyvrel.ops.tube_iou` in float64, which with
    ``pixel_offset=1`` reproduces the official arithmetic bit for bit.
    """
    n, m = len(preds), len(gt)
    order = _sort_order(preds)
    tp = np.zeros(n, dtype=bool)
    matched = np.full(n, -1, dtype=np.int64)
    if n == 0 or m == 0:
        return VideoMatch(order, tp, matched, m)
    gt_by_triplet: dict[Triplet, list[int]] = {}
    for j, g in enumerate(gt):
        gt_by_triplet.setdefault(tuple(g.triplet), []).append(j)
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    cand = [i for i in range(n) if tuple(preds[i].triplet) in gt_by_triplet]
    if not cand:
        return VideoMatch(order, tp, matched, m)
    ov = _overlaps(gt, [preds[i] for i in cand], pixel_offset)
    same = np.zeros((len(cand), m), dtype=bool)
    for r, i in enumerate(cand):
        same[r, gt_by_triplet[tuple(preds[i].triplet)]] = True
    ov = np.where(same & (ov >= viou_threshold), ov, -np.inf)
    taken = np.zeros(m, dtype=bool)
    for r in sorted((r for r in range(len(cand)) if np.isfinite(ov[r]).any()), key=lambda r: rank[cand[r]]):
        row = np.where(taken, -np.inf, ov[r])
        j = int(np.argmax(row))  # first maximum: the lowest ground-truth index wins ties
        if row[j] > -np.inf:
            taken[j] = True
            k = rank[cand[r]]
            matched[k] = j
            tp[k] = math.isfinite(preds[cand[r]].score)
    return VideoMatch(order, tp, matched, m)


def _tag_precisions(gt_triplets: set[Triplet], preds: Sequence[Relation], order: np.ndarray,
                    ks: Sequence[int], over_k: bool) -> dict[int, Any]:
    seen: set[Triplet] = set()
    hits = []
    for i in order:
        t = tuple(preds[i].triplet)
        if t not in seen:
            seen.add(t)
            hits.append(t in gt_triplets)
    m = len(hits)
    out: dict[int, Any] = {}
    for k in ks:
        if m == 0:
            out[k] = 0.0  # a Python float, as the official code's fallback
        else:
            c = k if over_k else min(k, m)
            out[k] = np.float32(sum(hits[:c])) / np.float32(c)
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
    videos = [(vid, list(rels)) for vid, rels in groundtruth.items() if len(rels) > 0]
    if not videos:
        raise ValueError("evaluate_relations: the ground truth has no relation in any video (the official code "
                         "raises ValueError from np.concatenate here)")
    n_gt_total = sum(len(g) for _, g in videos)
    aps, tags, pv = [], {k: [] for k in tag_nreturns}, {}
    tp_at = {k: 0 for k in det_nreturns}
    pred_total = 0
    pred_hits: dict[int, dict[str, int]] = {k: {} for k in det_nreturns}
    for vid, gt in videos:
        preds = list(prediction.get(vid, []))
        if cfg.top is not None and len(preds) > cfg.top:
            preds = [preds[i] for i in _sort_order(preds)[: cfg.top]]
        pred_total += len(preds)
        mt = match_video(gt, preds, viou_threshold=viou_threshold, pixel_offset=cfg.pixel_offset)
        ap = mt.ap()
        aps.append(ap)
        tag = _tag_precisions({tuple(g.triplet) for g in gt}, preds, mt.order, tag_nreturns, cfg.tag_over_k)
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
                          "official code raises IndexError here)", RuntimeWarning, stacklevel=2)
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

