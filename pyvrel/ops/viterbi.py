"""Viterbi linking of detections over time, its smoothed (soft) version, and the paths' tubes.

Semantics, options and the quirks of the public implementations these ops replace are in
``docs/architecture.md`` ("Seq-NMS and Viterbi"). References live in
:mod:`pyvrel.ops.reference.viterbi`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from pyvrel import _codes, _ext
from pyvrel.ops import _checks
from pyvrel.ops.reference import viterbi as ref
from pyvrel.ops._backend import call, choose_backend
from pyvrel.ops._per_box import finite_where_valid, per_box_inputs
from pyvrel.ops.types import Tubes

__all__ = ["SoftViterbiResult", "ViterbiResult", "path_tubes", "soft_viterbi", "viterbi_link"]

_VITERBI_BACKENDS = ("cpp", "cuda", "triton", "reference")
_SOFT_BACKENDS = ("cpp", "cuda", "triton", "reference")


class ViterbiResult(NamedTuple):
    """Output of :func:`viterbi_link`.

    paths (Tensor[B, k, T] or [k, T] int64): box index per frame of the k best disjoint paths,
        -1 past the problem's length and for paths that do not exist.
    scores (Tensor[B, k] or [k] float64): path scores, best first; -inf where no path exists.
    """

    paths: Tensor
    scores: Tensor


class SoftViterbiResult(NamedTuple):
    """Output of :func:`soft_viterbi`.

    marginals (Tensor[B, T, N] or [T, N]): probability that the smoothed path uses each box
        (sums to 1 over the boxes of each frame within the length, 0 elsewhere); detached.
    log_partition (Tensor[B] or []): ``τ · log Σ_paths exp(score / τ)``; differentiable w.r.t.
        ``unary`` and ``pairwise_weight`` (its gradient w.r.t. unary[t, n] is c_t · marginals[t, n]).
    """

    marginals: Tensor
    log_partition: Tensor


def _unary_weights(lengths: Tensor, T: int, legacy_vrgv: bool) -> Tensor:
    """c (B, T) float64: 1, or 2 on inner frames with ``legacy_vrgv`` (see the reference)."""
    t = torch.arange(T, device=lengths.device)[None, :]
    inner = (t > 0) & (t < lengths[:, None] - 1)
    return torch.where(inner & legacy_vrgv, 2.0, 1.0).to(torch.float64)


@torch.library.custom_op("pyvrel::viterbi_link", mutates_args=())
def _viterbi_link(boxes: Tensor, unary: Tensor, frames: Tensor, lengths: Tensor, valid: Tensor, k: int,
                  pairwise_weight: float, gap_scaling: bool, legacy_vrgv: bool, pixel_offset: float,
                  backend: str) -> tuple[Tensor, Tensor]:
    """boxes (B, T, N, 4), unary (B, T, N), frames (B, T), lengths (B,) int64, valid (B, T, N) uint8
    -> paths (B, k, T) int64, scores (B, k) float64."""
    if backend == "triton":
        from pyvrel.kernels.viterbi import viterbi_link_triton

        return viterbi_link_triton(boxes, unary, frames, lengths, valid, k, pairwise_weight, gap_scaling,
                                   legacy_vrgv, pixel_offset)
    B, T, N = unary.shape
    paths = torch.full((B, k, T), -1, dtype=torch.int64, device=unary.device)
    scores = torch.full((B, k), float("-inf"), dtype=torch.float64, device=unary.device)
    if B and T and N:
        args = [boxes, unary, frames, lengths, valid, B, T, N, k, pairwise_weight, gap_scaling, legacy_vrgv,
                pixel_offset, paths, scores, _codes.dtype_code(unary)]
        if backend == "cuda":
            workspace = torch.empty(_ext.cuda().viterbi_workspace_bytes(B, T, N), dtype=torch.uint8,
                                    device=unary.device)
            args.append(workspace)
        _ext.launch(backend, "viterbi_forward", *args)
    return paths, scores


@_viterbi_link.register_fake
def _(boxes, unary, frames, lengths, valid, k, pairwise_weight, gap_scaling, legacy_vrgv, pixel_offset, backend):
    B, T, _ = unary.shape
    return unary.new_empty(B, k, T, dtype=torch.int64), unary.new_empty(B, k, dtype=torch.float64)


@torch.library.custom_op("pyvrel::soft_viterbi", mutates_args=())
def _soft_viterbi(boxes: Tensor, unary: Tensor, frames: Tensor, lengths: Tensor, valid: Tensor,
                  pairwise_weight: Tensor, tau: float, gap_scaling: bool, legacy_vrgv: bool, pixel_offset: float,
                  backend: str) -> tuple[Tensor, Tensor, Tensor]:
    """... pairwise_weight (B,) float64 -> marginals (B, T, N), log_partition (B,), and
    d log_partition / d pairwise_weight (B,), all float64."""
    if backend == "triton":
        from pyvrel.kernels.viterbi import soft_viterbi_triton

        return soft_viterbi_triton(boxes, unary, frames, lengths, valid, pairwise_weight, tau, gap_scaling,
                                   legacy_vrgv, pixel_offset)
    B, T, N = unary.shape
    marginals = torch.zeros(B, T, N, dtype=torch.float64, device=unary.device)
    log_z = torch.full((B,), float("-inf"), dtype=torch.float64, device=unary.device)
    grad_w = torch.zeros(B, dtype=torch.float64, device=unary.device)
    if B and T and N:
        args = [boxes, unary, frames, lengths, valid, pairwise_weight, B, T, N, tau, gap_scaling, legacy_vrgv,
                pixel_offset, marginals, log_z, grad_w, _codes.dtype_code(unary)]
        if backend == "cuda":
            workspace = torch.empty(_ext.cuda().soft_viterbi_workspace_bytes(B, T, N), dtype=torch.uint8,
                                    device=unary.device)
            args.append(workspace)
        _ext.launch(backend, "soft_viterbi_forward", *args)
    return marginals, log_z, grad_w


@_soft_viterbi.register_fake
def _(boxes, unary, frames, lengths, valid, pairwise_weight, tau, gap_scaling, legacy_vrgv, pixel_offset, backend):
    B, T, N = unary.shape
    f64 = dict(dtype=torch.float64)
    return unary.new_empty(B, T, N, **f64), unary.new_empty(B, **f64), unary.new_empty(B, **f64)


def _soft_viterbi_setup(ctx, inputs, output):
    _, _, _, lengths, _, _, _, _, legacy_vrgv, _, _ = inputs
    marginals, _, grad_w = output
    ctx.save_for_backward(marginals, grad_w, lengths)
    ctx.legacy_vrgv = legacy_vrgv


def _soft_viterbi_grad(ctx, grad_marginals, grad_log_z, grad_grad_w):
    # marginals and grad_w are returned detached by the public op: only log_partition carries
    # gradients. d log Z / d unary[t, n] = c_t * marginals[t, n]; d log Z / d w = grad_w.
    marginals, grad_w, lengths = ctx.saved_tensors
    c = _unary_weights(lengths, marginals.shape[1], ctx.legacy_vrgv)
    grad_unary = grad_log_z[:, None, None] * c[..., None] * marginals
    return None, grad_unary, None, None, None, grad_log_z * grad_w, None, None, None, None, None


_soft_viterbi.register_autograd(_soft_viterbi_grad, setup_context=_soft_viterbi_setup)


def _viterbi_inputs(op: str, boxes: Tensor, unary: Tensor, frames: Tensor | None, lengths: Tensor | None,
                    counts: Tensor | None, valid: Tensor | None, gap_scaling: bool, pixel_offset: float):
    """Validates the common inputs of the Viterbi ops; returns (batched, boxes, unary, frames,
    lengths, valid) in the (B, T, N) layout with int64 frames/lengths, boxes of invalid entries
    zeroed (so padding never reaches the arithmetic), and the pixel offset."""
    batched, shape, boxes, unary, mask, tensors = per_box_inputs(op, boxes, "unary", unary, counts, valid)
    B, T, N = unary.shape
    dev = unary.device
    if frames is None:
        frames = torch.arange(T, device=dev).expand(B, T)
    else:
        _checks.tensor(op, "frames", frames, integer=True)
        if tuple(frames.shape) != shape[:-1]:
            raise ValueError(f"{op}: frames must have shape {shape[:-1]}, got {tuple(frames.shape)}")
        tensors["frames"] = frames
        frames = frames.reshape(B, T)
    if lengths is None:
        lengths = torch.full((B,), T, dtype=torch.int64, device=dev)
    else:
        _checks.tensor(op, "lengths", lengths, integer=True)
        if tuple(lengths.shape) != ((B,) if batched else ()):
            raise ValueError(f"{op}: lengths must have shape {(B,) if batched else ()}, got {tuple(lengths.shape)}")
        tensors["lengths"] = lengths
        lengths = lengths.reshape(B)
        _checks.int_range(op, "lengths", lengths, 0, T, f"in [0, T={T}]")
    everything_valid = mask is None and tensors.get("lengths") is None  # the common, fast case
    _checks.same_device(op, **tensors)
    _checks.int_range(op, "frames", frames, 0, _checks.MAX_FRAME)
    # unchecked values (CUDA, see _checks.check_values) are clamped: no kernel reads past T
    frames = frames.to(torch.int64).clamp(0, _checks.MAX_FRAME).contiguous()
    lengths = lengths.to(torch.int64).clamp(0, T).contiguous()
    in_len = torch.arange(T, device=dev)[None, :] < lengths[:, None]
    mask = in_len[..., None].expand(B, T, N) if mask is None else mask & in_len[..., None]
    if gap_scaling and T > 1 and _checks.check_values(frames) and bool(((frames[:, 1:] <= frames[:, :-1]) & in_len[:, 1:]).any()):
        raise ValueError(f"{op}: frames must be strictly increasing within each problem's length "
                         "(λ = 1 / frame gap); pass gap_scaling=False for a constant λ")
    off = _checks.pixel_offset(op, pixel_offset)
    finite_where_valid(op, "boxes", boxes, "unary", unary, mask, everything_valid)
    cdt = _checks.compute_dtype(boxes)
    if not everything_valid:  # (no test of mask.all(): a host sync on CUDA)
        boxes = torch.where(mask[..., None], boxes, torch.zeros((), dtype=boxes.dtype, device=dev))
    boxes = boxes.to(cdt).contiguous()
    return batched, boxes, unary, frames, lengths, mask, off


def viterbi_link(
    boxes: Tensor,
    unary: Tensor,
    frames: Tensor | None = None,
    lengths: Tensor | None = None,
    counts: Tensor | None = None,
    *,
    valid: Tensor | None = None,
    k: int = 1,
    pairwise_weight: float = 1.0,
    gap_scaling: bool = True,
    legacy_vrgv: bool = False,
    pixel_offset: float = 0,
    backend: str | None = None,
) -> ViterbiResult:
    """Link boxes over sampled frames by exact max-sum Viterbi (vRGV eq. 12–13, Gkioxari & Malik).

    A path takes one valid box per frame ``t < L`` of its problem; its score is
    ``Σ_t c_t·unary[t, p_t] + Σ_{t<L-1} λ_t·IoU(box[t, p_t], box[t+1, p_{t+1}])`` where every link
    counts (vRGV's code drops the last one; this op does not), ``λ_t = pairwise_weight /
    (frames[t+1] - frames[t])`` (vRGV's λ = 1/D) or ``pairwise_weight`` when ``gap_scaling=False``
    (Gkioxari & Malik: 1), and ``c_t = 1``; ``legacy_vrgv=True`` sets ``c_t = 2`` on inner frames,
    the sum of eq. 12 over links that vRGV maximises. The ``k`` best disjoint paths are found by
    removing each path's boxes and solving again. Ties: the lowest predecessor index, then the
    lowest final index. Sums in float64; IoUs in the boxes' dtype.

    Args:
        boxes (Tensor[B, T, N, 4] or [T, N, 4]): candidate boxes (e.g. region proposals).
        unary (Tensor[B, T, N] or [T, N]): node scores (e.g. attention), same dtype as boxes.
        frames (Tensor[B, T] or [T] int, optional): real frame index of each sampled frame,
            strictly increasing (default ``0..T-1``, gap 1).
        lengths (Tensor[B] or [] int, optional): frames per problem (default T).
        counts (Tensor[B, T] or [T] int, optional): valid boxes per frame (the first ones);
            exclusive with ``valid (Tensor[B, T, N] bool)``.
        k: number of disjoint paths.
        pairwise_weight, gap_scaling, legacy_vrgv: the score, as above.
        pixel_offset: 0, or 1 for vRGV's +1 areas.
        backend: ``None``, ``"cpp"``, ``"cuda"``, ``"triton"`` or ``"reference"``.

    Returns:
        :class:`ViterbiResult` ``(paths (B, k, T), scores (B, k))``; a problem with a frame that has
        no box (left) gets -1 / -inf. Use :func:`path_tubes` to interpolate onto every frame.
    """
    op = "viterbi_link"
    k = _checks.number(op, "k", k, 1, integer=True)
    pairwise_weight = _checks.number(op, "pairwise_weight", pairwise_weight)
    batched, boxes_c, unary, frames, lengths, mask, off = _viterbi_inputs(
        op, boxes, unary, frames, lengths, counts, valid, gap_scaling, pixel_offset)
    chosen = choose_backend(op, unary.device, backend, _VITERBI_BACKENDS)
    unary_c = unary.to(boxes_c.dtype).contiguous()
    if chosen == "reference":
        paths, scores = ref.viterbi_link_ref(boxes_c, unary_c, frames, lengths, mask, k=k,
                                             pairwise_weight=float(pairwise_weight), gap_scaling=gap_scaling,
                                             legacy_vrgv=legacy_vrgv, pixel_offset=off)
    else:
        paths, scores = call(_viterbi_link, boxes_c, unary_c, frames, lengths, mask.to(torch.uint8).contiguous(), k,
                             float(pairwise_weight), bool(gap_scaling), bool(legacy_vrgv), off, chosen)
    if not batched:
        paths, scores = paths[0], scores[0]
    return ViterbiResult(paths, scores)


def soft_viterbi(
    boxes: Tensor,
    unary: Tensor,
    frames: Tensor | None = None,
    lengths: Tensor | None = None,
    counts: Tensor | None = None,
    *,
    valid: Tensor | None = None,
    pairwise_weight: float | Tensor = 1.0,
    tau: float = 1.0,
    gap_scaling: bool = True,
    legacy_vrgv: bool = False,
    pixel_offset: float = 0,
    backend: str | None = None,
) -> SoftViterbiResult:
    """Smoothed Viterbi linking: log-sum-exp forward–backward at temperature ``tau``.

    Replaces the max over paths of :func:`viterbi_link` by ``τ · log Σ_paths exp(score / τ)``
    (same path score, same arguments); ``tau → 0`` recovers the hard path and its score. Returns
    the per-box path marginals and the log-partition, which is differentiable w.r.t. ``unary``
    and ``pairwise_weight`` (a float, or a tensor of shape [] or [B]) — the gradient w.r.t. the
    unaries is the marginals (times c_t). Boxes get no gradient. Computed in float64.

    Returns:
        :class:`SoftViterbiResult` ``(marginals (B, T, N), log_partition (B,))`` in unary's dtype;
        problems with no path give -inf and zero marginals.
    """
    op = "soft_viterbi"
    tau = _checks.number(op, "tau", tau, 0.0, lo_open=True)
    batched, boxes_c, unary, frames, lengths, mask, off = _viterbi_inputs(
        op, boxes, unary, frames, lengths, counts, valid, gap_scaling, pixel_offset)
    B = unary.shape[0]
    if isinstance(pairwise_weight, Tensor):
        if pairwise_weight.dim() > 1 or pairwise_weight.numel() not in (1, B) or not pairwise_weight.is_floating_point():
            raise ValueError(f"{op}: pairwise_weight must be a float or a floating tensor of shape [] or [{B}], "
                             f"got {pairwise_weight.dtype} {tuple(pairwise_weight.shape)}")
        _checks.same_device(op, unary=unary, pairwise_weight=pairwise_weight)
        _checks.finite(op, "pairwise_weight", pairwise_weight)
        weight = pairwise_weight.to(torch.float64).reshape(-1).expand(B)
    else:
        weight = torch.full((B,), _checks.number(op, "pairwise_weight", pairwise_weight), dtype=torch.float64,
                            device=unary.device)
    chosen = choose_backend(op, unary.device, backend, _SOFT_BACKENDS)
    unary_c = unary.to(boxes_c.dtype)
    if chosen == "reference":
        marginals, log_z = ref.soft_viterbi_ref(boxes_c, unary_c, frames, lengths, mask, weight, tau=float(tau),
                                                gap_scaling=gap_scaling, legacy_vrgv=legacy_vrgv, pixel_offset=off)
    else:
        marginals, log_z, _ = call(_soft_viterbi, boxes_c, unary_c.contiguous(), frames, lengths,
                                   mask.to(torch.uint8).contiguous(), weight.contiguous(), float(tau),
                                   bool(gap_scaling), bool(legacy_vrgv), off, chosen)
    marginals, log_z = marginals.detach().to(unary.dtype), log_z.to(unary.dtype)
    if not batched:
        marginals, log_z = marginals[0], log_z[0]
    return SoftViterbiResult(marginals, log_z)


def path_tubes(boxes: Tensor, paths: Tensor, frames: Tensor | None = None, *,
               backend: str | None = None) -> Tubes:
    """Boxes of linked paths on every video frame, by linear interpolation (vRGV eq. 14).

    Args:
        boxes (Tensor[B, T, N, 4] or [T, N, 4]): the boxes given to :func:`viterbi_link`.
        paths (Tensor[B, k, T] or [k, T] int64): its paths (-1 past a path's end).
        frames (Tensor[B, T] or [T] int, optional): the real frame index of each sampled frame
            (default ``0..T-1``); interpolation uses these, never positions within a clip.
        backend: as in :func:`pyvrel.ops.interpolate_boxes`.

    Returns:
        Tubes of the ``B * k`` paths (problem-major): ``start`` = the first sampled frame,
        ``length`` = last - first + 1 video frames (0 for empty paths); boxes between samples are
        interpolated linearly. Differentiable w.r.t. ``boxes``.
    """
    from pyvrel.ops.tubes import interpolate_boxes

    op = "path_tubes"
    _checks.tensor(op, "boxes", boxes, last=4, dtypes=_checks.FLOAT_DTYPES)
    _checks.tensor(op, "paths", paths, integer=True)
    if boxes.dim() == 3:
        boxes, paths = boxes[None], paths[None]
        frames = None if frames is None else frames[None]
    if boxes.dim() != 4 or paths.dim() != 3 or paths.shape[0] != boxes.shape[0] or paths.shape[2] != boxes.shape[1]:
        raise ValueError(f"{op}: boxes (B, T, N, 4) and paths (B, k, T) do not match: "
                         f"{tuple(boxes.shape)} and {tuple(paths.shape)}")
    B, T, N, _ = boxes.shape
    k = paths.shape[1]
    if frames is None:
        frames = torch.arange(T, device=boxes.device).expand(B, T)
    _checks.tensor(op, "frames", frames, ndim=2, integer=True)
    if tuple(frames.shape) != (B, T):
        raise ValueError(f"{op}: frames must have shape {(B, T)} to match boxes {tuple(boxes.shape)}, "
                         f"got {tuple(frames.shape)}")
    _checks.same_device(op, boxes=boxes, paths=paths, frames=frames)
    # A path is box indices in [0, N) on its first frames, then -1 (viterbi_link's layout).
    _checks.int_range(op, "paths", paths, -1, N - 1)
    if T > 1 and _checks.check_values(paths) and bool(((paths[..., 1:] >= 0) & (paths[..., :-1] < 0)).any()):
        raise ValueError(f"{op}: paths must hold box indices on their first frames and -1 after them "
                         "(a -1 followed by a box index)")
    counts = (paths >= 0).sum(-1).reshape(B * k)
    if N:
        picked = boxes[torch.arange(B, device=boxes.device)[:, None, None], torch.arange(T, device=boxes.device),
                       paths.clamp(0, N - 1)]  # (B, k, T, 4)
    else:  # no boxes: every path is empty
        picked = boxes.new_zeros(B, k, T, 4)
    sample_frames = frames[:, None, :].expand(B, k, T).reshape(B * k, T)
    return interpolate_boxes(sample_frames.to(torch.int64), picked.reshape(B * k, T, 4), counts, backend=backend)
