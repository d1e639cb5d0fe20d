"""Seq-NMS: link detections over time into tracklets and rescore/suppress them.

Semantics, options and the quirks of the public implementations this op replaces are in
``docs/architecture.md`` ("Seq-NMS and Viterbi"). The reference is
:func:`pyvrel.ops.reference.seq_nms_ref`.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from torch import Tensor

from pyvrel import _codes, _ext
from pyvrel.ops import _checks
from pyvrel.ops.reference import seq_nms as ref
from pyvrel.ops._backend import call, choose_backend
from pyvrel.ops._per_box import finite_where_valid, per_box_inputs
from pyvrel.ops.types import Tubes

__all__ = ["GapFilled", "SeqNMSResult", "fill_gaps", "seq_nms"]

_SEQ_NMS_BACKENDS = ("cpp", "cuda", "reference")  # the select loop is serial per video: no Triton


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
        args = [boxes, scores, valid, labels, B, T, N, link_threshold, suppress_threshold, strict, rescore, suppress,
                max_sequences, min_score, pixel_offset, scores_out, seq_id, seq_count, seq_start, seq_len, seq_score,
                K, nodes, node_cap, needed, _codes.dtype_code(boxes)]
        if backend == "cuda":
            workspace = torch.empty(_ext.cuda().seq_nms_workspace_bytes(B, T, N), dtype=torch.uint8, device=dev)
            args.append(workspace)
        _ext.launch(backend, "seq_nms_forward", *args)
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

    Exactly the algorithm of the public implementations (lrghust/tmoopenn/MrParosk): box ``i`` of frame ``t`` links to box ``j`` of frame ``t + 1`` when their IoU is
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
    batched, shape, boxes, scores, mask, tensors = per_box_inputs(op, boxes, "scores", scores, counts, valid)
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
        _checks.int_range(op, "num_frames", num_frames, 0, T, f"in [0, T={T}]")
        mask = mask & (torch.arange(T, device=num_frames.device)[None, :] < num_frames[:, None])[..., None]
    device = _checks.same_device(op, **tensors)
    link_threshold = _checks.number(op, "link_threshold", link_threshold, 0.0, 1.0)
    suppress_threshold = _checks.number(op, "suppress_threshold", suppress_threshold, 0.0, 1.0)
    min_score = _checks.number(op, "min_score", min_score)
    off = _checks.pixel_offset(op, pixel_offset)
    if variant not in ("seqnms", "vidvrd2"):
        raise ValueError(f"{op}: variant must be 'seqnms' or 'vidvrd2', got {variant!r}")
    if rescore is None:
        rescore = "avg" if variant == "seqnms" else "none"
    if rescore not in _codes.SEQ_NMS_RESCORE:
        raise ValueError(f"{op}: rescore must be one of {tuple(_codes.SEQ_NMS_RESCORE)}, got {rescore!r}")
    if variant == "vidvrd2" and rescore != "none":
        raise ValueError(f"{op}: variant='vidvrd2' does not rescore (rescore must be 'none'), got {rescore!r}")
    suppress = "remove" if variant == "seqnms" else "zero"
    if variant == "vidvrd2" and min_score < 0:
        raise ValueError(f"{op}: variant='vidvrd2' needs min_score >= 0 (zeroed paths would repeat), got {min_score}")
    max_seq = 0 if max_sequences is None else _checks.number(op, "max_sequences", max_sequences, 1, integer=True)
    finite_where_valid(op, "boxes", boxes, "scores", scores, mask, counts is None and valid is None
                        and num_frames is None)
    chosen = choose_backend(op, device, backend, _SEQ_NMS_BACKENDS)
    cdt = _checks.compute_dtype(boxes)
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
            out_scores, seq_id, count, start_all, len_all, score_all, nodes, needed = call(
                _seq_nms, boxes_c, scores_c, mask.to(torch.uint8).contiguous(), labels, float(link_threshold),
                float(suppress_threshold), bool(strict), _codes.SEQ_NMS_RESCORE[rescore],
                _codes.SEQ_NMS_SUPPRESS[suppress], max_seq, float(min_score), off, node_cap, chosen)
            # the op's one wait for the device: sequences, node room needed and longest path per video
            taken = torch.arange(start_all.shape[1], device=device)[None, :] < count[:, None]
            sizes = torch.cat([count, needed, torch.where(taken, len_all, 0).amax(dim=1)]).tolist()
            most = max(sizes[B:2 * B], default=0)
            if most <= node_cap:
                break
            node_cap = most  # "zero" mode: overlapping sequences needed more room; run again
        total, L = sum(sizes[:B]), max(sizes[2 * B:], default=0)
        video = torch.repeat_interleave(torch.arange(B, device=device), count, output_size=total)
        rank = torch.arange(total, device=device) - (torch.cumsum(count, 0) - count)[video]  # in its video
        start, length, score = start_all[video, rank], len_all[video, rank], score_all[video, rank]
        offset = torch.cumsum(len_all, dim=1) - len_all  # each video's sequences are back to back
        d = torch.arange(L, device=device)
        slot = (offset[video, rank][:, None] + d[None, :]).clamp(max=node_cap - 1)
        box_index = torch.where(d[None, :] < length[:, None], nodes[video[:, None].expand(-1, L), slot],
                                torch.full_like(slot, -1))
    tracklets = _tracklets(boxes, video, start, length, box_index)
    out_scores = out_scores.to(scores.dtype)
    if not batched:
        out_scores, seq_id = out_scores[0], seq_id[0]
    return SeqNMSResult(out_scores, seq_id, tracklets, box_index, score, video)


class GapFilled(NamedTuple):
    """Output of :func:`fill_gaps`: the detections with the inserted boxes, ``(B, T, M)`` (or ``(T, M)``).

    boxes (Tensor[..., M, 4]), scores (inserted boxes: 0), valid (bool), labels (int64; None when
    none were given), source (int64: the input index of a kept box, -1 for inserted boxes and padding).
    """

    boxes: Tensor
    scores: Tensor
    valid: Tensor
    labels: Tensor | None
    source: Tensor


def fill_gaps(
    boxes: Tensor,
    scores: Tensor,
    counts: Tensor | None = None,
    *,
    valid: Tensor | None = None,
    labels: Tensor | None = None,
    tolerance: int = 30,
    scale_ratio: float = 2.0,
    area_ratio: float = 2.0,
) -> GapFilled:
    """VidVRD-II's gap filling, run before :func:`seq_nms` (``variant="vidvrd2"``) so that tracklets
    bridge frames where the detector missed an object.

    For every valid box ``i`` of frame ``t`` (with a label ``>= 0``), the first of the frames
    ``t + 2 .. t + tolerance - 1`` holding valid boxes of the same label whose aspect ratio
    (``w / h``) and area are within factors ``scale_ratio`` and ``area_ratio`` of box ``i``'s
    (``max <= factor * min``; both boxes with positive width and height) is found; for each such box
    ``j`` the frames in between get the box ``b_i + (b_j - b_i) * (k / d)`` (``d`` the distance,
    ``k = 1 .. d - 1``) with score 0 and box ``i``'s label. As in VidVRD-II's code there is no
    position test (Seq-NMS's IoU links decide which inserted boxes are used); unlike it, the area
    test compares the two areas (the code's ``wj*wj/(wi*hi)`` is a typo). Inserted boxes follow a
    frame's own boxes, ordered by source frame, ``i``, then ``j``. Without ``labels`` every box has the same label.

    Args: boxes ``(T, N, 4)`` or ``(B, T, N, 4)``, scores, counts/valid and labels as in
    :func:`seq_nms`; ``tolerance`` (30), ``scale_ratio`` (2), ``area_ratio`` (2).

    Returns:
        :class:`GapFilled`. Computed with tensor operations on the boxes' device; equal to
        :func:`pyvrel.ops.reference.fill_gaps_ref` (same arithmetic in the boxes' dtype).
    """
    op = "fill_gaps"
    batched, shape, boxes, scores, mask, tensors = per_box_inputs(op, boxes, "scores", scores, counts, valid)
    B, T, N = scores.shape
    dev, dt = boxes.device, boxes.dtype
    if mask is None:
        mask = torch.ones(B, T, N, dtype=torch.bool, device=dev)
    if labels is not None:
        _checks.tensor(op, "labels", labels, integer=True)
        if tuple(labels.shape) != shape:
            raise ValueError(f"{op}: labels must have shape {shape}, got {tuple(labels.shape)}")
        tensors["labels"] = labels
    _checks.same_device(op, **tensors)
    tolerance = _checks.number(op, "tolerance", tolerance, 0, integer=True)
    scale_ratio = _checks.number(op, "scale_ratio", scale_ratio, 1.0)
    area_ratio = _checks.number(op, "area_ratio", area_ratio, 1.0)
    finite_where_valid(op, "boxes", boxes, "scores", scores, mask, counts is None and valid is None)
    lab = (labels.reshape(B, T, N).to(torch.int64) if labels is not None
           else torch.zeros(B, T, N, dtype=torch.int64, device=dev))
    w, h = boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]
    usable = mask & (w > 0) & (h > 0)
    ratio, area = w / h, w * h
    found = ~usable | (lab < 0)  # boxes that insert nothing (more)
    hits = []  # (b, t, i, j, d) of each insertion pair
    for d in range(2, min(tolerance, T)):
        def pairwise(x: Tensor) -> tuple[Tensor, Tensor]:
            return x[:, : T - d, :, None], x[:, d:, None, :]

        (ri, rj), (ai, aj) = pairwise(ratio), pairwise(area)
        li, lj = pairwise(lab)
        ok = (~found[:, : T - d, :, None] & usable[:, d:, None, :] & (li == lj)
              & (torch.maximum(ri, rj) <= scale_ratio * torch.minimum(ri, rj))
              & (torch.maximum(ai, aj) <= area_ratio * torch.minimum(ai, aj)))
        b, t, i, j = torch.nonzero(ok, as_tuple=True)
        hits.append(torch.stack([b, t, i, j, torch.full_like(b, d)], 1))
        found[:, : T - d] |= ok.any(-1)
    hits = torch.cat(hits) if hits else torch.zeros(0, 5, dtype=torch.int64, device=dev)
    d = hits[:, 4]
    rep = torch.repeat_interleave(torch.arange(len(hits), device=dev), d - 1)
    k = torch.arange(len(rep), device=dev) - torch.repeat_interleave(torch.cumsum(d - 1, 0) - (d - 1), d - 1) + 1
    b, t, i, j, d = hits[rep].unbind(1)
    frame = t + k
    order = torch.argsort(((((b * T + frame) * T + t) * N + i) * N + j), stable=True)
    b, t, i, j, d, k, frame = (x[order] for x in (b, t, i, j, d, k, frame))
    cell = b * T + frame
    first = torch.searchsorted(cell, cell)  # cell is sorted: index of its first insertion
    slot = N + torch.arange(len(cell), device=dev) - first
    M = N + (int((slot - N).max()) + 1 if len(slot) else 0)
    wk = ((k.to(torch.float64) / d).to(dt))[:, None]
    bi, bj = boxes[b, t, i], boxes[b, t + d, j]
    out_boxes = boxes.new_zeros(B, T, M, 4)
    out_scores = scores.new_zeros(B, T, M)
    out_valid = torch.zeros(B, T, M, dtype=torch.bool, device=dev)
    out_labels = torch.full((B, T, M), -1, dtype=torch.int64, device=dev)
    source = torch.full((B, T, M), -1, dtype=torch.int64, device=dev)
    out_boxes[:, :, :N], out_scores[:, :, :N], out_valid[:, :, :N], out_labels[:, :, :N] = boxes, scores, mask, lab
    source[:, :, :N] = torch.where(mask, torch.arange(N, device=dev), -1)
    out_boxes[b, frame, slot] = bi + (bj - bi) * wk
    out_valid[b, frame, slot] = True
    out_labels[b, frame, slot] = lab[b, t, i]
    result = GapFilled(out_boxes, out_scores, out_valid, out_labels if labels is not None else None, source)
    if not batched:
        result = GapFilled(*(x[0] if x is not None else None for x in result))
    return result
