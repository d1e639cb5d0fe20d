"""The official evaluation loop (VidVRD-helper's evaluation code) transcribed in plain Python:
the executable spec that :func:`pyvrel.eval.evaluate_relations` is tested and benchmarked
against. It works on the official JSON values (dicts with ``triplet``, ``score``, ``duration``,
``sub_traj``, ``obj_traj``), computes every vIoU with :func:`~pyvrel.eval.viou_official` for
every prediction/ground-truth pair of equal triplets, and crashes where the official code does
(IndexError with no predictions at all, ValueError with no ground truth).

:func:`associate_reference` is the greedy association of :func:`pyvrel.eval.associate` one
prediction / candidate pair at a time (one :func:`~pyvrel.eval.cubic_iou` call each), as it was
first written: the spec the C++ linking (:mod:`pyvrel.eval._association`) is tested and benchmarked
against, and what ``associate`` runs when ``pyvrel._C`` is not built.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pyvrel.data.relations import Relation
from pyvrel.eval._official import EPS32, SETTINGS, viou_official, voc_ap
from pyvrel.eval.association import SegmentRelation, Track, _check, _Linked, _relations, cubic_iou

__all__ = ["associate_reference", "evaluate_reference", "load_reference"]


def _detection(gt: Sequence[Mapping[str, Any]], preds: Sequence[Mapping[str, Any]], thr: float,
               off: float) -> tuple[list[Mapping[str, Any]], np.ndarray, np.ndarray]:
    preds = sorted(preds, key=lambda p: p["score"], reverse=True)  # stable: ties keep input order
    det = [False] * len(gt)
    hit = np.full(len(preds), -np.inf)
    for i, p in enumerate(preds):
        best, k = -np.inf, -1
        for j, g in enumerate(gt):
            if not det[j] and tuple(p["triplet"]) == tuple(g["triplet"]):
                ov = min(viou_official(p["sub_traj"], p["duration"], g["sub_traj"], g["duration"], off),
                         viou_official(p["obj_traj"], p["duration"], g["obj_traj"], g["duration"], off))
                if ov >= thr and ov > best:
                    best, k = ov, j
        if k >= 0:
            hit[i] = p["score"]
            det[k] = True
    tp = np.isfinite(hit)
    cum_tp = np.cumsum(tp).astype(np.float32)
    cum_fp = np.cumsum(~tp).astype(np.float32)
    rec = cum_tp / np.float32(max(float(len(gt)), EPS32))
    prec = cum_tp / np.maximum(cum_tp + cum_fp, np.float32(EPS32))
    return preds, tp, np.array([voc_ap(rec, prec)])


def evaluate_reference(groundtruth: Mapping[str, Sequence[Mapping[str, Any]]],
                       prediction: Mapping[str, Sequence[Mapping[str, Any]]], variant: str = "official", *,
                       viou_threshold: float = 0.5, det_nreturns: Sequence[int] = (50, 100),
                       tag_nreturns: Sequence[int] = (1, 5, 10)) -> dict[str, dict[str, float]]:
    """``{"RelDet": {"mAP", "R@K"...}, "RelTag": {"P@k"...}}`` the way the official loop computes them."""
    cfg = SETTINGS[variant]
    aps, tags = [], {k: [] for k in tag_nreturns}
    pooled_tp: dict[int, list[np.ndarray]] = {k: [] for k in det_nreturns}
    pooled_scores: dict[int, list[np.ndarray]] = {k: [] for k in det_nreturns}
    n_gt = 0
    for vid, gt in groundtruth.items():
        if len(gt) == 0:
            continue
        n_gt += len(gt)
        preds = list(prediction.get(vid, []))
        if cfg.top is not None:
            preds = sorted(preds, key=lambda p: p["score"], reverse=True)[: cfg.top]
        preds, tp, ap = _detection(gt, preds, viou_threshold, cfg.pixel_offset)
        aps.append(float(ap[0]))
        for k in det_nreturns:
            pooled_tp[k].append(tp[:k])
            pooled_scores[k].append(np.array([p["score"] for p in preds[:k]], dtype=np.float64))
        gt_set = {tuple(g["triplet"]) for g in gt}
        distinct: list[tuple[str, ...]] = []
        for p in preds:
            if tuple(p["triplet"]) not in distinct:
                distinct.append(tuple(p["triplet"]))
        hits = [t in gt_set for t in distinct]
        for k in tag_nreturns:
            if not hits:
                tags[k].append(0.0)
            else:
                c = k if cfg.tag_over_k else min(k, len(hits))
                tags[k].append(np.float32(sum(hits[:c])) / np.float32(c))
    if n_gt == 0:
        raise ValueError("need at least one array to concatenate")  # what np.concatenate([]) says
    det = {"mAP": float(np.mean(aps))}
    for k in det_nreturns:
        tp = np.concatenate(pooled_tp[k])
        scores = np.concatenate(pooled_scores[k])
        if len(tp) == 0:
            if cfg.warn_on_empty:
                raise IndexError("index -1 is out of bounds for axis 0 with size 0")
            det[f"R@{k}"] = 0.0
            continue
        tp = tp[np.argsort(-scores)]
        rec = np.cumsum(tp).astype(np.float32) / np.float32(n_gt)
        det[f"R@{k}"] = float(rec[-1])
    tag = {f"P@{k}": float(np.mean(v)) for k, v in tags.items()}
    if cfg.decimals is not None:
        det = {k: round(v, cfg.decimals) for k, v in det.items()}
        tag = {k: round(v, cfg.decimals) for k, v in tag.items()}
    return {"RelDet": det, "RelTag": tag}


def load_reference(gt_folder: str | Path, pred_path: str | Path) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any]]:
    """Load ground truth and predictions the way the official tools do, in plain Python: every
    per-video annotation file with :mod:`json`, per-frame ``{tid: box}`` dicts, relation
    instances with ``bboxes[tid] for bboxes in trajs[begin:end]`` boxes (``get_relation_insts``),
    and the prediction file's ``results``. For timing comparisons (benchmarks/bench_eval.py)."""
    groundtruth: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(Path(gt_folder).rglob("*.json")):
        with open(path) as f:
            anno = json.load(f)
        cats = {o["tid"]: o["category"] for o in anno["subject/objects"]}
        trajs = [{b["tid"]: (b["bbox"]["xmin"], b["bbox"]["ymin"], b["bbox"]["xmax"], b["bbox"]["ymax"]) for b in frame}
                 for frame in anno["trajectories"]]
        insts = []
        for r in anno["relation_instances"]:
            span = trajs[r["begin_fid"]: r["end_fid"]]
            insts.append({"triplet": (cats[r["subject_tid"]], r["predicate"], cats[r["object_tid"]]),
                          "subject_tid": r["subject_tid"], "object_tid": r["object_tid"],
                          "duration": (r["begin_fid"], r["end_fid"]),
                          "sub_traj": [b[r["subject_tid"]] for b in span], "obj_traj": [b[r["object_tid"]] for b in span]})
        groundtruth[anno["video_id"]] = insts
    with open(pred_path) as f:
        prediction = json.load(f)["results"]
    return groundtruth, prediction


def _join_reference(a: Track, b: Track) -> Track:
    """Union of two tracks: per frame the mean of the boxes present, gaps interpolated."""
    start, end = min(a.start, b.start), max(a.end, b.end)
    total = np.zeros((end - start, 4))
    count = np.zeros(end - start)
    for t in (a, b):
        total[t.start - start: t.end - start] += t.boxes
        count[t.start - start: t.end - start] += 1
    have = count > 0
    out = np.zeros_like(total)
    out[have] = total[have] / count[have, None]
    if not have.all():
        f, known = np.arange(end - start), np.flatnonzero(have)
        for c in range(4):
            out[~have, c] = np.interp(f[~have], known, out[known, c])
    return Track(start, out)


def associate_reference(segments: Sequence[tuple[tuple[int, int], Sequence[SegmentRelation]]],
                        algorithm: str = "baseline", *, segment_topk: int = 100, linkage_threshold: float = 0.5,
                        temporal_tolerance: int = 30, association_topk: int = 200, pixel_offset: float = 1,
                        reproduce_baseline_bug: bool = False) -> list[Relation]:
    """:func:`pyvrel.eval.associate` (same arguments and result), one pair at a time."""
    _check(algorithm, reproduce_baseline_bug)
    tolerance = temporal_tolerance if algorithm == "vidvrd2" else 0
    relations: list[_Linked] = []
    previous: list[_Linked] = []
    for index, (_, preds) in enumerate(sorted(segments, key=lambda s: s[0][0])):
        top = sorted(preds, key=lambda p: p.score, reverse=True)[:segment_topk]
        candidates = sorted(previous, key=lambda r: r.score(algorithm), reverse=True)
        current: list[_Linked] = []
        for p in top:
            linked = None
            for r in candidates if index > 0 else []:
                if tuple(r.triplet) != tuple(p.triplet):
                    continue
                if algorithm == "baseline":
                    if not (p.sub.start < r.sub.end and p.obj.start < r.sub.end):
                        continue
                    ok = (cubic_iou(r.sub, p.sub, pixel_offset) >= linkage_threshold
                          and cubic_iou(r.obj, p.obj, pixel_offset) >= linkage_threshold)
                else:
                    ok = (cubic_iou(r.sub, p.sub, pixel_offset, tolerance) > linkage_threshold
                          and cubic_iou(r.obj, p.obj, pixel_offset, tolerance) > linkage_threshold)
                if ok:
                    linked = r
                    break
            if linked is not None:
                candidates = [c for c in candidates if c is not linked]  # by identity: tracks hold arrays
                linked.sub, linked.obj = _join_reference(linked.sub, p.sub), _join_reference(linked.obj, p.obj)
                linked.confs.append(float(p.score))
            else:
                first_conf = 1.0 if (reproduce_baseline_bug and index > 0) else float(p.score)
                linked = _Linked(tuple(p.triplet), Track(p.sub.start, p.sub.boxes.copy()),
                                 Track(p.obj.start, p.obj.boxes.copy()), [first_conf])
                relations.append(linked)
            current.append(linked)
        previous = current
    return _relations(relations, [r.score(algorithm) for r in relations], algorithm, association_topk)
