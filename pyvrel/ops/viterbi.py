"""Linking detections over time: Seq-NMS, Viterbi linking and its smoothed (soft) version.

Semantics, options and the quirks of the public implementations these ops replace are in
``specs/postprocessing.md`` §3–§4 and in ``docs/architecture.md`` ("Linking"). References live in
:mod:`pyvrel.ops.reference_linking`.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from torch import Tensor

from pyvrel import _ext
from pyvrel.ops import _checks
from pyvrel.ops import reference_linking as ref
from pyvrel.ops._backend import choose_backend
from pyvrel.ops.types import Tubes

__all__ = ["SeqNMSResult", "SoftViterbiResult", "ViterbiResult", "path_tubes", "seq_nms", "soft_viterbi",
           "viterbi_link"]

_SEQ_NMS_BACKENDS = ("cpp", "cuda", "reference")  # the select loop is serial per video: no Triton
_RESCORE = {"avg": 0, "max": 1, "none": 2}  # csrc/include/pyvrel/seq_nms.h: SeqNmsRescore
_SUPPRESS = {"remove": 0, "zero": 1}  # SeqNmsSuppress


def _code(t: Tensor) -> int:
    return _ext.DTYPE_CODES[t.dtype]


def _compute_dtype(t: Tensor) -> torch.dtype:
    return t.dtype if t.dtype in (torch.float32, torch.float64) else torch.float32


def _ptr(t: Tensor | None) -> int:
    return 0 if t is None else t.data_ptr()


def _finite_where_valid(op: str, boxes_name: str, boxes: Tensor, values_name: str, values: Tensor, mask: Tensor,
                        everything_valid: bool) -> None:
    """No NaN/inf in boxes (B, T, N, 4) or values (B, T, N) where ``mask``; padding is never read.

    One fused test first (a sum of finite values is finite unless it overflows); the precise,
    per-argument tests, without copying the valid entries, only when it fails or entries are
    masked. Skipped while torch.compile traces (data-dependent)."""
    if _checks._compiling() or values.numel() == 0:
        return
    if everything_valid and bool(torch.isfinite(boxes.sum(-1) + values).all()):
        return
    if bool((~torch.isfinite(boxes).all(-1) & mask).any()):
        raise ValueError(f"{op}: {boxes_name} contains NaN or infinite values")
    if bool((~torch.isfinite(values) & mask).any()):
        raise ValueError(f"{op}: {values_name} contains NaN or infinite values")


# ---- pyvrel::seq_nms ------------------------------------------------------------------------


@torch.library.custom_op("pyvrel::seq_nms", mutates_args=())
def _seq_nms(boxes: Tensor, scores: Tensor, valid: Tensor, labels: Tensor | None, link_threshold: float,
             suppress_threshold: float, strict: bool, rescore: int, suppress: int, max_sequences: int,
             min_score: float, pixel_offset: float, node_cap: int, backend: str
             ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """boxes (B, T, N, 4), scores (B, T, N), valid (B, T, N) uint8, labels (B, T, N) int64 or None
    -> scores_out (B, T, N), seq_id (B, T, N), seq_count (B,), seq_start, seq_len (B, K) int64,
    seq_score (B, K) float64, nodes (B, node_cap) int64, nodes_needed (B,)."""
    B, T, N = scores.shape
    K = _sequence_capacity(T, N, max_sequences)
    dev = boxes.device
    scores_out = scores.clone()
    seq_id = torch.empty(B, T, N, dtype=torch.int64, device=dev)
    seq_count = torch.zeros(B, dtype=torch.int64, device=dev)
    seq_start = torch.zeros(B, K, dtype=torch.int64, device=dev)
    seq_len = torch.zeros(B, K, dtype=torch.int64, device=dev)
    seq_score = torch.zeros(B, K, dtype=torch.float64, device=dev)
    nodes = torch.zeros(B, node_cap, dtype=torch.int64, device=dev)
    needed = torch.zeros(B, dtype=torch.int64, device=dev)
    if scores.numel():
        args = [boxes.data_ptr(), scores.data_ptr(), valid.data_ptr(), _ptr(labels), B, T, N, link_threshold,
                suppress_threshold, strict, rescore, suppress, max_sequences, min_score, pixel_offset,
                scores_out.data_ptr(), seq_id.data_ptr(), seq_count.data_ptr(), seq_start.data_ptr(),
                seq_len.data_ptr(), seq_score.data_ptr(), K, nodes.data_ptr(), node_cap, needed.data_ptr(),
                _code(boxes)]
        if backend == "cuda":
            workspace = torch.empty(_ext.cuda().seq_nms_workspace_bytes(B, T, N), dtype=torch.uint8, device=dev)
            args.append(workspace.data_ptr())
        _ext.launch(backend, "seq_nms_forward", dev, *args)
    else:
        seq_id.fill_(-1)
    return scores_out, seq_id, seq_count, seq_start, seq_len, seq_score, nodes, needed


@_seq_nms.register_fake
def _(boxes, scores, valid, labels, link_threshold, suppress_threshold, strict, rescore, suppress, max_sequences,
      min_score, pixel_offset, node_cap, backend):
    B, T, N = scores.shape
    K = _sequence_capacity(T, N, max_sequences)
    i64 = dict(dtype=torch.int64, device=boxes.device)
    return (torch.empty_like(scores), scores.new_empty(B, T, N, **i64), scores.new_empty(B, **i64),
            scores.new_empty(B, K, **i64), scores.new_empty(B, K, **i64),
            scores.new_empty(B, K, dtype=torch.float64), scores.new_empty(B, node_cap, **i64),
            scores.new_empty(B, **i64))


def _sequence_capacity(T: int, N: int, max_sequences: int) -> int:
    """Upper bound of sequences per video: each selects a path of >= 2 boxes that "remove" cuts
    out of the graph, or ("zero") sets at least one positive score to 0, so at most T * N."""
    cap = max(T * N, 1)
    return min(cap, max_sequences) if max_sequences > 0 else cap


class SeqNMSResult(NamedTuple):
    """Output of :func:`seq_nms`.

    scores (Tensor[B, T, N] or [T, N]): rescored scores (entries outside ``valid`` unchanged).
    sequence_id (Tensor[B, T, N] or [T, N] int64): the first sequence that selected each box
        (index into the tracklets of its video, in selection order), -1 if none.
    tracklets (Tubes): the K selected sequences of all videos, video-major in selection order:
        boxes ``(K, L, 4)``, ``start`` (first frame), ``length``.
    box_index (Tensor[K, L] int64): the detection index of each tracklet frame, -1 padded.
    tracklet_score (Tensor[K] float64): sum of the (current) scores along the path when selected.
    video (Tensor[K] int64): batch index of each tracklet (0 for unbatched input).
    """

    scores: Tensor
    sequence_id: Tensor
    tracklets: Tubes
    box_index: Tensor
    tracklet_score: Tensor
    video: Tensor


def _tracklets(boxes: Tensor, video: Tensor, start: Tensor, length: Tensor, box_index: Tensor) -> Tubes:
    """Gather the tracklet boxes ``boxes[video, start + d, box_index[:, d]]`` (zero padded)."""
    K, L = box_index.shape
    d = torch.arange(L, device=boxes.device)
    inside = d[None, :] < length[:, None]
    frame = (start[:, None] + d[None, :]).clamp(max=boxes.shape[1] - 1) if boxes.shape[1] else start[:, None]
    picked = boxes[video[:, None].expand(K, L), frame.expand(K, L), box_index.clamp(min=0)]
    return Tubes(torch.where(inside[..., None], picked, torch.zeros_like(picked)), start, length)


def seq_nms(
    boxes: Tensor,
    scores: Tensor,
    counts: Tensor | None = None,
    *,
    valid: Tensor | None = None,
    labels: Tensor | None = None,
    num_frames: Tensor | None = None,
    link_threshold: float = 0.5,
    suppress_threshold: float = 0.3,
    rescore: Literal["avg", "max", "none"] | None = None,
    variant: Literal["seqnms", "vidvrd2"] = "seqnms",
    max_sequences: int | None = None,
    min_score: float = 0.0,
    strict: bool = False,
    pixel_offset: float = 0,
    backend: str | None = None,
) -> SeqNMSResult:
    """Seq-NMS: link per-frame detections into sequences, rescore and suppress (Han et al. 2016).

    Exactly the reference algorithm of ``specs/postprocessing.md`` §3.2 (lrghust/tmoopenn/
    MrParosk): box ``i`` of frame ``t`` links to box ``j`` of frame ``t + 1`` when their IoU is
    ``>= link_threshold`` (and the labels are equal and >= 0, if given). Then, repeatedly: a
    backward DP gives each box the best score sum of a path starting at it (ties: the lowest
    successor index); among the boxes with no incoming link, scanned frame by frame and by index,
    the first with the strictly largest sum above ``min_score`` starts the selected path; the
    loop stops when there is none or the path is a single box. The path's boxes are rescored
    (``"avg"``: sum / length, ``"max"``, ``"none"``), and in each of its frames the path box and
    every box with IoU ``>= suppress_threshold`` with it are suppressed: they lose all their links
    (labels are not considered here). Sums are accumulated in float64.

    ``variant="vidvrd2"`` is the VidVRD-II tracklet setting (Xie et al. 2020): suppressed boxes
    keep their links but their score becomes 0 (so later sequences may run through used boxes),
    no rescoring (``rescore`` must be ``"none"``/None); its tracklet setting uses
    ``suppress_threshold=0.7``.

    Args:
        boxes (Tensor[B, T, N, 4] or [T, N, 4]): per-frame detections ``(x1, y1, x2, y2)``, padded
            to N per frame; a leading batch of videos, all computed in one call.
        scores (Tensor[B, T, N] or [T, N]): detection scores, same dtype as ``boxes``.
        counts (Tensor[B, T] or [T] int, optional): valid detections per frame (the first
            ``counts[b, t]``); default all N. Exclusive with ``valid``.
        valid (Tensor[B, T, N] or [T, N] bool, optional): validity mask of the detections.
        labels (Tensor[B, T, N] or [T, N] int, optional): class-aware linking; a label < 0 never
            links. To run classes independently, put them in the batch dimension.
        num_frames (Tensor[B] int, optional): frames of each video (default T); later frames are
            ignored.
        link_threshold, suppress_threshold: IoU thresholds in [0, 1], compared in the boxes' dtype.
        rescore: ``"avg"`` (default for ``"seqnms"``), ``"max"`` or ``"none"``.
        max_sequences: stop after this many sequences per video (None: no limit).
        min_score: a path is selected only if its score sum is strictly greater (default 0).
        strict: compare IoUs with ``>`` instead of ``>=`` (both thresholds).
        pixel_offset: 0 (continuous) or 1 (legacy +1 widths/heights).
        backend: ``None`` (automatic), ``"cpp"``, ``"cuda"`` or ``"reference"``.

    Returns:
        :class:`SeqNMSResult` (scores, sequence_id, tracklets, box_index, tracklet_score, video).
        Identical on every backend (exact, including ties).
    """
    op = "seq_nms"
    batched, shape, boxes, scores, mask, tensors = _per_box_inputs(op, boxes, "scores", scores, counts, valid)
    B, T, N = scores.shape
    if mask is None:
        mask = torch.ones(B, T, N, dtype=torch.bool, device=boxes.device)
    if labels is not None:
        _checks.tensor(op, "labels", labels, integer=True)
        if tuple(labels.shape) != shape:
            raise ValueError(f"{op}: labels must have shape {shape}, got {tuple(labels.shape)}")
        tensors["labels"] = labels
        labels = labels.reshape(B, T, N).to(torch.int64).contiguous()
    if num_frames is not None:
        _checks.tensor(op, "num_frames", num_frames, ndim=1, integer=True)
        if not batched or num_frames.shape[0] != B:
            raise ValueError(f"{op}: num_frames must have shape ({B},) (one per video of batched boxes), "
                             f"got {tuple(num_frames.shape)}")
        tensors["num_frames"] = num_frames
        if B and not _checks._compiling() and bool(((num_frames < 0) | (num_frames > T)).any()):
            raise ValueError(f"{op}: num_frames must be in [0, T={T}]")
        mask = mask & (torch.arange(T, device=num_frames.device)[None, :] < num_frames[:, None])[..., None]
    device = _checks.same_device(op, **tensors)
    _checks.in_range(op, "link_threshold", float(link_threshold), 0.0, 1.0)
    _checks.in_range(op, "suppress_threshold", float(suppress_threshold), 0.0, 1.0)
    off = _checks.pixel_offset(op, pixel_offset)
    if variant not in ("seqnms", "vidvrd2"):
        raise ValueError(f"{op}: variant must be 'seqnms' or 'vidvrd2', got {variant!r}")
    if rescore is None:
        rescore = "avg" if variant == "seqnms" else "none"
    if rescore not in _RESCORE:
        raise ValueError(f"{op}: rescore must be one of {tuple(_RESCORE)}, got {rescore!r}")
    if variant == "vidvrd2" and rescore != "none":
        raise ValueError(f"{op}: variant='vidvrd2' does not rescore (rescore must be 'none'), got {rescore!r}")
    suppress = "remove" if variant == "seqnms" else "zero"
    if variant == "vidvrd2" and min_score < 0:
        raise ValueError(f"{op}: variant='vidvrd2' needs min_score >= 0 (zeroed paths would repeat), got {min_score}")
    if max_sequences is not None and (not isinstance(max_sequences, int) or max_sequences < 1):
        raise ValueError(f"{op}: max_sequences must be a positive int or None, got {max_sequences!r}")
    max_seq = max_sequences or 0
    _finite_where_valid(op, "boxes", boxes, "scores", scores, mask, counts is None and valid is None
                        and num_frames is None)
    chosen = choose_backend(op, device, backend, _SEQ_NMS_BACKENDS)
    cdt = _compute_dtype(boxes)
    boxes_c, scores_c = boxes.to(cdt).contiguous(), scores.to(cdt).contiguous()
    if chosen == "reference":
        videos = ref.seq_nms_ref(boxes_c, scores_c, mask, labels, link_threshold=link_threshold,
                                 suppress_threshold=suppress_threshold, rescore=rescore, suppress=suppress,
                                 max_sequences=max_seq, min_score=float(min_score), strict=strict,
                                 pixel_offset=off)
        out_scores = torch.tensor([v[0] for v in videos], dtype=torch.float64).reshape(B, T, N).to(device)
        out_scores = torch.where(mask, out_scores.to(cdt), scores_c)
        seq_id = torch.tensor([v[1] for v in videos], dtype=torch.int64).reshape(B, T, N).to(device)
        seqs = [(b, start, path, score) for b, v in enumerate(videos) for start, path, score in v[2]]
        L = max((len(s[2]) for s in seqs), default=0)
        video = torch.tensor([s[0] for s in seqs], dtype=torch.int64, device=device)
        start = torch.tensor([s[1] for s in seqs], dtype=torch.int64, device=device)
        length = torch.tensor([len(s[2]) for s in seqs], dtype=torch.int64, device=device)
        box_index = torch.tensor([s[2] + [-1] * (L - len(s[2])) for s in seqs], dtype=torch.int64,
                                 device=device).reshape(len(seqs), L)
        score = torch.tensor([s[3] for s in seqs], dtype=torch.float64, device=device)
    else:
        node_cap = max(T * N, 1)
        while True:
            out_scores, seq_id, count, start_all, len_all, score_all, nodes, needed = _seq_nms(
                boxes_c, scores_c, mask.to(torch.uint8).contiguous(), labels, float(link_threshold),
                float(suppress_threshold), bool(strict), _RESCORE[rescore], _SUPPRESS[suppress], max_seq,
                float(min_score), off, node_cap, chosen)
            most = int(needed.max()) if B else 0
            if most <= node_cap:
                break
            node_cap = most  # "zero" mode: overlapping sequences needed more room; run again
        K = start_all.shape[1]
        taken = torch.arange(K, device=device)[None, :] < count[:, None]
        video = torch.arange(B, device=device)[:, None].expand(B, K)[taken]
        start, length, score = start_all[taken], len_all[taken], score_all[taken]
        L = int(length.max()) if length.numel() else 0
        offset = torch.cumsum(len_all, dim=1) - len_all  # each video's sequences are back to back
        d = torch.arange(L, device=device)
        slot = (offset[taken][:, None] + d[None, :]).clamp(max=node_cap - 1)
        box_index = torch.where(d[None, :] < length[:, None], nodes[video[:, None].expand(-1, L), slot],
                                torch.full_like(slot, -1))
    tracklets = _tracklets(boxes, video, start, length, box_index)
    out_scores = out_scores.to(scores.dtype)
    if not batched:
        out_scores, seq_id = out_scores[0], seq_id[0]
    return SeqNMSResult(out_scores, seq_id, tracklets, box_index, score, video)


# ---- Viterbi linking ------------------------------------------------------------------------

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
        from pyvrel.kernels.linking import viterbi_link_triton

        return viterbi_link_triton(boxes, unary, frames, lengths, valid, k, pairwise_weight, gap_scaling,
                                   legacy_vrgv, pixel_offset)
    B, T, N = unary.shape
    paths = torch.full((B, k, T), -1, dtype=torch.int64, device=unary.device)
    scores = torch.full((B, k), float("-inf"), dtype=torch.float64, device=unary.device)
    if B and T and N:
        args = [boxes.data_ptr(), unary.data_ptr(), frames.data_ptr(), lengths.data_ptr(), valid.data_ptr(), B, T,
                N, k, pairwise_weight, gap_scaling, legacy_vrgv, pixel_offset, paths.data_ptr(), scores.data_ptr(),
                _code(unary)]
        if backend == "cuda":
            workspace = torch.empty(_ext.cuda().viterbi_workspace_bytes(B, T, N), dtype=torch.uint8,
                                    device=unary.device)
            args.append(workspace.data_ptr())
        _ext.launch(backend, "viterbi_forward", unary.device, *args)
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
        from pyvrel.kernels.linking import soft_viterbi_triton

        return soft_viterbi_triton(boxes, unary, frames, lengths, valid, pairwise_weight, tau, gap_scaling,
                                   legacy_vrgv, pixel_offset)
    B, T, N = unary.shape
    marginals = torch.zeros(B, T, N, dtype=torch.float64, device=unary.device)
    log_z = torch.full((B,), float("-inf"), dtype=torch.float64, device=unary.device)
    grad_w = torch.zeros(B, dtype=torch.float64, device=unary.device)
    if B and T and N:
        args = [boxes.data_ptr(), unary.data_ptr(), frames.data_ptr(), lengths.data_ptr(), valid.data_ptr(),
                pairwise_weight.data_ptr(), B, T, N, tau, gap_scaling, legacy_vrgv, pixel_offset,
                marginals.data_ptr(), log_z.data_ptr(), grad_w.data_ptr(), _code(unary)]
        if backend == "cuda":
            workspace = torch.empty(_ext.cuda().soft_viterbi_workspace_bytes(B, T, N), dtype=torch.uint8,
                                    device=unary.device)
            args.append(workspace.data_ptr())
        _ext.launch(backend, "soft_viterbi_forward", unary.device, *args)
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


def _per_box_inputs(op: str, boxes: Tensor, values_name: str, values: Tensor, counts: Tensor | None,
                    valid: Tensor | None) -> tuple[bool, tuple[int, ...], Tensor, Tensor, Tensor | None,
                                                   dict[str, Tensor]]:
    """Checks the per-frame boxes ``(T, N, 4)`` or ``(B, T, N, 4)``, their per-box ``values``
    (scores, unaries) and the optional ``counts``/``valid``; returns ``(batched, shape, boxes,
    values, mask, tensors)``: boxes/values in the batched layout, ``shape`` the input layout
    without the 4, the validity mask (B, T, N) or None when neither counts nor valid is given, and
    the checked tensors by name (for the device check)."""
    _checks.tensor(op, "boxes", boxes, last=4, dtypes=_checks.FLOAT_DTYPES)
    if boxes.dim() not in (3, 4):
        raise ValueError(f"{op}: boxes must have shape (T, N, 4) or (B, T, N, 4), got {tuple(boxes.shape)}")
    batched = boxes.dim() == 4
    shape = tuple(boxes.shape[:-1])
    _checks.tensor(op, values_name, values, dtypes=_checks.FLOAT_DTYPES)
    if tuple(values.shape) != shape:
        raise ValueError(f"{op}: {values_name} must have shape {shape} to match boxes, got {tuple(values.shape)}")
    _checks.same_dtype(op, boxes=boxes, **{values_name: values})
    tensors = {"boxes": boxes, values_name: values}
    if not batched:
        boxes, values = boxes[None], values[None]
    mask = _box_mask(op, counts, valid, shape, tuple(values.shape), tensors)
    return batched, shape, boxes, values, mask, tensors


def _box_mask(op: str, counts: Tensor | None, valid: Tensor | None, shape: tuple[int, ...],
              btn: tuple[int, int, int], tensors: dict[str, Tensor]) -> Tensor | None:
    """Validity mask (B, T, N) of the boxes from per-frame ``counts`` (shape ``shape[:-1]``) or a
    ``valid`` mask (shape ``shape``); None when neither is given. Checked inputs join ``tensors``
    (for the device check)."""
    B, T, N = btn
    if counts is not None and valid is not None:
        raise ValueError(f"{op}: give counts or valid, not both")
    if counts is not None:
        _checks.tensor(op, "counts", counts, integer=True)
        if tuple(counts.shape) != shape[:-1]:
            raise ValueError(f"{op}: counts must have shape {shape[:-1]}, got {tuple(counts.shape)}")
        tensors["counts"] = counts
        if counts.numel() and not _checks._compiling() and bool(((counts < 0) | (counts > N)).any()):
            raise ValueError(f"{op}: counts must be in [0, N={N}]")
        return torch.arange(N, device=counts.device) < counts.reshape(B, T)[..., None]
    if valid is not None:
        _checks.tensor(op, "valid", valid, dtypes=(torch.bool,))
        if tuple(valid.shape) != shape:
            raise ValueError(f"{op}: valid must have shape {shape}, got {tuple(valid.shape)}")
        tensors["valid"] = valid
        return valid.reshape(B, T, N)
    return None


def _linking_inputs(op: str, boxes: Tensor, unary: Tensor, frames: Tensor | None, lengths: Tensor | None,
                    counts: Tensor | None, valid: Tensor | None, gap_scaling: bool, pixel_offset: float):
    """Validates the common inputs of the Viterbi ops; returns (batched, boxes, unary, frames,
    lengths, valid) in the (B, T, N) layout with int64 frames/lengths, boxes of invalid entries
    zeroed (so padding never reaches the arithmetic), and the pixel offset."""
    batched, shape, boxes, unary, mask, tensors = _per_box_inputs(op, boxes, "unary", unary, counts, valid)
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
        if B and not _checks._compiling() and bool(((lengths < 0) | (lengths > T)).any()):
            raise ValueError(f"{op}: lengths must be in [0, T={T}]")
    everything_valid = mask is None and tensors.get("lengths") is None  # the common, fast case
    _checks.same_device(op, **tensors)
    frames, lengths = frames.to(torch.int64).contiguous(), lengths.to(torch.int64).contiguous()
    in_len = torch.arange(T, device=dev)[None, :] < lengths[:, None]
    mask = in_len[..., None].expand(B, T, N) if mask is None else mask & in_len[..., None]
    if gap_scaling and T > 1 and not _checks._compiling() and bool(((frames[:, 1:] <= frames[:, :-1]) & in_len[:, 1:]).any()):
        raise ValueError(f"{op}: frames must be strictly increasing within each problem's length "
                         "(λ = 1 / frame gap); pass gap_scaling=False for a constant λ")
    off = _checks.pixel_offset(op, pixel_offset)
    _finite_where_valid(op, "boxes", boxes, "unary", unary, mask, everything_valid)
    cdt = _compute_dtype(boxes)
    if _checks._compiling() or not (everything_valid or bool(mask.all())):
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
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"{op}: k must be a positive int, got {k!r}")
    batched, boxes_c, unary, frames, lengths, mask, off = _linking_inputs(
        op, boxes, unary, frames, lengths, counts, valid, gap_scaling, pixel_offset)
    chosen = choose_backend(op, unary.device, backend, _VITERBI_BACKENDS)
    unary_c = unary.to(boxes_c.dtype).contiguous()
    if chosen == "reference":
        paths, scores = ref.viterbi_link_ref(boxes_c, unary_c, frames, lengths, mask, k=k,
                                             pairwise_weight=float(pairwise_weight), gap_scaling=gap_scaling,
                                             legacy_vrgv=legacy_vrgv, pixel_offset=off)
    else:
        paths, scores = _viterbi_link(boxes_c, unary_c, frames, lengths, mask.to(torch.uint8).contiguous(), k,
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
    if not (tau > 0):
        raise ValueError(f"{op}: tau must be > 0, got {tau!r}")
    batched, boxes_c, unary, frames, lengths, mask, off = _linking_inputs(
        op, boxes, unary, frames, lengths, counts, valid, gap_scaling, pixel_offset)
    B = unary.shape[0]
    if isinstance(pairwise_weight, Tensor):
        if pairwise_weight.dim() > 1 or pairwise_weight.numel() not in (1, B) or not pairwise_weight.is_floating_point():
            raise ValueError(f"{op}: pairwise_weight must be a float or a floating tensor of shape [] or [{B}], "
                             f"got {pairwise_weight.dtype} {tuple(pairwise_weight.shape)}")
        _checks.same_device(op, unary=unary, pairwise_weight=pairwise_weight)
        weight = pairwise_weight.to(torch.float64).reshape(-1).expand(B)
    else:
        weight = torch.full((B,), float(pairwise_weight), dtype=torch.float64, device=unary.device)
    chosen = choose_backend(op, unary.device, backend, _SOFT_BACKENDS)
    unary_c = unary.to(boxes_c.dtype)
    if chosen == "reference":
        marginals, log_z = ref.soft_viterbi_ref(boxes_c, unary_c, frames, lengths, mask, weight, tau=float(tau),
                                                gap_scaling=gap_scaling, legacy_vrgv=legacy_vrgv, pixel_offset=off)
    else:
        marginals, log_z, _ = _soft_viterbi(boxes_c, unary_c.contiguous(), frames, lengths,
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
    counts = (paths >= 0).sum(-1).reshape(B * k)
    picked = boxes[torch.arange(B, device=boxes.device)[:, None, None], torch.arange(T, device=boxes.device),
                   paths.clamp(min=0)]  # (B, k, T, 4)
    sample_frames = frames[:, None, :].expand(B, k, T).reshape(B * k, T)
    return interpolate_boxes(sample_frames.to(torch.int64), picked.reshape(B * k, T, 4), counts, backend=backend)
