"""VidVRD-II's inference: per segment, temporal propagation, the iterative inference, candidate
triplets, relation NMS; then the greedy association of the segments into video relations.

Per segment (:func:`predict_segments`):

1. the video's tracklets cut to the segment, paired (no self-pairs), classified
   (:meth:`IterativeClassifier.logits`);
2. temporal propagation: a tracklet links to the previous segment's tracklets whose cubic IoU
   (over the shared frames) is ``> propagation_viou`` (0.7), with weights ``softmax`` of those IoUs
   (the transition matrix); a pair whose two tracklets both link starts the iteration from the
   previous segment's subject, object and predicate probabilities carried through that matrix,
   any other pair from its own ``softmax``/``sigmoid``;
3. ``inference_steps`` (3) steps of :meth:`IterativeClassifier.iterate`; pairs whose subject or object
   argmax is background are dropped;
4. candidates: every (subject, predicate, object) class with probability ``> score_threshold``
   (0.2) each (background excluded), score = the product; the ``segment_topk`` (100) best;
5. relation NMS: a candidate is dropped when a better one has the same triplet and a subject and
   an object vIoU ``> relation_nms`` (0.9) with it.

:func:`predict_video` associates the segments (:func:`pyvrel.eval.associate`, ``"vidvrd2"``:
linkage ``> 0.5``, 30-frame tolerance, score = sum, top 200 per video; continuous box areas).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from pyvrel.data import Relation
from pyvrel.data.segments import cut_tracklets, ordered_pairs, relative_position, segment_spans, tracklet_viou
from pyvrel.data.tracklets import Tracklet
from pyvrel.eval.association import SegmentRelation, Track, associate, cubic_iou_matrix
from pyvrel.models.vidvrd2.model import IterativeClassifier, PairBatch
from pyvrel.models.vidvrd2.samples import mean_features

__all__ = ["predict_segments", "predict_video", "propagation_matrix", "relation_nms", "segment_candidates",
           "video_segments"]


def propagation_matrix(current: Sequence[Tracklet], previous: Sequence[Tracklet], threshold: float) -> np.ndarray:
    """``(n, m)`` transition weights: row ``i`` is the softmax of the cubic IoUs ``> threshold`` of
    tracklet ``i`` with the previous segment's tracklets (0 elsewhere; an all-zero row: no link)."""
    iou = cubic_iou_matrix([Track(t.start, t.boxes) for t in current], [Track(t.start, t.boxes) for t in previous], 0)
    T = np.zeros_like(iou)
    for i, linked in enumerate(iou > threshold):
        if linked.any():
            w = np.exp(iou[i, linked] - iou[i, linked].max())
            T[i, linked] = w / w.sum()
    return T


def segment_candidates(ps: torch.Tensor, po: torch.Tensor, pp: torch.Tensor, threshold: float, topk: int
                       ) -> list[tuple[int, int, int, int, float]]:
    """``(pair, subject class, predicate, object class, score)`` of pairs whose subject and object argmax
    is not background (the last class), every class triple above ``threshold``, best ``topk`` by score
    ``s·p·o`` (ties: pair, subject, predicate, object order)."""
    bg = ps.shape[1] - 1
    out = []
    keep = (ps.argmax(1) != bg) & (po.argmax(1) != bg)
    for k in torch.nonzero(keep).flatten().tolist():
        subs = torch.nonzero(ps[k, :bg] > threshold).flatten().tolist()
        objs = torch.nonzero(po[k, :bg] > threshold).flatten().tolist()
        preds = torch.nonzero(pp[k] > threshold).flatten().tolist()
        out += [(k, a, p, b, float(ps[k, a] * pp[k, p] * po[k, b])) for a in subs for p in preds for b in objs]
    out.sort(key=lambda c: -c[4])  # stable: ties keep the enumeration order
    return out[:topk]


def relation_nms(candidates: list[tuple[int, int, int, int, float]], pairs: np.ndarray, viou: np.ndarray,
                 threshold: float) -> list[tuple[int, int, int, int, float]]:
    """Greedy NMS over score-sorted ``candidates`` (:func:`segment_candidates`): drop one when a kept
    candidate has the same classes and subject and object tracklets with vIoU ``> threshold`` (``viou``:
    the segment tracklets' pairwise vIoU; ``pairs``: the tracklets of each pair)."""
    kept: list[tuple[int, int, int, int, float]] = []
    for c in candidates:
        s, o = pairs[c[0]]
        if not any(k[1:4] == c[1:4] and viou[s, pairs[k[0]][0]] > threshold and viou[o, pairs[k[0]][1]] > threshold
                   for k in kept):
            kept.append(c)
    return kept


@torch.no_grad()
def predict_segments(model: IterativeClassifier, segments: Sequence[tuple[tuple[int, int], Sequence[Tracklet]]],
                     objects: Sequence[str], predicates: Sequence[str], width: float, height: float
                     ) -> list[tuple[tuple[int, int], list[SegmentRelation]]]:
    """``((begin, end), relations)`` of each ``((begin, end), tracklets)`` of a video, in time order
    (module docstring, steps 2-5; :func:`video_segments` makes step 1's segments)."""
    cfg = model.cfg
    device = next(model.parameters()).device
    out = []
    prev_tracks: Sequence[Tracklet] = []
    prev_probs: tuple[torch.Tensor, ...] | None = None
    for (begin, end), tracks in segments:
        pairs = ordered_pairs(len(tracks))
        if not len(pairs):
            out.append(((begin, end), []))
            prev_tracks, prev_probs = tracks, None
            continue
        feats = torch.from_numpy(mean_features(tracks, cfg.feature_dim)).to(device)
        batch = PairBatch(feats[pairs[:, 0]], feats[pairs[:, 1]],
                          torch.from_numpy(relative_position(tracks, pairs, width, height, cfg.segment_length)).to(device))
        s, o, p = model.logits(batch)
        ps, po, pp = s.softmax(-1), o.softmax(-1), p.sigmoid()
        if prev_probs is not None and prev_tracks:
            T = propagation_matrix(tracks, prev_tracks, cfg.propagation_viou)
            n, m = len(tracks), len(prev_tracks)
            prev_pairs = ordered_pairs(m)
            W = torch.from_numpy(T[pairs[:, 0]][:, prev_pairs[:, 0]] * T[pairs[:, 1]][:, prev_pairs[:, 1]]).to(ps)
            linked = torch.from_numpy(T.any(1)[pairs[:, 0]] & T.any(1)[pairs[:, 1]]).to(device)
            linked &= W.sum(1) > 0
            if linked.any():
                Wn = W[linked] / W[linked].sum(1, keepdim=True)
                ps[linked], po[linked], pp[linked] = Wn @ prev_probs[0], Wn @ prev_probs[1], Wn @ prev_probs[2]
        ps, po, pp = model.iterate(s, o, p, cfg.inference_steps, (ps, po, pp))
        prev_tracks, prev_probs = tracks, (ps, po, pp)
        cands = segment_candidates(ps.cpu(), po.cpu(), pp.cpu(), cfg.score_threshold, cfg.segment_topk)
        cands = relation_nms(cands, pairs, tracklet_viou(tracks, tracks), cfg.relation_nms)
        rels = []
        for k, a, q, b, score in cands:
            st, ot = tracks[pairs[k][0]], tracks[pairs[k][1]]
            rels.append(SegmentRelation((objects[a], predicates[q], objects[b]), score, Track(st.start, st.boxes),
                                        Track(ot.start, ot.boxes)))
        out.append(((begin, end), rels))
    return out


def video_segments(tracklets: Sequence[Tracklet], frame_count: int, length: int, stride: int
                   ) -> list[tuple[tuple[int, int], list[Tracklet]]]:
    """The segments of a video and the video-level ``tracklets`` cut to each (:func:`pyvrel.data.segments.cut_tracklets`)."""
    return [((b, e), cut_tracklets(tracklets, b, e)) for b, e in segment_spans(frame_count, length, stride)]


def predict_video(model: IterativeClassifier, segments: Sequence[tuple[tuple[int, int], Sequence[Tracklet]]],
                  objects: Sequence[str], predicates: Sequence[str], width: float, height: float) -> list[Relation]:
    """The relations of one video: :func:`predict_segments` then the greedy association."""
    cfg = model.cfg
    segments = predict_segments(model, segments, objects, predicates, width, height)
    return associate(segments, "vidvrd2", segment_topk=cfg.segment_topk, linkage_threshold=cfg.linkage_threshold,
                     association_topk=cfg.association_topk, pixel_offset=0)
