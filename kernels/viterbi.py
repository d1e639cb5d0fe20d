"""Triton kernels of Viterbi linking and soft Viterbi: one program per problem.

Viterbi: the program runs the forward max-sum DP. Each step loads the boxes of frames t-1 (rows p) and t (columns q), forms the (N, N) tile of
``prev[p] + λ_t · IoU`` and reduces over p: the maximum, and the lowest p reaching it (the tie rule
of every backend). Back pointers go to memory; the host walks them back (vectorised over
problems) and, for k disjoint paths, removes the chosen boxes and runs the DP again. IoUs are
computed in the boxes' dtype with the operation order of ``csrc/include/pyvrel/boxes.h``, an IEEE
float32 division (``div_rn``) and no floating-point contraction (``enable_fp_fusion=False``), so
values are those of the C++ kernel (the IoU is :mod:`pyvrel.kernels.boxes`' ``_box_iou``).

Soft Viterbi: log-sum-exp forward (alpha kept in memory) and backward in the same program, which
also produces the marginals and d log Z / d pairwise weight; float64 throughout, on scores (never
scaled by 1 / tau) with per-frame normalised marginals, as the C++ kernel.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from pyvrel import _ext

from .boxes import _box_iou, _load_box


@triton.jit
def _viterbi_link_kernel(
    boxes_ptr, unary_ptr, lam_ptr, lengths_ptr, ok_ptr, back_ptr, last_ptr,
    T, N, off,
    LEGACY: tl.constexpr, BLOCK_N: tl.constexpr,
):
    b = tl.program_id(0).to(tl.int64)
    L = tl.load(lengths_ptr + b)
    idx = tl.arange(0, BLOCK_N)
    inside = idx < N
    base = b * T * N
    neg_inf = float("-inf")
    ok0 = tl.load(ok_ptr + base + idx, mask=inside, other=0) != 0  # 0 past the length
    u0 = tl.load(unary_ptr + base + idx, mask=inside, other=0.0).to(tl.float64)
    prev = tl.where(ok0, u0, neg_inf)  # c_0 = 1
    rows = idx[:, None]
    cols = idx[None, :]
    for t in range(1, L):
        lam = tl.load(lam_ptr + b * T + t - 1)  # float64, computed by the host
        c = _unary_weight(t, L, LEGACY)
        pm = rows < N
        iou = _iou_tile(boxes_ptr, base + (t - 1) * N, base + t * N, rows, cols, N, off)
        cand = prev[:, None] + lam * iou
        cand = tl.where((prev[:, None] != neg_inf) & pm, cand, neg_inf)
        best = tl.max(cand, axis=0)
        arg = tl.min(tl.where(cand == best[None, :], rows, BLOCK_N), axis=0)
        okt = tl.load(ok_ptr + base + t * N + idx, mask=inside, other=0) != 0
        ut = tl.load(unary_ptr + base + t * N + idx, mask=inside, other=0.0).to(tl.float64)
        alive = okt & (best != neg_inf)
        tl.store(back_ptr + base + t * N + idx, tl.where(alive, arg, -1).to(tl.int32), mask=inside)
        prev = tl.where(alive, c * ut + best, neg_inf)
    tl.store(last_ptr + b * N + idx, prev, mask=inside)


def viterbi_link_triton(boxes: torch.Tensor, unary: torch.Tensor, frames: torch.Tensor, lengths: torch.Tensor,
                        valid: torch.Tensor, k: int, pairwise_weight: float, gap_scaling: bool, legacy_vrgv: bool,
                        pixel_offset: float) -> tuple[torch.Tensor, torch.Tensor]:
    """boxes (B, T, N, 4), unary (B, T, N) contiguous float32/float64, frames (B, T), lengths (B,)
    int64, valid (B, T, N) uint8 -> paths (B, k, T) int64, scores (B, k) float64."""
    B, T, N = unary.shape
    dev = unary.device
    paths = torch.full((B, k, T), -1, dtype=torch.int64, device=dev)
    scores = torch.full((B, k), float("-inf"), dtype=torch.float64, device=dev)
    if not (B and T and N):
        return paths, scores
    ok = (valid.bool() & (torch.arange(T, device=dev)[None, :] < lengths[:, None])[..., None]).to(torch.uint8)
    back = torch.full((B, T, N), -1, dtype=torch.int32, device=dev)
    last = torch.empty(B, N, dtype=torch.float64, device=dev)
    # λ_t in float64 on the host, as the C++ kernel computes it: w / gap, or w.
    lam = torch.full((B, T), float(pairwise_weight), dtype=torch.float64, device=dev)
    if gap_scaling and T > 1:
        gap = (frames[:, 1:] - frames[:, :-1]).to(torch.float64)
        lam[:, :-1] = torch.full_like(gap, float(pairwise_weight)) / gap  # a true division: `w / t`
        # on a tensor multiplies by the reciprocal, which can differ in the last bit
    options = {} if _ext.triton_interpret() else {"enable_fp_fusion": False}
    rows = torch.arange(B, device=dev)
    for r in range(k):
        _viterbi_link_kernel[(B,)](
            boxes, unary, lam, lengths, ok, back, last, T, N, float(pixel_offset),
            LEGACY=bool(legacy_vrgv), BLOCK_N=max(16, triton.next_power_of_2(N)), **options)
        best, end = last.max(dim=1)  # the first maximum: the lowest final index
        found = (best != float("-inf")) & (lengths > 0)
        scores[:, r] = torch.where(found, best, scores[:, r])
        for t in range(T - 1, -1, -1):  # walk back; problems with t >= L or no path keep -1
            live = found & (t < lengths)
            paths[:, r, t] = torch.where(live, end, paths[:, r, t])
            ok[rows[live], t, end[live]] = 0
            end = torch.where(live & (t > 0), back[rows, t, end].long(), end)
        if not bool(found.any()):
            break
    return paths, scores


@triton.jit
def _soft_max(x, m, tau, axis: tl.constexpr):
    """tau * log(sum exp(x / tau)) along ``axis`` given its maximum ``m`` (scores, not scaled by
    1 / tau; -inf where every entry is -inf)."""
    neg_inf = float("-inf")
    m_safe = tl.where(m == neg_inf, 0.0, m)
    if axis == 0:
        total = tl.sum(tl.exp((x - m_safe[None, :]) / tau), axis=0)
    else:
        total = tl.sum(tl.exp((x - m_safe[:, None]) / tau), axis=1)
    return tl.where(m == neg_inf, neg_inf, m_safe + tau * tl.log(tl.where(m == neg_inf, 1.0, total)))


@triton.jit
def _normalised(x, keep, tau):
    """exp((x - max) / tau) / sum over the entries where ``keep`` (a block, 1-D or 2-D): a softmax
    whose largest entry is exact whatever tau; 0 where not ``keep`` or nothing is kept."""
    neg_inf = float("-inf")
    x = tl.where(keep, x, neg_inf)
    m = tl.max(tl.reshape(x, (x.numel,)), axis=0)
    w = tl.where(keep, tl.exp((x - tl.where(m == neg_inf, 0.0, m)) / tau), 0.0)
    total = tl.sum(tl.reshape(w, (w.numel,)), axis=0)
    return w / tl.where(total > 0, total, 1.0)


@triton.jit
def _soft_viterbi_kernel(
    boxes_ptr, unary_ptr, lam_ptr, gamma_ptr, tau_ptr, lengths_ptr, ok_ptr, alpha_ptr, marg_ptr, logz_ptr, gw_ptr,
    T, N, off,
    LEGACY: tl.constexpr, BLOCK_N: tl.constexpr,
):
    """Forward (alpha to memory), then backward with the marginals and the derivative of log Z
    w.r.t. the pairwise weight; one program per problem, float64. As the C++ kernel, the DP runs
    on scores with log-sum-exps at temperature tau, and the marginals (link posteriors) are
    normalised per frame (per link), so tau -> 0 gives the hard path."""
    b = tl.program_id(0).to(tl.int64)
    tau = tl.load(tau_ptr)  # float64 (a Python float argument would be float32)
    L = tl.load(lengths_ptr + b)
    idx = tl.arange(0, BLOCK_N)
    inside = idx < N
    rows = idx[:, None]
    cols = idx[None, :]
    base = b * T * N
    neg_inf = float("-inf")
    ok0 = tl.load(ok_ptr + base + idx, mask=inside, other=0) != 0
    u0 = tl.load(unary_ptr + base + idx, mask=inside, other=0.0).to(tl.float64)
    prev = tl.where(ok0, u0, neg_inf)  # c_0 = 1
    tl.store(alpha_ptr + base + idx, prev, mask=inside)
    for t in range(1, L):
        iou = _iou_tile(boxes_ptr, base + (t - 1) * N, base + t * N, rows, cols, N, off)
        x = prev[:, None] + tl.load(lam_ptr + b * T + t - 1) * iou
        x = tl.where((prev[:, None] != neg_inf) & (rows < N), x, neg_inf)
        lse = _soft_max(x, tl.max(x, axis=0), tau, 0)
        c = _unary_weight(t, L, LEGACY)
        okt = tl.load(ok_ptr + base + t * N + idx, mask=inside, other=0) != 0
        ut = tl.load(unary_ptr + base + t * N + idx, mask=inside, other=0.0).to(tl.float64)
        prev = tl.where(okt & (lse != neg_inf), c * ut + lse, neg_inf)
        tl.store(alpha_ptr + base + t * N + idx, prev, mask=inside)
    last_alpha = tl.where(inside, prev, neg_inf)
    log_z = _soft_max(last_alpha[None, :], tl.max(last_alpha[None, :], axis=1), tau, 1)
    log_z = tl.sum(log_z, axis=0)  # the one row
    # No path (L == 0 or a frame without boxes): log Z = -inf; everything below is then masked,
    # so the backward needs no branch around it.
    has_path = (tl.zeros((BLOCK_N,), dtype=tl.float64) + log_z) != neg_inf  # as a block
    beta = tl.zeros((BLOCK_N,), dtype=tl.float64)  # frame L - 1
    last = tl.maximum(L - 1, 0)  # with L == 0 there is no path and this writes zeros
    tl.store(marg_ptr + base + last * N + idx, _normalised(prev, has_path & (prev != neg_inf), tau), mask=inside)
    gw = tl.sum(tl.zeros((BLOCK_N,), dtype=tl.float64), axis=0)
    for step in range(0, L - 1):
        t = L - 2 - step
        tl.debug_barrier()  # alpha written by this program above
        alpha_t = tl.load(alpha_ptr + base + t * N + idx, mask=inside, other=neg_inf)
        iou = _iou_tile(boxes_ptr, base + t * N, base + (t + 1) * N, rows, cols, N, off)
        c = _unary_weight(t + 1, L, LEGACY)
        ok1 = tl.load(ok_ptr + base + (t + 1) * N + idx, mask=inside, other=0) != 0
        u1 = tl.load(unary_ptr + base + (t + 1) * N + idx, mask=inside, other=0.0).to(tl.float64)
        right = tl.where(ok1 & (beta != neg_inf), c * u1 + beta, neg_inf)
        y = tl.load(lam_ptr + b * T + t) * iou + right[None, :]
        y = tl.where(right[None, :] != neg_inf, y, neg_inf)
        beta = _soft_max(y, tl.max(y, axis=1), tau, 1)
        keep = has_path & (alpha_t != neg_inf)
        xi = _normalised(alpha_t[:, None] + y, keep[:, None] & (right[None, :] != neg_inf), tau)
        gw += tl.sum(tl.sum(xi * (tl.load(gamma_ptr + b * T + t) * iou), axis=1), axis=0)
        tl.store(marg_ptr + base + t * N + idx, _normalised(alpha_t + beta, keep, tau), mask=inside)
    tl.store(gw_ptr + b, gw)
    tl.store(logz_ptr + b, log_z)


@triton.jit
def _unary_weight(t, L, LEGACY: tl.constexpr):
    """c_t for t >= 1: 2 on inner frames with the legacy vRGV weighting, else 1 (float64)."""
    if LEGACY:
        return tl.where(t < L - 1, 2.0, 1.0).to(tl.float64)
    return tl.full((), 1.0, tl.float64)


@triton.jit
def _iou_tile(boxes_ptr, first_a, first_b, rows, cols, N, off):
    """IoU (float64) of boxes first_a + rows (one frame) and first_b + cols (the next), computed
    in the boxes' dtype by the box kernels' ``_box_iou``; zero outside N."""
    ax1, ay1, ax2, ay2 = _load_box(boxes_ptr, first_a + rows, rows < N)
    bx1, by1, bx2, by2 = _load_box(boxes_ptr, first_b + cols, cols < N)
    return _box_iou(ax1, ay1, ax2, ay2, bx1, by1, bx2, by2, off).to(tl.float64)


def soft_viterbi_triton(boxes: torch.Tensor, unary: torch.Tensor, frames: torch.Tensor, lengths: torch.Tensor,
                        valid: torch.Tensor, pairwise_weight: torch.Tensor, tau: float, gap_scaling: bool,
                        legacy_vrgv: bool, pixel_offset: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """As ``pyvrel::soft_viterbi``: -> marginals (B, T, N), log_partition (B,), d log_partition /
    d pairwise_weight (B,), float64."""
    B, T, N = unary.shape
    dev = unary.device
    marginals = torch.zeros(B, T, N, dtype=torch.float64, device=dev)
    log_z = torch.full((B,), float("-inf"), dtype=torch.float64, device=dev)
    grad_w = torch.zeros(B, dtype=torch.float64, device=dev)
    if not (B and T and N):
        return marginals, log_z, grad_w
    ok = (valid.bool() & (torch.arange(T, device=dev)[None, :] < lengths[:, None])[..., None]).to(torch.uint8)
    gamma = torch.ones(B, T, dtype=torch.float64, device=dev)
    lam = pairwise_weight[:, None].expand(B, T).clone()
    if gap_scaling and T > 1:
        gap = (frames[:, 1:] - frames[:, :-1]).to(torch.float64)
        gamma[:, :-1] = torch.ones_like(gap) / gap
        lam[:, :-1] = pairwise_weight[:, None] / gap
    alpha = torch.empty(B, T, N, dtype=torch.float64, device=dev)
    options = {} if _ext.triton_interpret() else {"enable_fp_fusion": False}
    _soft_viterbi_kernel[(B,)](
        boxes, unary, lam, gamma, torch.tensor([tau], dtype=torch.float64, device=dev), lengths, ok,
        alpha, marginals, log_z, grad_w, T, N, float(pixel_offset), LEGACY=bool(legacy_vrgv),
        BLOCK_N=max(16, triton.next_power_of_2(N)), **options)
    return marginals, log_z, grad_w
