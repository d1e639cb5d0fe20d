"""Named benchmark shapes and deterministic inputs, shared by ``bench_*.py`` (the providers,
timing and checks are in ``harness.py``).

Every dimension used by a benchmark lives here (no numbers inside the bench files). Sizes follow
the papers: per-frame detections (300 boxes, 120-frame clips), NMS over 1000 / 5000 detector
boxes, VidVRD-style tube IoU (1000 x 1000 tubes of 100-300 frames in a 600-frame video, half of B
jittered re-cropped copies of A, as in VidVRD's evaluation), aligned tube IoU for
training losses and vRGV-style track interpolation.

``make_inputs(shape, seed)`` builds the inputs of any shape below from a seed, on the CPU.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

import pytest
import torch

from pyvrel.ops import Tubes

SEED = 0
FRAME_W, FRAME_H = 1280.0, 720.0  # pixel coordinate range of the synthetic boxes


# ---- shape configs --------------------------------------------------------------------------


@dataclass(frozen=True)
class BoxIoUShape:
    """``box_iou`` of ``frames`` x (n, 4) x (m, 4) boxes; ``frames=0``: one unbatched set."""

    name: str
    frames: int
    n: int
    m: int
    dtype: torch.dtype = torch.float32
    slow: bool = False


@dataclass(frozen=True)
class BoxIoUAlignedShape:
    """``box_iou_aligned`` forward + backward over ``pairs`` box pairs."""

    name: str
    pairs: int
    jitter: float = 0.1  # b = a + jitter * box size * N(0, 1)
    dtype: torch.dtype = torch.float32
    slow: bool = False


@dataclass(frozen=True)
class NMSShape:
    """(batched) NMS of ``n`` detections, clustered around ``n // per_object`` objects.

    The pure-Python reference makes O(kept x n) IoU calls: it is timed, and the kernels are
    checked against it, on a set of ``ref_n`` boxes built the same way (``ref_shape``).
    """

    name: str
    n: int
    classes: int  # 0: class-agnostic ``nms``; else ``batched_nms`` with this many classes
    iou_threshold: float = 0.5
    per_object: int = 8
    jitter: float = 0.05  # detection = object box + jitter * box size * N(0, 1)
    ref_n: int = 200
    dtype: torch.dtype = torch.float32
    slow: bool = False

    def ref_shape(self) -> "NMSShape":
        return replace(self, name=f"{self.name}-ref{self.ref_n}", n=self.ref_n)


@dataclass(frozen=True)
class TubeIoUShape:
    """Pairwise ``tube_iou`` of n x m tubes, lengths in [min_len, max_len], inside ``video`` frames.

    A ``copies`` fraction of the B tubes are jittered re-cropped copies of A tubes. ``ref_n``: the
    per-pair Python loops are timed on ref_n x ref_n tubes; ``check_n``: the kernels are checked
    against the reference on check_n x check_n tubes. Float64 and ``pixel_offset=1`` are the
    official VidVRD evaluation setting.
    """

    name: str
    n: int
    m: int
    min_len: int = 100
    max_len: int = 300
    video: int = 600
    copies: float = 0.5
    jitter: float = 2.0  # pixels (standard deviation) added to the copied boxes
    pixel_offset: float = 1.0
    ref_n: int = 100
    check_n: int = 60
    dtype: torch.dtype = torch.float64
    slow: bool = False


@dataclass(frozen=True)
class TubeIoUAlignedShape:
    """``tube_iou_aligned`` forward + backward over ``pairs`` (prediction, jittered copy) pairs.

    The reference (torch ops per pair) is timed on the first ``ref_pairs`` pairs.
    """

    name: str
    pairs: int
    frames: int
    min_len: int
    video: int
    jitter: float = 4.0  # pixels (standard deviation) added to the copied boxes
    pixel_offset: float = 0.0
    ref_pairs: int = 64
    dtype: torch.dtype = torch.float32
    slow: bool = False


@dataclass(frozen=True)
class InterpolateShape:
    """``interpolate_boxes`` of ``tracks`` tracks, up to ``samples`` samples every ~``step`` frames.

    Each track keeps between samples // 2 and samples of them (``counts``). The reference (a
    Python loop per frame) is timed on the first ``ref_tracks`` tracks.
    """

    name: str
    tracks: int
    samples: int
    step: int
    ref_tracks: int = 20
    dtype: torch.dtype = torch.float32
    slow: bool = False


BOX_IOU = [
    BoxIoUShape("frame-300x300", frames=0, n=300, m=300),
    BoxIoUShape("clip-120x300x300", frames=120, n=300, m=300),
]
BOX_IOU_ALIGNED = [BoxIoUAlignedShape("clip-120x300", pairs=120 * 300)]
NMS = [
    NMSShape("1000", n=1000, classes=0),
    NMSShape("5000", n=5000, classes=0, slow=True),
    NMSShape("1000-30cls", n=1000, classes=30),
    NMSShape("5000-30cls", n=5000, classes=30, slow=True),
]
TUBE_IOU = [TubeIoUShape("1000x1000", n=1000, m=1000, slow=True)]
TUBE_IOU_ALIGNED = [TubeIoUAlignedShape("4096x128", pairs=4096, frames=128, min_len=64, video=192)]
INTERPOLATE = [InterpolateShape("1000x40", tracks=1000, samples=40, step=10)]


def shape_params(op: str, shapes: list) -> list:
    """``pytest.param`` per shape: id = shape name, benchmark group ``f"{op}-{shape.name}"``, and
    the ``slow`` mark (skipped by ``--quick``) where set."""
    params = []
    for s in shapes:
        marks = [pytest.mark.benchmark(group=f"{op}-{s.name}")] + ([pytest.mark.slow] if s.slow else [])
        params.append(pytest.param(s, id=s.name, marks=marks))
    return params


# ---- inputs ---------------------------------------------------------------------------------


def _boxes(gen: torch.Generator, *shape: int, min_size: float = 20.0, max_size: float = 300.0) -> torch.Tensor:
    """Valid float64 boxes (x1, y1, x2, y2) inside the frame, of shape (*shape, 4)."""
    size = min_size + torch.rand(*shape, 2, generator=gen, dtype=torch.float64) * (max_size - min_size)
    limit = torch.tensor([FRAME_W, FRAME_H], dtype=torch.float64)
    xy = torch.rand(*shape, 2, generator=gen, dtype=torch.float64) * (limit - size)
    return torch.cat([xy, xy + size], dim=-1)


def _fix(boxes: torch.Tensor) -> torch.Tensor:
    """Make x2 >= x1 + 1 and y2 >= y1 + 1 after jitter."""
    boxes[..., 2:] = torch.maximum(boxes[..., 2:], boxes[..., :2] + 1.0)
    return boxes


def _detections(shape: NMSShape, gen: torch.Generator) -> dict:
    """Detector-like output: jittered boxes around objects, uniform scores, object classes."""
    objects = max(1, shape.n // shape.per_object)
    centre_boxes = _boxes(gen, objects)
    owner = torch.randint(0, objects, (shape.n,), generator=gen)
    size = (centre_boxes[:, 2:] - centre_boxes[:, :2]).repeat(1, 2)[owner]
    boxes = _fix(centre_boxes[owner] + shape.jitter * size * torch.randn(shape.n, 4, generator=gen, dtype=torch.float64))
    scores = torch.rand(shape.n, generator=gen, dtype=torch.float64)
    idxs = torch.randint(0, shape.classes, (objects,), generator=gen)[owner] if shape.classes else None
    return {"boxes": boxes.to(shape.dtype), "scores": scores.to(shape.dtype), "idxs": idxs}


def _random_tubes(n: int, frames: int, min_len: int, video: int, gen: torch.Generator) -> Tubes:
    """n moving boxes (constant velocity + random walk), lengths in [min_len, frames], zero-padded."""
    length = torch.randint(min_len, frames + 1, (n,), generator=gen)
    start = torch.randint(0, video - frames + 1, (n,), generator=gen)
    first = _boxes(gen, n, 1)
    velocity = torch.randn(n, 1, 2, generator=gen, dtype=torch.float64)
    t = torch.arange(frames, dtype=torch.float64)[None, :, None]
    walk = torch.cumsum(torch.randn(n, frames, 2, generator=gen, dtype=torch.float64), dim=1)
    boxes = first + (velocity * t + walk).repeat(1, 1, 2)
    boxes[torch.arange(frames)[None, :] >= length[:, None]] = 0.0  # padding, never read
    return Tubes(boxes, start, length)


def _recropped_copies(a: Tubes, index: torch.Tensor, jitter: float, gen: torch.Generator) -> Tubes:
    """Copies of tubes ``a[index]``, each cut to a random sub-span (up to a quarter off each end)
    with Gaussian jitter on the boxes."""
    length = a.length[index]
    cut_head = (torch.rand(len(index), generator=gen) * (length // 4)).long()
    cut_tail = (torch.rand(len(index), generator=gen) * (length // 4)).long()
    new_length = length - cut_head - cut_tail
    frames = a.boxes.shape[1]
    src = (cut_head[:, None] + torch.arange(frames)[None, :]).clamp(max=frames - 1)
    boxes = a.boxes[index].gather(1, src[..., None].expand(-1, -1, 4)).clone()
    boxes = _fix(boxes + jitter * torch.randn(boxes.shape, generator=gen, dtype=torch.float64))
    boxes[torch.arange(frames)[None, :] >= new_length[:, None]] = 0.0
    return Tubes(boxes, a.start[index] + cut_head, new_length)


def _tube_sets(shape: TubeIoUShape, gen: torch.Generator) -> dict:
    """A: n random tubes; B: m tubes, B[j] a re-cropped copy of A[j % n] for a random ``copies``
    fraction of j, a fresh random tube otherwise."""
    a = _random_tubes(shape.n, shape.max_len, shape.min_len, shape.video, gen)
    b = _random_tubes(shape.m, shape.max_len, shape.min_len, shape.video, gen)
    copy = torch.rand(shape.m, generator=gen) < shape.copies
    j = torch.nonzero(copy)[:, 0]
    c = _recropped_copies(a, j % shape.n, shape.jitter, gen)
    b.boxes[j], b.start[j], b.length[j] = c.boxes, c.start, c.length
    return {"a": a.to(shape.dtype), "b": b.to(shape.dtype)}


def _tube_pairs(shape: TubeIoUAlignedShape, gen: torch.Generator) -> dict:
    """Predicted tubes and their jittered re-cropped ground truths, pair by pair."""
    a = _random_tubes(shape.pairs, shape.frames, shape.min_len, shape.video, gen)
    b = _recropped_copies(a, torch.arange(shape.pairs), shape.jitter, gen)
    return {"a": a.to(shape.dtype), "b": b.to(shape.dtype)}


def _tracks(shape: InterpolateShape, gen: torch.Generator) -> dict:
    """Sampled tracks: first frame in [0, 10 * step), gaps in [step / 2, 3 * step / 2] frames."""
    n, k = shape.tracks, shape.samples
    gaps = torch.randint(shape.step // 2, shape.step + shape.step // 2 + 1, (n, k), generator=gen)
    gaps[:, 0] = torch.randint(0, 10 * shape.step, (n,), generator=gen)
    frames = torch.cumsum(gaps, dim=1)
    counts = torch.randint(k // 2, k + 1, (n,), generator=gen)
    first = _boxes(gen, n, 1)
    walk = torch.cumsum(3.0 * torch.randn(n, k, 2, generator=gen, dtype=torch.float64), dim=1)
    boxes = first + walk.repeat(1, 1, 2)
    return {"frames": frames, "boxes": boxes.to(shape.dtype), "counts": counts}


@functools.lru_cache(maxsize=8)
def make_inputs(shape, seed: int = SEED) -> dict:
    """The CPU inputs of ``shape`` (keyword arguments of its op), deterministic in ``seed``.

    Cached: callers must not modify the returned tensors.
    """
    gen = torch.Generator().manual_seed(seed)
    if isinstance(shape, BoxIoUShape):
        lead = (shape.frames,) if shape.frames else ()
        return {"a": _boxes(gen, *lead, shape.n).to(shape.dtype), "b": _boxes(gen, *lead, shape.m).to(shape.dtype)}
    if isinstance(shape, BoxIoUAlignedShape):
        a = _boxes(gen, shape.pairs)
        size = (a[:, 2:] - a[:, :2]).repeat(1, 2)
        b = _fix(a + shape.jitter * size * torch.randn(shape.pairs, 4, generator=gen, dtype=torch.float64))
        return {"a": a.to(shape.dtype), "b": b.to(shape.dtype)}
    if isinstance(shape, NMSShape):
        return _detections(shape, gen)
    if isinstance(shape, TubeIoUShape):
        return _tube_sets(shape, gen)
    if isinstance(shape, TubeIoUAlignedShape):
        return _tube_pairs(shape, gen)
    if isinstance(shape, InterpolateShape):
        return _tracks(shape, gen)
    raise TypeError(f"make_inputs: unknown shape {shape!r}")


def head(tubes: Tubes, n: int) -> Tubes:
    """The first n tubes of a batch."""
    return Tubes(tubes.boxes[:n], tubes.start[:n], tubes.length[:n])


# ---- evaluation (benchmarks/bench_eval.py) ----------------------------------------------------
# The size: 200 videos x ~30 ground-truth relations x ~200 predictions each (the official
# code needs ~1.5 s to score and 9-16 s to load its JSON at this size).
EVAL_VIDEOS = 200
EVAL_GT_PER_VIDEO = 30
EVAL_PRED_PER_VIDEO = 200
EVAL_SEED = 0


# ---- local attention (benchmarks/bench_local_attention.py) ----------------------------------


@dataclass(frozen=True)
class LocalAttentionShape:
    """One windowed-attention problem: q = k = v of (batch, heads, length, head_dim) float32,
    kernel size ``window``, valid lengths ``lengths`` (None: all full)."""

    name: str
    batch: int
    heads: int
    length: int
    head_dim: int
    window: int
    lengths: tuple[int, ...] | None = None


_VARLEN = (512, 480, 400, 300, 256, 200, 128, 64)  # valid lengths of a VidOR-like padded batch
LOCAL_ATTENTION = [
    LocalAttentionShape("vidor_d32", 8, 8, 512, 32, 9, _VARLEN),
    LocalAttentionShape("vidor_d64", 8, 8, 512, 64, 9, _VARLEN),
    LocalAttentionShape("vidvrd_l96", 16, 4, 96, 64, 7),
    LocalAttentionShape("pyramid_l256", 8, 8, 256, 64, 9, tuple(n // 2 for n in _VARLEN)),
    LocalAttentionShape("pyramid_l128", 8, 8, 128, 64, 9, tuple(n // 4 for n in _VARLEN)),
    LocalAttentionShape("pyramid_l64", 8, 8, 64, 64, 9, tuple(n // 8 for n in _VARLEN)),
]


# ---- seq_nms, viterbi (bench_seq_nms.py, bench_viterbi.py) ------------------------------------
# Seq-NMS: (frames, boxes per frame) of one video; 30 moving objects x 8 jittered detections
# plus clutter, uniform random scores.
SEQ_NMS_SHAPES = [(120, 100), (120, 300)]
# Viterbi: (problems, sampled frames, proposals per frame), vRGV's 120 x 40.
VITERBI_SHAPES = [(1, 120, 40), (1024, 120, 40)]
# ---- training engine (benchmarks/bench_engine.py) ---------------------------------------------
# One epoch of a small MLP regression: Trainer (EMA, clipping, logging) against a bare AdamW loop.
ENGINE_SAMPLES = 2048          # 32 steps of the global batch below
ENGINE_BATCH = 64
ENGINE_WIDTH = 256             # in_dim = hidden = ENGINE_WIDTH, two hidden layers
# ---- VrdONE (benchmarks/bench_vrdone.py) ------------------------------------------------------


@dataclass(frozen=True)
class VrdONEShape:
    """One VrdONE batch: ``preset`` of :class:`pyvrel.models.vrdone.VrdONEConfig`, ``batch`` pairs of
    valid lengths cycling through ``lengths`` (padded to the preset's ``max_seq_len``)."""

    name: str
    preset: str
    batch: int
    lengths: tuple[int, ...]
    max_seq_len: int | None = None


VRDONE = [
    VrdONEShape("vidor_b2", "vidor", 2, (512, 300)),
    VrdONEShape("vidvrd_b6", "vidvrd", 6, (96, 80, 64, 48, 30, 12)),
    VrdONEShape("synthetic_b16", "synthetic", 16, (64, 50, 40, 30, 20, 10), 64),
]
# ---- vRGV (benchmarks/bench_vrgv.py) ----------------------------------------------------------


@dataclass(frozen=True)
class VRGVShape:
    """One vRGV batch: ``preset`` of :class:`pyvrel.models.vrgv.VRGVConfig` (``"vidvrd"``: the code's
    120 frames x 40 proposals x 2048-d; ``"synthetic"``: 24 x 16 x 32-d), ``batch`` video-relation
    samples per training step, ``frame_count`` of the grounded video."""

    name: str
    preset: str
    batch: int
    frame_count: int = 600


VRGV = [VRGVShape("vidvrd_b8", "vidvrd", 8), VRGVShape("synthetic_b32", "synthetic", 32)]


@dataclass(frozen=True)
class UASANShape:
    """UASAN inputs: ``segments`` of ``tracks`` trajectories and ``pairs`` ordered pairs each, network
    width ``hidden`` with ``tokens`` concept tokens, ``visual_dim``-d trajectory/union features,
    ``text_dim``-d name vectors, 71 base predicates / 25 objects in training, 132 / 35 at inference."""

    name: str
    segments: int
    tracks: int
    pairs: int
    hidden: int = 64
    tokens: int = 4
    visual_dim: int = 16
    text_dim: int = 64


#: one training step: the paper's sizes (d 512, L 32, EVA-ViT-g 1408-d, MiniLM 384-d; batch 8
#: segments, SACEncoder 3 layers as the code) and the synthetic default (16 segments)
UASAN_TRAIN = [UASANShape("paper_b8", 8, 4, 12, hidden=512, tokens=32, visual_dim=1408, text_dim=384),
               UASANShape("synthetic_b16", 16, 4, 6)]
#: classifying all pairs of a 200-video set (8 segments of 4 trajectories and 12 pairs per video)
UASAN_CLASSIFY = [UASANShape("synthetic_200_videos", 200 * 8, 4, 12)]


# ---- GPU side by side (benchmarks/bench_gpu_anchors.py, issue 17) --------------------------------
# (shape, dtypes) of local attention against dense SDPA and compiled FlexAttention; the last is a
# long-sequence shape (8.7 GFLOP forward inside the windows, 134 MB of q/k/v/out in float16).
GPU_LOCAL_ATTENTION = [
    (LOCAL_ATTENTION[0], (torch.float32, torch.float16)),
    (LOCAL_ATTENTION[1], (torch.float16,)),
    (LocalAttentionShape("long_l8192_w129", 4, 8, 8192, 64, 129), (torch.float16, torch.bfloat16)),
]
GPU_NMS = [NMSShape("1000", n=1000, classes=0), NMSShape("5000", n=5000, classes=0),
           NMSShape("20000", n=20000, classes=0), NMSShape("5000-30cls", n=5000, classes=30),
           NMSShape("20000-30cls", n=20000, classes=30)]
GPU_BOX_IOU = [BoxIoUShape("1000x1000", frames=0, n=1000, m=1000), BoxIoUShape("5000x5000", frames=0, n=5000, m=5000),
               BOX_IOU[1]]
# Seq-NMS (videos, frames, boxes per frame) of bench_seq_nms.synthetic_video against the C++ backend
# on all host cores; targets: 1 video faster than C++, 16 videos >= 10x faster.
GPU_SEQ_NMS = [(1, 120, 300), (16, 120, 300)]
# --smoke: tiny versions that also run on the CPU (Triton interpreter), to check the script itself
GPU_SMOKE_LOCAL_ATTENTION = [(LocalAttentionShape("smoke_l40", 2, 2, 40, 16, 5, (40, 23)), (torch.float32,))]
GPU_SMOKE_NMS = [NMSShape("200", n=200, classes=0), NMSShape("200-5cls", n=200, classes=5)]
GPU_SMOKE_BOX_IOU = [BoxIoUShape("50x60", frames=0, n=50, m=60)]
GPU_SMOKE_SEQ_NMS = [(2, 12, 20)]


# ---- HVR-Net (benchmarks/bench_hvrnet.py) -------------------------------------------------------


@dataclass(frozen=True)
class RelationShape:
    """One relation stage call: ``groups`` x ``proposals`` x ``dim`` (HVR-Net: 3 videos x 300 RPN
    proposals x 1024-d; the inter-video stage relates the three videos' proposals as one group)."""

    name: str
    groups: int
    proposals: int
    dim: int


HVRNET_RELATION = [RelationShape("intra_3x300x1024", 3, 300, 1024), RelationShape("inter_1x900x1024", 1, 900, 1024)]
TRACK_VIDEOS = 200  # synthetic videos (demo world sizes, with per-frame detection features) for `pyvrel track`
