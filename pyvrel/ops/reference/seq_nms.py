"""Plain Python reference of Seq-NMS.

The executable specification of :mod:`pyvrel.ops.seq_nms`, written from the Seq-NMS paper (Han et
al. 2016) and its public implementations. Loops mirror the algorithm; all sums are Python floats (float64); IoUs are computed in the
boxes' dtype by :func:`pyvrel.ops.reference.box_iou_ref` and thresholds are rounded to that dtype
before the comparison, so the kernels (same formula, same order of operations) agree bit for bit.
"""

from __future__ import annotations

import torch

from pyvrel.ops.reference.boxes import box_iou_ref

__all__ = ["fill_gaps_ref", "seq_nms_ref", "SeqNMSRefVideo"]


# One video's result: working scores (T, N) as nested lists, sequence id of each box (T, N)
# (-1: none) and the sequences as (first frame, box index per frame, score sum).
SeqNMSRefVideo = tuple[list[list[float]], list[list[int]], list[tuple[int, list[int], float]]]


def _in_dtype(value: float, dtype: torch.dtype) -> float:
    """``value`` rounded to ``dtype`` (thresholds are compared in the boxes' precision)."""
    return float(torch.tensor(value, dtype=dtype))


def _passes(iou: float, threshold: float, strict: bool) -> bool:
    return iou > threshold if strict else iou >= threshold


def _seq_nms_video_ref(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    valid: torch.Tensor,
    labels: torch.Tensor | None,
    link_threshold: float,
    suppress_threshold: float,
    rescore: str,
    suppress: str,
    max_sequences: int,
    min_score: float,
    strict: bool,
    pixel_offset: float,
) -> SeqNMSRefVideo:
    T, N = scores.shape
    link_thr = _in_dtype(link_threshold, boxes.dtype)
    supp_thr = _in_dtype(suppress_threshold, boxes.dtype)
    ok = valid.tolist()
    s = [[float(v) for v in row] for row in scores.tolist()]
    lab = labels.tolist() if labels is not None else None

    # Links of consecutive frames: link[t][i][j] for box i of frame t and box j of frame t + 1.
    link = []
    for t in range(T - 1):
        iou = box_iou_ref(boxes[t], boxes[t + 1], pixel_offset).tolist()
        link.append([[ok[t][i] and ok[t + 1][j] and _passes(iou[i][j], link_thr, strict)
                      and (lab is None or (lab[t][i] >= 0 and lab[t][i] == lab[t + 1][j]))
                      for j in range(N)] for i in range(N)])
    cut = [[False] * N for _ in range(T)]  # "remove": every link of a cut box is deleted

    def alive(t: int, i: int, j: int) -> bool:  # the link (t, i) -> (t + 1, j)
        return link[t][i][j] and not cut[t][i] and not cut[t + 1][j]

    seq_id = [[-1] * N for _ in range(T)]
    sequences: list[tuple[int, list[int], float]] = []
    while max_sequences <= 0 or len(sequences) < max_sequences:
        # Backward DP: g[t][i] = best score sum of a path starting at (t, i); nxt = its successor.
        g = [[0.0] * N for _ in range(T)]
        nxt = [[-1] * N for _ in range(T)]
        for t in range(T - 1, -1, -1):
            for i in range(N):
                if not ok[t][i]:
                    continue
                best = None
                if t + 1 < T:
                    for j in range(N):  # ascending j with strict >: the first j wins ties
                        if alive(t, i, j) and (best is None or g[t + 1][j] > best):
                            best, nxt[t][i] = g[t + 1][j], j
                g[t][i] = s[t][i] + best if best is not None else s[t][i]
        # Best root (no incoming link), frame-major then index-minor, strictly above min_score.
        best_value, root = min_score, None
        for t in range(T):
            for j in range(N):
                if not ok[t][j]:
                    continue
                has_in = t > 0 and any(alive(t - 1, i, j) for i in range(N))
                if not has_in and g[t][j] > best_value:
                    best_value, root = g[t][j], (t, j)
        if root is None:
            break
        t0, path = root[0], [root[1]]
        while nxt[t0 + len(path) - 1][path[-1]] >= 0:
            path.append(nxt[t0 + len(path) - 1][path[-1]])
        if len(path) <= 1:
            break  # the best path is a single box
        total = g[t0][path[0]]
        k = len(sequences)
        sequences.append((t0, path, total))
        if rescore == "avg":
            new = total / len(path)
        elif rescore == "max":
            new = max(s[t0 + d][p] for d, p in enumerate(path))
        for d, p in enumerate(path):
            t = t0 + d
            if seq_id[t][p] < 0:
                seq_id[t][p] = k
            if rescore != "none":
                s[t][p] = new
            iou = box_iou_ref(boxes[t, p:p + 1], boxes[t], pixel_offset)[0].tolist()
            for q in range(N):
                if ok[t][q] and (q == p or _passes(iou[q], supp_thr, strict)):
                    if suppress == "remove":
                        cut[t][q] = True
                    else:
                        s[t][q] = 0.0
    return s, seq_id, sequences


def seq_nms_ref(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    valid: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    link_threshold: float = 0.5,
    suppress_threshold: float = 0.3,
    rescore: str = "avg",
    suppress: str = "remove",
    max_sequences: int = 0,
    min_score: float = 0.0,
    strict: bool = False,
    pixel_offset: float = 0.0,
) -> list[SeqNMSRefVideo]:
    """Seq-NMS of each video of a batch.

    Args:
        boxes (Tensor[B, T, N, 4]), scores (Tensor[B, T, N]), valid (Tensor[B, T, N] bool):
            per-frame detections; invalid entries are never read.
        labels (Tensor[B, T, N] int, optional): links join boxes of equal labels >= 0 only.
        link_threshold, suppress_threshold: IoU thresholds (``>=``, or ``>`` when ``strict``).
        rescore: ``"avg"`` (path sum / length), ``"max"`` or ``"none"``.
        suppress: ``"remove"`` (suppressed boxes lose all their links) or ``"zero"``
            (VidVRD-II: their score becomes 0 and their links stay).
        max_sequences: stop after this many sequences (0: no limit).
        min_score: a root is selected only if its path sum is strictly greater (default 0).

    Per iteration: backward DP over the live links (ties: first successor index), best root by
    a frame-major scan with strict ``>`` starting from ``min_score``; stop when there is none or
    its path is a single box; record the path; rescore its boxes; in each of its frames, the
    path box and every valid box with IoU (``>=``/``>``) ``suppress_threshold`` with it are
    suppressed (labels are not considered). Returns one :data:`SeqNMSRefVideo` per video.
    """
    out = []
    for b in range(boxes.shape[0]):
        out.append(_seq_nms_video_ref(
            boxes[b], scores[b], valid[b], None if labels is None else labels[b], link_threshold,
            suppress_threshold, rescore, suppress, max_sequences, min_score, strict, pixel_offset))
    return out


def _similar_ref(a: torch.Tensor, b: torch.Tensor, scale_ratio: float, area_ratio: float) -> bool:
    """Both boxes have positive width and height, and their aspect ratios (w / h) and areas differ by
    at most the given factors (``max <= factor * min``, in the boxes' dtype)."""
    wa, ha, wb, hb = a[2] - a[0], a[3] - a[1], b[2] - b[0], b[3] - b[1]
    if not (wa > 0 and ha > 0 and wb > 0 and hb > 0):
        return False
    ra, rb, aa, ab = wa / ha, wb / hb, wa * ha, wb * hb
    return bool(torch.maximum(ra, rb) <= scale_ratio * torch.minimum(ra, rb)
                and torch.maximum(aa, ab) <= area_ratio * torch.minimum(aa, ab))


def fill_gaps_ref(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    valid: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    tolerance: int = 30,
    scale_ratio: float = 2.0,
    area_ratio: float = 2.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """VidVRD-II's gap filling before Seq-NMS, one box at a time.

    For every valid box ``i`` of frame ``t`` (and label ``>= 0``), frames ``t + 2 .. t + tolerance - 1``
    are searched for the first one holding valid boxes of the same label whose aspect ratio and
    area are within ``scale_ratio`` / ``area_ratio`` of box ``i``'s (:func:`_similar_ref`); for
    each such box ``j`` (ascending), the frames between get the interpolated box
    ``b_i + (b_j - b_i) * (k / d)`` (``d`` the frame distance, ``k = 1 .. d - 1``) with score 0 and
    box ``i``'s label. Inserted boxes follow the frame's own boxes, in the order of the loops
    (``t``, ``i``, ``j``). Returns ``(boxes (B, T, M, 4), scores, valid, labels, source)`` with
    ``M = N + most insertions in a frame``; ``source`` is the input index of a kept box and -1 for an
    inserted box or padding; ``labels`` is None when not given.
    """
    B, T, N = scores.shape
    dt = boxes.dtype
    lab = labels if labels is not None else torch.zeros(B, T, N, dtype=torch.int64)
    extra = [[[] for _ in range(T)] for _ in range(B)]
    for b in range(B):
        for t in range(T):
            for i in range(N):
                if not valid[b, t, i] or lab[b, t, i] < 0:
                    continue
                for t2 in range(t + 2, min(t + tolerance, T)):
                    js = [j for j in range(N) if valid[b, t2, j] and lab[b, t2, j] == lab[b, t, i]
                          and _similar_ref(boxes[b, t, i], boxes[b, t2, j], scale_ratio, area_ratio)]
                    if not js:
                        continue
                    d = t2 - t
                    for j in js:
                        for k in range(1, d):
                            w = torch.tensor(k / d, dtype=dt)
                            extra[b][t + k].append((boxes[b, t, i] + (boxes[b, t2, j] - boxes[b, t, i]) * w,
                                                    int(lab[b, t, i])))
                    break
    M = N + max((len(e) for per_video in extra for e in per_video), default=0)
    out_boxes = torch.zeros(B, T, M, 4, dtype=dt)
    out_scores = torch.zeros(B, T, M, dtype=scores.dtype)
    out_valid = torch.zeros(B, T, M, dtype=torch.bool)
    out_labels = torch.full((B, T, M), -1, dtype=torch.int64)
    source = torch.full((B, T, M), -1, dtype=torch.int64)
    out_boxes[:, :, :N], out_scores[:, :, :N], out_valid[:, :, :N] = boxes, scores, valid
    out_labels[:, :, :N] = lab
    source[:, :, :N] = torch.where(valid, torch.arange(N), torch.full_like(source[:, :, :N], -1))
    for b in range(B):
        for t in range(T):
            for k, (box, label) in enumerate(extra[b][t]):
                out_boxes[b, t, N + k], out_valid[b, t, N + k], out_labels[b, t, N + k] = box, True, label
    return out_boxes, out_scores, out_valid, (out_labels if labels is not None else None), source
