"""vRGV configuration (the public code's defaults) and its caption vocabulary.

Defaults are the public code's (``networks/relation2relation.py``, ``ground_relation.py``,
``generate_track_link.py``); :meth:`VRGVConfig.synthetic` is a small preset for the synthetic world.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

__all__ = ["CaptionVocabulary", "VRGVConfig"]

@dataclass(frozen=True)
class VRGVConfig:
    """Hyper-parameters of vRGV (Xiao et al., ECCV 2020).

    Attributes (model, §2.2):
        num_frames: frames sampled per video (120); num_clips: clips they form (10; frames per clip
            = num_frames // num_clips, the code's max_seg_len 12).
        num_proposals: region proposals per frame (40; the code hard-wires it into the attention-shift
            layers, here a parameter).
        feature_dim: appearance feature per region (2048); the model appends 5 box values
            ``(x1/W, y1/H, x2/W, y2/H, (x2-x1+1)(y2-y1+1)/(W H))``, the code's +1 area term.
        word_dim: word-vector width (GloVe 300). embed_dim: 256. hidden_dim: LSTM width 512.
        dropout: 0.2 after every embedding/transform.
        max_caption_len: longest caption the greedy decoder writes (10).
        cooccurrence: the paper's co-occurrence baseline: captions without the predicate.
        feature_scale: factor on the appearance features before their embedding (1: the code).
    Attributes (pyvrel corrections, off by default; ``docs/models.md`` "vRGV" says what they change):
        attention: ``"additive"`` (the code's ``w2ᵀ tanh(W1 [x; context])`` in the SAU and both
            temporal attentions) or ``"bilinear"`` (``(W_x x)·(W_c context) / √d``: the additive
            score depends on the query only at second order).
        decoder_state: the decoder's initial LSTM state: ``"clip"`` (the code: the clip LSTM's final
            state) or ``"zeros"`` (the video reaches the decoder only as its first input; with
            ``"clip"`` the grounder can lower the loss by handing the decoder a constant state,
            which saturates its LSTMs before the attention learns).
        frame_values: what the frame attention β1 pools into the video embedding: ``"lstm"`` (the
            code: the frame LSTM's outputs, which carry every earlier frame, so β1 need not find the
            relation's frames) or ``"inputs"`` (each frame's own attended subject and object
            features; the LSTM's outputs still score the frames).
    Attributes (beyond the paper, off by default):
        tube_training: what pools the subject and object region features: ``"attention"`` (α, the
            paper) or ``"soft_viterbi"`` (the path marginals of linking α with ``λ · IoU`` links,
            :mod:`pyvrel.models.vrgv.soft_tubes`, in training and inference alike; the grounding still
            links α). tube_weight: that λ (None: ``pairwise_weight``; no frame-gap scaling).
    Attributes (grounding, §2.4):
        temporal_score: the score the threshold cuts: ``"clip_frame"`` (the code: ``β2[clip(t)] + β1[t]``)
            or ``"frame"`` (``β1[t]`` alone; a correction: a near-uniform β2 varies more than β1 and
            decides which frames pass). :meth:`uniform_score` is its value under uniform attention.
        temporal_threshold: σ on the temporal score (0.04). min_segment: the 10 of
            ``margin = min_len = int(10 · num_frames / frame_count)``.
        pairwise_weight: λ scale of the IoU link term (1; 0 gives vRGV*, greedy linking).
    """

    num_frames: int = 120
    num_clips: int = 10
    num_proposals: int = 40
    feature_dim: int = 2048
    word_dim: int = 300
    embed_dim: int = 256
    hidden_dim: int = 512
    dropout: float = 0.2
    max_caption_len: int = 10
    cooccurrence: bool = False
    feature_scale: float = 1.0
    attention: str = "additive"
    decoder_state: str = "clip"
    frame_values: str = "lstm"
    tube_training: str = "attention"
    tube_weight: float | None = None
    temporal_score: str = "clip_frame"
    temporal_threshold: float = 0.04
    min_segment: float = 10.0
    pairwise_weight: float = 1.0

    def __post_init__(self) -> None:
        for name in ("num_frames", "num_clips", "num_proposals", "feature_dim", "word_dim", "embed_dim",
                     "hidden_dim", "max_caption_len"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) > 0):
                raise ValueError(f"{name}: must be a positive int, got {getattr(self, name)!r}")
        if self.num_frames % self.num_clips:
            raise ValueError(f"num_frames ({self.num_frames}) must be a multiple of num_clips ({self.num_clips})")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout: must be in [0, 1), got {self.dropout!r}")
        for name, choices in (("attention", ("additive", "bilinear")), ("decoder_state", ("clip", "zeros")),
                              ("frame_values", ("lstm", "inputs")), ("temporal_score", ("clip_frame", "frame")),
                              ("tube_training", ("attention", "soft_viterbi"))):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name}: expected one of {', '.join(map(repr, choices))}, got {getattr(self, name)!r}")
        if not self.feature_scale > 0:
            raise ValueError(f"feature_scale: must be > 0, got {self.feature_scale!r}")
        if self.pairwise_weight < 0 or self.min_segment < 0:
            raise ValueError("pairwise_weight and min_segment must be >= 0")
        if self.tube_weight is not None and not self.tube_weight >= 0:
            raise ValueError(f"tube_weight: must be >= 0 or None, got {self.tube_weight!r}")

    @property
    def clip_len(self) -> int:
        return self.num_frames // self.num_clips

    @property
    def visual_dim(self) -> int:
        return self.feature_dim + 5

    def uniform_score(self) -> float:
        """The temporal score of uniform attention: ``1/num_clips + 1/num_frames`` (``"frame"``: ``1/num_frames``)."""
        return (1 / self.num_clips if self.temporal_score == "clip_frame" else 0.0) + 1 / self.num_frames

    @classmethod
    def synthetic(cls, **overrides) -> VRGVConfig:
        """Small preset for the synthetic world: 24 frames in 4 clips (5x fewer LSTM steps than the code's
        120, so a CPU trains enough steps), 16 proposals, 32-d features and word vectors, embed 64,
        hidden 128; the temporal threshold keeps the code's ratio to a uniform score (0.04 / 0.108);
        ``feature_scale`` √32: the world's appearance vectors have unit norm (1/√D per dimension,
        far below a detector's), rescaled to unit variance per dimension."""
        base = cls(num_frames=24, num_clips=4, num_proposals=16, feature_dim=32, word_dim=32, embed_dim=64,
                   hidden_dim=128, dropout=0.1, temporal_threshold=0.1, feature_scale=32 ** 0.5)
        return replace(base, **overrides)


class CaptionVocabulary:
    """vRGV's caption words (§2.1): ``<pad>`` 0, ``<start>`` 1, ``<end>`` 2, ``<unk>`` 3, then every word
    of the training relations (frequency threshold 1) in first-seen order. A relation
    ``dog-stand_behind-frisbee`` is tokenised on ``-``/``_``/spaces and lower-cased:
    ``<start> dog stand behind frisbee <end>``. With ``cooccurrence`` the predicate is left out."""

    SPECIALS = ("<pad>", "<start>", "<end>", "<unk>")
    PAD, START, END, UNK = range(4)

    def __init__(self, words: Sequence[str]) -> None:
        self.words = list(self.SPECIALS) + [w for w in words if w not in self.SPECIALS]
        self.index = {w: i for i, w in enumerate(self.words)}

    @staticmethod
    def tokens(triplet: Sequence[str], cooccurrence: bool = False) -> list[str]:
        parts = [triplet[0], triplet[2]] if cooccurrence else list(triplet)
        return [w for p in parts for w in re.split(r"[-_\s]+", p.lower()) if w]

    @classmethod
    def build(cls, triplets: Iterable[Sequence[str]], cooccurrence: bool = False) -> CaptionVocabulary:
        seen: dict[str, None] = {}
        for t in triplets:
            seen.update(dict.fromkeys(cls.tokens(t, cooccurrence)))
        return cls(list(seen))

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, triplet: Sequence[str], cooccurrence: bool = False) -> list[int]:
        """``[<start>, words..., <end>]`` indices (unknown words: ``<unk>``)."""
        return [self.START, *(self.index.get(w, self.UNK) for w in self.tokens(triplet, cooccurrence)), self.END]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Words up to the first ``<end>`` (``<start>``/``<pad>`` dropped)."""
        out = []
        for i in ids:
            if i == self.END:
                break
            if i not in (self.PAD, self.START):
                out.append(self.words[i] if 0 <= i < len(self.words) else "<unk>")
        return out
