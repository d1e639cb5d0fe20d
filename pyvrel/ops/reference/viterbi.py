"""Plain Python references of the linking ops: Seq-NMS, Viterbi linking and soft Viterbi.

The executable specification of :mod:`pyvrel.ops.linking`, written from
``specs/postprocessing.md`` §3–§4 (and vRGV eq. 12–13). Loops mirror the algorithms; all sums are
Python floats (float64); IoUs are computed in the boxes' dtype by
:func:`pyvrel.ops.reference.box_iou_ref` and thresholds are rounded to that dtype before the
comparison, so the kernels (same formula, same order of operations) agree bit for bit.
"""

from __future__ import annotations

import math

import torch

from pyvrel.ops.reference import box_iou_ref

__all__ = ["seq_nms_ref", "viterbi_link_ref", "soft_viterbi_ref", "SeqNMSRefVideo"]

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
    """Seq-NMS (``specs/postprocessing.md`` §3.2) of each video of a batch.

    Args:
        boxes (Tensor[B, T, N, 4]), scores (Tensor[B, T, N]), valid (Tensor[B, T, N] bool):
            per-frame detections; invalid entries are never read.
        labels (Tensor[B, T, N] int, optional): links join boxes of equal labels >= 0 only.
        link_threshold, suppress_threshold: IoU thresholds (``>=``, or ``>`` when ``strict``).
        rescore: ``"avg"`` (path sum / length), ``"max"`` or ``"none"``.
        suppress: ``"remove"`` (suppressed boxes lose all their links, §3.2) or ``"zero"``
            (VidVRD-II: their score becomes 0 and their links stay).
        max_sequences: stop after this many sequences (0: no limit).
        min_score: a root is selected only if its path sum is strictly greater (§3.2: 0).

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


def _unary_weights(length: int, legacy_vrgv: bool) -> list[float]:
    """Weight of each frame's unary: 1, or (``legacy_vrgv``) 2 for the inner frames, since vRGV
    sums eq. 12 over the links and so counts every inner node twice."""
    return [2.0 if legacy_vrgv and 0 < t < length - 1 else 1.0 for t in range(length)]


def _link_weights(frames: list[int], length: int, pairwise_weight: float, gap_scaling: bool) -> list[float]:
    """λ_t of the link t -> t + 1: ``pairwise_weight / (frames[t+1] - frames[t])`` (vRGV eq. 12,
    λ = 1/D) or the constant ``pairwise_weight``."""
    return [pairwise_weight / (frames[t + 1] - frames[t]) if gap_scaling else pairwise_weight
            for t in range(length - 1)]


def viterbi_link_ref(
    boxes: torch.Tensor,
    unary: torch.Tensor,
    frames: torch.Tensor,
    lengths: torch.Tensor,
    valid: torch.Tensor,
    *,
    k: int = 1,
    pairwise_weight: float = 1.0,
    gap_scaling: bool = True,
    legacy_vrgv: bool = False,
    pixel_offset: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact max-sum Viterbi linking, ``k`` best disjoint paths per problem.

    A path picks one valid box in each of the first ``L = lengths[b]`` frames; its score is
    ``Σ_t c_t·unary[t, p_t] + Σ_{t<L-1} λ_t·IoU(box[t, p_t], box[t+1, p_{t+1}])`` with every link
    counted (``c_t`` and ``λ_t``: :func:`_unary_weights`, :func:`_link_weights`). Forward DP in
    float64; ties go to the lowest predecessor index and the lowest final index. After each path
    its boxes are removed and the DP is run again; a problem with a frame left without boxes has
    no further path (index -1, score -inf).

    Args: boxes (B, T, N, 4), unary (B, T, N), frames (B, T) int, lengths (B,) int,
    valid (B, T, N) bool. Returns paths (B, k, T) int64 (-1 past L) and scores (B, k) float64.
    """
    B, T, N = unary.shape
    paths = torch.full((B, k, T), -1, dtype=torch.int64)
    scores = torch.full((B, k), -math.inf, dtype=torch.float64)
    for b in range(B):
        L = int(lengths[b])
        if L == 0:
            continue
        c = _unary_weights(L, legacy_vrgv)
        lam = _link_weights(frames[b].tolist(), L, pairwise_weight, gap_scaling)
        u = unary[b].tolist()
        ok = [row[:] for row in valid[b].tolist()]
        iou = [box_iou_ref(boxes[b, t], boxes[b, t + 1], pixel_offset).tolist() for t in range(L - 1)]
        for r in range(k):
            V: list[list[float | None]] = [[c[0] * u[0][q] if ok[0][q] else None for q in range(N)]]
            back = [[-1] * N]
            for t in range(1, L):
                row: list[float | None] = [None] * N
                bp = [-1] * N
                for q in range(N):
                    if not ok[t][q]:
                        continue
                    best = None
                    for p in range(N):  # strict >: the lowest predecessor wins ties
                        prev = V[t - 1][p]
                        if prev is not None:
                            cand = prev + lam[t - 1] * iou[t - 1][p][q]
                            if best is None or cand > best:
                                best, bp[q] = cand, p
                    if best is not None:
                        row[q] = c[t] * u[t][q] + best
                V.append(row)
                back.append(bp)
            end, best = -1, None
            for q in range(N):
                if V[L - 1][q] is not None and (best is None or V[L - 1][q] > best):
                    end, best = q, V[L - 1][q]
            if best is None:
                break  # some frame has no box left
            scores[b, r] = best
            for t in range(L - 1, -1, -1):
                paths[b, r, t] = end
                ok[t][end] = False
                end = back[t][end]
    return paths.to(unary.device), scores.to(unary.device)


@torch.enable_grad()  # the marginals are a derivative, also under no_grad
def soft_viterbi_ref(
    boxes: torch.Tensor,
    unary: torch.Tensor,
    frames: torch.Tensor,
    lengths: torch.Tensor,
    valid: torch.Tensor,
    pairwise_weight: torch.Tensor,
    *,
    tau: float = 1.0,
    gap_scaling: bool = True,
    legacy_vrgv: bool = False,
    pixel_offset: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Smoothed Viterbi: log-partition and path marginals, by autograd through log-sum-exp.

    ``log_partition[b] = τ · log Σ_paths exp(score(path) / τ)`` with the path score of
    :func:`viterbi_link_ref`, ``λ_t = pairwise_weight[b] / gap_t`` (or ``pairwise_weight[b]``);
    ``marginals[b, t, n]`` = probability that a path drawn with weight ``exp(score / τ)`` uses box
    n at frame t, computed as the derivative of the log-partition w.r.t. a zero offset on the
    node scores (detached). Differentiable w.r.t. ``unary`` and ``pairwise_weight`` (B,) through
    the log-partition. Problems with no path: log-partition -inf, marginals 0.
    """
    B, T, N = unary.shape
    log_z = []
    marginals = torch.zeros(B, T, N, dtype=torch.float64, device=unary.device)
    for b in range(B):
        L = int(lengths[b])
        ok = valid[b, :L]
        if L == 0 or not bool(ok.any(dim=1).all()):
            log_z.append(unary.new_full((), -math.inf, dtype=torch.float64))
            continue
        c = torch.tensor(_unary_weights(L, legacy_vrgv), dtype=torch.float64, device=unary.device)
        gap = (frames[b, 1:L] - frames[b, : L - 1]).double() if gap_scaling else unary.new_ones(L - 1, dtype=torch.float64)
        lam = pairwise_weight[b].double() / gap
        offset = torch.zeros(L, N, dtype=torch.float64, device=unary.device, requires_grad=True)
        node = (c[:, None] * unary[b, :L].double() + offset).masked_fill(~ok, -math.inf) / tau
        alpha = node[0]
        for t in range(1, L):
            iou = box_iou_ref(boxes[b, t - 1], boxes[b, t], pixel_offset).double()
            iou = torch.where(ok[t - 1][:, None] & ok[t][None, :], iou, torch.zeros_like(iou))  # padding
            pair = lam[t - 1] * iou / tau
            alpha = node[t] + torch.logsumexp(alpha[:, None] + pair, dim=0)
        z = tau * torch.logsumexp(alpha, dim=0)
        (m,) = torch.autograd.grad(z, offset, retain_graph=True)
        marginals[b, :L] = m
        log_z.append(z)
    return marginals.to(unary.dtype), torch.stack(log_z).to(unary.dtype) if B else unary.new_zeros(0)
