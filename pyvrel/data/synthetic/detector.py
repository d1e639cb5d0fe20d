"""Detector-like outputs of a synthetic video (its feature file, keys in :mod:`pyvrel.data.features`):
appearance features (category prototype + instance vector + per-frame noise), noisy detected
tracklets (jitter, truncation, fragmentation, false tracks, category confusions with score
vectors), raw per-frame detections for Seq-NMS, and vRGV-style region proposals with features on
sampled frames.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from pyvrel.data.synthetic.rules import HEIGHT, WIDTH

if TYPE_CHECKING:
    from pyvrel.data.synthetic.world import World

__all__ = ["detector_outputs"]


def detector_outputs(rng: np.random.Generator, world: "World", cats: list[str], tracks: list[dict[str, Any]],
              boxes: list[np.ndarray], frame_count: int) -> dict[str, np.ndarray]:
    cfg = world.config
    D, C = cfg.feature_dim, len(world.vocab.objects)
    cidx = world.vocab.object_index()
    # appearance of each entity per frame: prototype + instance + frame noise
    appear = []
    for cat, t in zip(cats, tracks):
        n = t["span"][1] - t["span"][0]
        inst = rng.normal(0, 0.5 / math.sqrt(D), D)
        appear.append((world.prototypes[cidx[cat]] + inst + rng.normal(0, 0.3 / math.sqrt(D), (n, D))).astype(np.float32))

    def scores_for(cat: str) -> tuple[np.ndarray, int]:
        logits = rng.normal(0, 1.0, C)
        label = cidx[cat] if rng.random() >= cfg.confusion else int(rng.integers(C))
        logits[label] += 4.0
        p = np.exp(logits - logits.max())
        return (p / p.sum()).astype(np.float32), label

    # noisy tracklets: jitter, truncation, fragmentation; plus false tracks
    tr_boxes, tr_start, tr_feats, tr_scores, tr_tid = [], [], [], [], []
    for tid, (cat, t, b) in enumerate(zip(cats, tracks, boxes)):
        n = len(b)
        a = int(rng.integers(0, max(1, n // 10)))
        z = n - int(rng.integers(0, max(1, n // 10)))
        pieces = [(a, z)]
        if z - a > 40 and rng.random() < 0.3:  # fragment with a small gap
            cut = int(rng.integers(a + 15, z - 15))
            pieces = [(a, cut), (min(z - 5, cut + int(rng.integers(1, 6))), z)]
        for p0, p1 in pieces:
            size = np.stack([b[p0:p1, 2] - b[p0:p1, 0], b[p0:p1, 3] - b[p0:p1, 1]] * 2, 1)
            jit = b[p0:p1] + rng.normal(0, 0.04, (p1 - p0, 4)) * size
            tr_boxes.append(jit.astype(np.float32))
            tr_start.append(t["span"][0] + p0)
            tr_feats.append(appear[tid][p0:p1])
            tr_scores.append(scores_for(cat)[0])
            tr_tid.append(tid)
    for _ in range(int(rng.poisson(cfg.false_tracks))):
        n = int(rng.integers(10, max(11, frame_count // 3)))
        s = int(rng.integers(0, frame_count - n + 1))
        wh = rng.uniform(15, 80, 2)
        xy = rng.uniform([0, 0], [WIDTH - wh[0], HEIGHT - wh[1]])
        drift = np.cumsum(rng.normal(0, 1.0, (n, 2)), 0)
        b = np.concatenate([xy + drift, xy + wh + drift], 1)
        tr_boxes.append(b.astype(np.float32))
        tr_start.append(s)
        tr_feats.append(rng.normal(0, 1 / math.sqrt(D), (n, D)).astype(np.float32))
        tr_scores.append(scores_for(world.vocab.objects[int(rng.integers(C))])[0] * 0.5)
        tr_tid.append(-1)
    N, T = len(tr_boxes), max(len(b) for b in tr_boxes)
    tb = np.zeros((N, T, 4), np.float32)
    tf = np.zeros((N, T, D), np.float32)
    for i, (b, f) in enumerate(zip(tr_boxes, tr_feats)):
        tb[i, : len(b)], tf[i, : len(f)] = b, f

    # raw per-frame detections: each visible entity 1-3 jittered boxes + clutter
    det_f, det_b, det_s, det_l = [], [], [], []
    for tid, (cat, t, b) in enumerate(zip(cats, tracks, boxes)):
        n = len(b)
        for copy in range(3):
            keep = rng.random(n) < (0.95 if copy == 0 else 0.5)
            size = np.stack([b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]] * 2, 1)
            jb = b + rng.normal(0, 0.05 * (copy + 1), (n, 4)) * size
            sc = np.clip(rng.normal(0.85 - 0.2 * copy, 0.08, n), 0.05, 1.0)
            label = np.where(rng.random(n) < cfg.confusion, rng.integers(0, C, n), cidx[cat])
            det_f.append((t["span"][0] + np.arange(n))[keep])
            det_b.append(jb[keep])
            det_s.append(sc[keep])
            det_l.append(label[keep])
    k = int(rng.poisson(0.5 * frame_count))
    wh = rng.uniform(10, 60, (k, 2))
    xy = rng.uniform(0, 1, (k, 2)) * (np.array([WIDTH, HEIGHT]) - wh)
    det_f.append(rng.integers(0, frame_count, k))
    det_b.append(np.concatenate([xy, xy + wh], 1))
    det_s.append(rng.uniform(0.05, 0.5, k))
    det_l.append(rng.integers(0, C, k))
    det_frame = np.concatenate(det_f).astype(np.int64)
    order = np.argsort(det_frame, kind="stable")

    # region proposals on sampled frames (vRGV style): entity boxes (jittered) + random boxes
    S = min(cfg.sampled_frames, frame_count)
    frames = np.unique(np.round(np.linspace(0, frame_count - 1, S)).astype(np.int64))
    M = cfg.proposals
    wh = rng.uniform(20, 180, (len(frames), M, 2))
    xy = rng.uniform(0, 1, (len(frames), M, 2)) * (np.array([WIDTH, HEIGHT]) - wh)
    pb = np.concatenate([xy, xy + wh], -1).astype(np.float32)  # random boxes, then entities in the first slots
    pf = rng.normal(0, 1 / math.sqrt(D), (len(frames), M, D)).astype(np.float32)
    ptid = np.full((len(frames), M), -1, np.int64)
    present = np.stack([(frames >= t["span"][0]) & (frames < t["span"][1]) for t in tracks], 1)
    slot = np.cumsum(present, 1) - 1
    for tid, (t, b) in enumerate(zip(tracks, boxes)):
        rows = np.flatnonzero(present[:, tid] & (slot[:, tid] < M))
        k = frames[rows] - t["span"][0]
        size = np.stack([b[k, 2] - b[k, 0], b[k, 3] - b[k, 1]] * 2, 1)
        pb[rows, slot[rows, tid]] = b[k] + rng.normal(0, 0.03, (len(rows), 4)) * size
        pf[rows, slot[rows, tid]] = appear[tid][k]
        ptid[rows, slot[rows, tid]] = tid
    return {
        "tracklet_boxes": tb, "tracklet_start": np.array(tr_start, np.int64),
        "tracklet_length": np.array([len(b) for b in tr_boxes], np.int64),
        "tracklet_scores": np.stack(tr_scores), "tracklet_features": tf, "tracklet_tid": np.array(tr_tid, np.int64),
        "det_frame": det_frame[order], "det_boxes": np.concatenate(det_b).astype(np.float32)[order],
        "det_scores": np.concatenate(det_s).astype(np.float32)[order],
        "det_labels": np.concatenate(det_l).astype(np.int64)[order],
        "proposal_frames": frames, "proposal_boxes": pb, "proposal_features": pf, "proposal_tid": ptid,
    }

