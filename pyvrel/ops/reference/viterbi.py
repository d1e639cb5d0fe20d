"""Plain Python references of Viterbi linking and soft Viterbi.

The executable specification of :mod:`pyvrel.ops.viterbi`, written from vRGV (Xiao et al. ECCV
2020, eq. 12–13) and its public code. Loops mirror the algorithms; all sums are Python floats (float64); IoUs
are computed in the boxes' dtype by :func:`pyvrel.ops.reference.box_iou_ref`, so the kernels
(same formula, same order of operations) agree bit for bit.
"""

from __future__ import annotations

import math

import torch

from pyvrel.ops.reference.boxes import box_iou_ref

__all__ = ["viterbi_link_ref", "soft_viterbi_ref"]


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
        if L == 0 or not bool(ok.any(dim=1).all()):  # -inf, with zero gradients (not detached)
            log_z.append((unary[b].double() * 0).sum() + pairwise_weight[b].double() * 0 - math.inf)
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
