"""vRGV grounding: temporal thresholding, Viterbi linking per segment, interpolation (the paper's grounding, as the public code does it).

For one video and one query, given the model's attention on the ``T`` sampled frames:

1. temporal score ``temp[t] = β2[t // clip_len] + β1[t]`` (or ``β1[t]`` alone when no β2 is given:
   ``VRGVConfig.temporal_score="frame"``);
2. segments: the sampled frames with ``temp >= temporal_threshold``, grouped where consecutive
   members are at most ``margin`` apart, keeping groups of more than ``min_len`` members, with
   ``margin = min_len = int(min_segment · T / frame_count)`` (the code's ``find_continus``), except
   that adjacent samples always group (``margin >= 1``; the code's margin is 0 for videos longer than
   ``min_segment · T`` frames and then splits every sample). When no group survives, pyvrel uses
   every sampled frame as one segment (the code returns nothing);
3. inside each segment (its members; a member showing the same video frame as the previous one
   is skipped), subject and object are linked separately with :func:`pyvrel.ops.viterbi_link` on
   ``α`` and ``λ·IoU`` (λ = ``pairwise_weight`` / frame gap, +1 pixel areas), every link used;
   tube score = path score / members;
4. the segment with the largest subject + object score wins;
5. its boxes are interpolated onto every video frame between its first and last member
   (:func:`pyvrel.ops.path_tubes`, real frame indices).

``legacy=True`` scores as the public code does: its DP (``tube.py::find_max_path``) counts the first
frame's attention twice and every inner one twice, ignores the last link and takes the last frame's
box as ``argmax α`` (the public code's linking); the segment score is the DP value
divided by the members. Interpolation keeps the correct frame indices either way.
``pairwise_weight=0`` is vRGV* (greedy: the best-attended box of each frame).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from pyvrel.ops import path_tubes, viterbi_link

__all__ = ["GroundedPair", "ground_pair", "link_segments", "temporal_score", "temporal_segments"]


def temporal_score(beta_frame: Tensor, beta_clip: Tensor | None) -> np.ndarray:
    """Step 1: ``temp[t] = β2[t // clip_len] + β1[t]`` (float64, (T,)) from β1 (T,) and β2 (C,); β1 alone
    when ``beta_clip`` is None."""
    if beta_clip is None:
        return beta_frame.double().cpu().numpy()
    clip = beta_frame.shape[0] // beta_clip.shape[0]
    return (beta_clip.repeat_interleave(clip) + beta_frame).double().cpu().numpy()


def temporal_segments(temp: np.ndarray, frame_count: int, threshold: float, min_segment: float
                      ) -> list[np.ndarray]:
    """Candidate segments (step 2): lists of sampled-frame indices, in order."""
    T = len(temp)
    min_len = int(min_segment * T / frame_count)
    inds = np.flatnonzero(np.asarray(temp) >= threshold)
    if len(inds) == 0:
        return []
    groups = np.split(inds, np.flatnonzero(np.diff(inds) > max(min_len, 1)) + 1)
    return [g for g in groups if len(g) > min_len]


def link_segments(boxes: Tensor, alphas: Tensor, frames: Tensor, segments: list[np.ndarray], *,
                  pairwise_weight: float = 1.0, legacy: bool = False) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Link ``P = alphas.shape[0]`` attention maps in every segment (step 3).

    Args:
        boxes (Tensor[T, M, 4]): proposals of the sampled frames (pixels).
        alphas (Tensor[P, T, M]): attention maps (e.g. subject and object).
        frames (Tensor[T] int): video frame of each sampled frame (non-decreasing).
        segments: sampled-frame indices of each segment (non-empty).

    Returns:
        ``(paths (S, P, L), scores (S, P), seg_boxes (S, L, M, 4), seg_frames (S, L))``: box index per
        kept member (-1 past the segment's end), score = path score / members, and the member boxes
        and frames the paths index (for :func:`pyvrel.ops.path_tubes`).
    """
    P, _, M = alphas.shape
    kept = []
    for seg in segments:
        f = frames[torch.as_tensor(seg)]
        keep = torch.ones(len(seg), dtype=torch.bool)
        keep[1:] = f[1:] != f[:-1]  # the same video frame sampled twice: skipped
        kept.append(torch.as_tensor(seg)[keep])
    S, L = len(kept), max(len(k) for k in kept)
    idx = torch.stack([torch.cat([k, k[-1:].expand(L - len(k))]) for k in kept])  # (S, L), padded with the last
    lengths = torch.tensor([len(k) for k in kept])
    seg_frames = frames[idx].to(torch.int64)
    pad = torch.arange(L)[None, :] >= lengths[:, None]
    seg_frames = torch.where(pad, seg_frames + torch.arange(1, L + 1)[None, :], seg_frames)  # increasing padding
    seg_boxes = boxes[idx]
    unary = alphas[:, idx].transpose(0, 1).reshape(S * P, L, M).double()
    prob_len = lengths.repeat_interleave(P)
    b = seg_boxes.double().repeat_interleave(P, 0)
    fr = seg_frames.repeat_interleave(P, 0)
    if legacy:
        dp_len = (prob_len - 1).clamp(min=1)
        unary = unary.clone()
        unary[prob_len >= 3, 0] *= 2  # V_0 = α_0, and W_0 adds α_0 again
        res = viterbi_link(b, unary, fr, dp_len, pairwise_weight=pairwise_weight, legacy_vrgv=True, pixel_offset=1)
        paths = res.paths[:, 0].clone()
        last = (prob_len - 1).clamp(min=0)
        rows = torch.arange(S * P)
        two = prob_len >= 2
        paths[rows[two], last[two]] = unary[rows[two], last[two]].argmax(-1)  # the last box: argmax α
        scores = res.scores[:, 0] / prob_len
    else:
        res = viterbi_link(b, unary, fr, prob_len, pairwise_weight=pairwise_weight, pixel_offset=1)
        paths, scores = res.paths[:, 0], res.scores[:, 0] / prob_len
    return paths.reshape(S, P, L), scores.reshape(S, P), seg_boxes, seg_frames


@dataclass
class GroundedPair:
    """A grounded subject–object pair: ``duration`` half-open video frames, ``sub_traj``/``obj_traj``
    (end - begin, 4) float64 pixel boxes, ``score`` (subject + object tube scores), ``segment``: the
    sampled-frame indices of the chosen segment."""

    duration: tuple[int, int]
    sub_traj: np.ndarray
    obj_traj: np.ndarray
    score: float
    segment: np.ndarray


def ground_pair(boxes: Tensor, frames: Tensor, frame_count: int, alpha_s: Tensor, alpha_o: Tensor,
                beta_frame: Tensor, beta_clip: Tensor | None, *, temporal_threshold: float = 0.04,
                min_segment: float = 10.0, pairwise_weight: float = 1.0, legacy: bool = False) -> GroundedPair:
    """Ground one query in one video (steps 1–5).

    Args:
        boxes (Tensor[T, M, 4]), frames (Tensor[T] int): proposals and their video frames.
        alpha_s, alpha_o (Tensor[T, M]), beta_frame (Tensor[T]), beta_clip (Tensor[C] or None: the temporal
            score is β1 alone): attention.
    """
    temp = temporal_score(beta_frame, beta_clip)
    segments = temporal_segments(temp, frame_count, temporal_threshold, min_segment) or [np.arange(len(temp))]
    alphas = torch.stack([alpha_s, alpha_o]).detach().cpu()
    boxes, frames = boxes.detach().cpu(), frames.cpu()
    paths, scores, seg_boxes, seg_frames = link_segments(boxes, alphas, frames, segments,
                                                         pairwise_weight=pairwise_weight, legacy=legacy)
    best = int(scores.sum(1).argmax())
    tubes = path_tubes(seg_boxes[best].double(), paths[best], seg_frames[best])
    begin, n = int(tubes.start[0]), int(tubes.length[0])
    traj = tubes.boxes[:, :n].numpy()
    return GroundedPair((begin, begin + n), traj[0], traj[1], float(scores[best].sum()), segments[best])
