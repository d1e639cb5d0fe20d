"""HVR-Net's stream (``SynthConfig.hvrnet``): per-frame proposals with RoI-like features, confusable
categories, and features for the per-frame detections.

* ``det_features (K, D)``: an appearance feature for each per-frame detection ``det_*`` of the
  detector outputs, so that ``pyvrel track`` (:mod:`pyvrel.track`) can give its tracklets features:
  a detection that overlaps an entity's box in its frame (IoU >= 0.3, the best one) gets that
  entity's appearance (its category prototype + a per-entity instance vector + per-frame noise
  N(0, 0.3 / sqrt(D))), the others noise N(0, 1 / sqrt(D)).
* RoI proposals on ``S = min(sampled_frames, frame_count)`` evenly spaced frames, ``M =
  proposals`` per frame, in a random slot order: per visible entity (up to M) a tight proposal
  (box jitter N(0, 0.05) of its size) and a loose one (N(0, 0.25)), then background boxes.
  ``roi_frames (S,) int64`` (increasing), ``roi_boxes (S, M, 4) float32`` pixels,
  ``roi_features (S, M, D) float32``. The proposals' labels are not stored: a model assigns them
  from the annotation by IoU, as a detector's training does.
* *Confusable categories* (:data:`CONFUSABLE`, pairs such as dog / domestic_cat, after the
  paper's cat / rabbit): an RoI feature of such an entity holds the pair's shared vector
  ``normalize(p_a + p_b)``; only in a frame where the entity *shows its cue* (probability
  :data:`CUE_PROB`, per entity and frame) is ``±CUE * normalize(p_a - p_b)`` added (+ for the
  first of the pair). A single frame is then ambiguous, a video is not: relations across frames
  (intra-video) and against videos of the other category (inter-video) can help. Other categories:
  their prototype. Every entity proposal also holds the instance vector and noise N(0, 0.3 /
  sqrt(D)); a loose proposal holds half of that feature plus noise N(0, 1 / sqrt(D)); background
  proposals noise N(0, 1 / sqrt(D)).

It draws from its own generator (``default_rng([seed, index, 3])``): the other arrays of a video do
not depend on it, and worlds written without it are unchanged.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from pyvrel.data.annotations import VideoAnnotation
from pyvrel.data.boxes import box_ious

if TYPE_CHECKING:
    from pyvrel.data.synthetic.world import World

__all__ = ["CONFUSABLE", "CUE", "CUE_PROB", "HVRNetStream"]

#: Pairs of categories whose single frames look alike (module docstring).
CONFUSABLE: tuple[tuple[str, str], ...] = (("dog", "domestic_cat"), ("horse", "zebra"), ("bicycle", "motorcycle"))
#: Probability that an entity of a confusable category shows its cue in a frame, and the cue's length.
CUE_PROB, CUE = 0.3, 0.8


class HVRNetStream:
    """The HVR-Net stream of a world (:class:`~pyvrel.data.synthetic.streams.Stream`);
    :attr:`shared` ``(C, D)`` is the RoI appearance of each category without its cue and
    :attr:`cue` ``(C, D)`` its cue (zero for categories that are not confusable)."""

    option = "hvrnet"
    tag = 3

    def __init__(self, world: World) -> None:
        self.world = world
        index = world.vocab.object_index()
        self.shared = world.prototypes.astype(np.float64).copy()
        self.cue = np.zeros_like(self.shared)
        for a, b in CONFUSABLE:
            pa, pb = world.prototypes[index[a]], world.prototypes[index[b]]
            mid, diff = pa + pb, pa - pb
            self.shared[index[a]] = self.shared[index[b]] = mid / np.linalg.norm(mid)
            self.cue[index[a]], self.cue[index[b]] = CUE * diff / np.linalg.norm(diff), -CUE * diff / np.linalg.norm(diff)

    def arrays(self, rng: np.random.Generator, annotation: VideoAnnotation, categories: list[str],
               arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``det_features`` and the ``roi_*`` arrays of one video (module docstring)."""
        cfg = self.world.config
        D, M = cfg.feature_dim, cfg.proposals
        noise = 1 / math.sqrt(D)
        cidx = self.world.vocab.object_index()
        cat = np.array([cidx[c] for c in categories], np.int64)
        inst = rng.normal(0, 0.5 * noise, (len(categories), D))

        det_frame, det_boxes = arrays["det_frame"], arrays["det_boxes"].astype(np.float64)
        det_feats = rng.normal(0, noise, (len(det_frame), D))
        for f in np.unique(det_frame).tolist():
            visible = annotation.trajectories[f]
            rows = np.flatnonzero(det_frame == f)
            if not visible:
                continue
            iou = box_ious(det_boxes[rows, None], np.array([b.bbox for b in visible], np.float64)[None])
            best = iou.argmax(1)
            hit = iou[np.arange(len(rows)), best] >= 0.3
            tids = np.array([visible[j].tid for j in best[hit]], np.int64)
            det_feats[rows[hit]] = (self.world.prototypes[cat[tids]] + inst[tids]
                                    + rng.normal(0, 0.3 * noise, (len(tids), D)))

        frames = np.unique(np.round(np.linspace(0, annotation.frame_count - 1,
                                                min(cfg.sampled_frames, annotation.frame_count))).astype(np.int64))
        W, H = annotation.width, annotation.height
        boxes = np.zeros((len(frames), M, 4), np.float32)
        feats = np.zeros((len(frames), M, D), np.float32)
        for s, f in enumerate(frames.tolist()):
            fb, ff = [], []
            for b in annotation.trajectories[f][: M // 2]:
                box = np.asarray(b.bbox, np.float64)
                size = np.array([box[2] - box[0], box[3] - box[1]] * 2)
                c = cat[b.tid]
                shows = rng.random() < CUE_PROB
                appear = self.shared[c] + shows * self.cue[c] + inst[b.tid] + rng.normal(0, 0.3 * noise, D)
                fb += [box + rng.normal(0, 0.05, 4) * size, box + rng.normal(0, 0.25, 4) * size]
                ff += [appear, 0.5 * appear + rng.normal(0, noise, D)]
            rest = M - len(fb)
            wh = rng.uniform(20, 200, (rest, 2))
            xy = rng.uniform(0, 1, (rest, 2)) * (np.array([W, H]) - wh)
            b_all = np.concatenate([np.array(fb).reshape(-1, 4), np.concatenate([xy, xy + wh], 1)])
            f_all = np.concatenate([np.array(ff).reshape(-1, D), rng.normal(0, noise, (rest, D))])
            x1, x2 = np.sort(np.clip(b_all[:, [0, 2]], 0, W - 1), 1).T  # inside the image, x2 >= x1 + 1
            y1, y2 = np.sort(np.clip(b_all[:, [1, 3]], 0, H - 1), 1).T
            order = rng.permutation(M)
            boxes[s] = np.stack([x1, y1, np.maximum(x2, x1 + 1), np.maximum(y2, y1 + 1)], 1)[order]
            feats[s] = f_all[order]
        return {"det_features": det_feats.astype(np.float32), "roi_frames": frames, "roi_boxes": boxes,
                "roi_features": feats}
