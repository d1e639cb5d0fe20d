"""Triton kernel of Viterbi linking: one program per problem runs the forward max-sum DP.

Each step loads the boxes of frames t-1 (rows p) and t (columns q), forms the (N, N) tile of
``prev[p] + λ_t · IoU`` and reduces over p: the maximum, and the lowest p reaching it (the tie rule
of every backend). Back pointers go to memory; the host walks them back (vectorised over
problems) and, for k disjoint paths, removes the chosen boxes and runs the DP again. IoUs are
computed in the boxes' dtype with the operation order of ``csrc/include/pyvrel/box.h`` and the
kernel is compiled without floating-point contraction (``enable_fp_fusion=False``), so values are
those of the C++ kernel.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from pyvrel import _ext


@triton.jit
def _viterbi_forward_kernel(
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
        if LEGACY:
            c = tl.where(t < L - 1, 2.0, 1.0).to(tl.float64)
        else:
            c = 1.0
        pb = boxes_ptr + 4 * (base + (t - 1) * N + rows)
        qb = boxes_ptr + 4 * (base + t * N + cols)
        pm = rows < N
        qm = cols < N
        ax1 = tl.load(pb + 0, mask=pm, other=0.0)
        ay1 = tl.load(pb + 1, mask=pm, other=0.0)
        ax2 = tl.load(pb + 2, mask=pm, other=0.0)
        ay2 = tl.load(pb + 3, mask=pm, other=0.0)
        bx1 = tl.load(qb + 0, mask=qm, other=0.0)
        by1 = tl.load(qb + 1, mask=qm, other=0.0)
        bx2 = tl.load(qb + 2, mask=qm, other=0.0)
        by2 = tl.load(qb + 3, mask=qm, other=0.0)
        w = tl.maximum(tl.minimum(ax2, bx2) - tl.maximum(ax1, bx1) + off, 0.0)
        h = tl.maximum(tl.minimum(ay2, by2) - tl.maximum(ay1, by1) + off, 0.0)
        inter = w * h
        area_a = (ax2 - ax1 + off) * (ay2 - ay1 + off)
        area_b = (bx2 - bx1 + off) * (by2 - by1 + off)
        uni = area_a + area_b - inter
        iou = tl.where(uni > 0, inter / tl.where(uni > 0, uni, 1.0), 0.0)
        cand = prev[:, None] + lam * iou.to(tl.float64)
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
        lam[:, :-1] = float(pairwise_weight) / (frames[:, 1:] - frames[:, :-1]).to(torch.float64)
    options = {} if _ext.triton_interpret() else {"enable_fp_fusion": False}
    rows = torch.arange(B, device=dev)
    for r in range(k):
        _viterbi_forward_kernel[(B,)](
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
