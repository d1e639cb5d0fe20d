"""Tube (trajectory) ops: pairwise/aligned tube IoU, temporal IoU, interpolation, conversions.

A batch of tubes is a :class:`~pyvrel.ops.Tubes` ``(boxes (N, T, 4), start (N,), length (N,))``;
see its docstring for the layout.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import torch
from torch import Tensor

from pyvrel import _codes, _ext
from pyvrel.ops import _checks, reference
from pyvrel.ops._backend import call, choose_backend
from pyvrel.ops.types import Tubes

__all__ = [
    "tube_iou",
    "tube_iou_aligned",
    "temporal_iou",
    "interpolate_boxes",
    "pack_tubes",
    "unpack_tubes",
    "tubes_from_frame_boxes",
    "tubes_to_frame_boxes",
]

TubeIoUMode = Literal["volume", "iou3dt"]
_BACKENDS = ("cpp", "cuda", "triton", "reference")


# ---- pyvrel::tube_iou -----------------------------------------------------------------------


@torch.library.custom_op("pyvrel::tube_iou", mutates_args=())
def _tube_iou(a: Tensor, a_start: Tensor, a_length: Tensor, b: Tensor, b_start: Tensor, b_length: Tensor,
              pixel_offset: float, mode: int, backend: str) -> Tensor:
    """Tubes (N, Ta, 4) x (M, Tb, 4) with int64 start/length -> (N, M)."""
    if backend == "triton":
        from pyvrel.kernels.tubes import tube_iou_triton

        return tube_iou_triton(a, a_start, a_length, b, b_start, b_length, pixel_offset, mode)
    N, M = a.shape[0], b.shape[0]
    out = a.new_zeros(N, M)
    if out.numel():
        _ext.launch(backend, "tube_iou_forward", a, a_start, a_length, N, a.shape[1], b, b_start, b_length, M,
                    b.shape[1], out, _codes.dtype_code(a), mode, pixel_offset)
    return out


@_tube_iou.register_fake
def _(a, a_start, a_length, b, b_start, b_length, pixel_offset, mode, backend):
    return a.new_empty(a.shape[0], b.shape[0])


# ---- pyvrel::tube_iou_aligned ---------------------------------------------------------------


@torch.library.custom_op("pyvrel::tube_iou_aligned", mutates_args=())
def _tube_iou_aligned(a: Tensor, a_start: Tensor, a_length: Tensor, b: Tensor, b_start: Tensor,
                      b_length: Tensor, pixel_offset: float, mode: int, backend: str) -> Tensor:
    """Paired tubes (N, Ta, 4), (N, Tb, 4) -> (N,)."""
    if backend == "triton":
        from pyvrel.kernels.tubes import tube_iou_aligned_triton

        return tube_iou_aligned_triton(a, a_start, a_length, b, b_start, b_length, pixel_offset, mode)
    out = a.new_zeros(a.shape[0])
    if out.numel():
        _ext.launch(backend, "tube_iou_aligned_forward", a, a_start, a_length, a.shape[1], b, b_start, b_length,
                    b.shape[1], a.shape[0], out, _codes.dtype_code(a), mode, pixel_offset)
    return out


@_tube_iou_aligned.register_fake
def _(a, a_start, a_length, b, b_start, b_length, pixel_offset, mode, backend):
    return a.new_empty(a.shape[0])


@torch.library.custom_op("pyvrel::tube_iou_aligned_backward", mutates_args=())
def _tube_iou_aligned_backward(a: Tensor, a_start: Tensor, a_length: Tensor, b: Tensor, b_start: Tensor,
                               b_length: Tensor, grad: Tensor, pixel_offset: float, mode: int,
                               backend: str) -> tuple[Tensor, Tensor]:
    if backend == "triton":
        from pyvrel.kernels.tubes import tube_iou_aligned_backward_triton

        return tube_iou_aligned_backward_triton(a, a_start, a_length, b, b_start, b_length, grad, pixel_offset, mode)
    ga, gb = torch.zeros_like(a), torch.zeros_like(b)
    if grad.numel():
        _ext.launch(backend, "tube_iou_aligned_backward", a, a_start, a_length, a.shape[1], b, b_start, b_length,
                    b.shape[1], a.shape[0], grad, ga, gb, _codes.dtype_code(a), mode, pixel_offset)
    return ga, gb


@_tube_iou_aligned_backward.register_fake
def _(a, a_start, a_length, b, b_start, b_length, grad, pixel_offset, mode, backend):
    return torch.empty_like(a), torch.empty_like(b)


def _tube_iou_aligned_setup(ctx, inputs, output):
    a, a_start, a_length, b, b_start, b_length, pixel_offset, mode, backend = inputs
    ctx.save_for_backward(a, a_start, a_length, b, b_start, b_length)
    ctx.args = (pixel_offset, mode, backend)


def _tube_iou_aligned_grad(ctx, grad):
    a, a_start, a_length, b, b_start, b_length = ctx.saved_tensors
    ga, gb = _tube_iou_aligned_backward(a, a_start, a_length, b, b_start, b_length, grad.contiguous(), *ctx.args)
    return ga, None, None, gb, None, None, None, None, None


_tube_iou_aligned.register_autograd(_tube_iou_aligned_grad, setup_context=_tube_iou_aligned_setup)


# ---- pyvrel::interpolate_boxes --------------------------------------------------------------


@torch.library.custom_op("pyvrel::interpolate_boxes", mutates_args=())
def _interpolate_boxes(frames: Tensor, boxes: Tensor, counts: Tensor, length: int, backend: str) -> Tensor:
    """frames (N, K) int64, boxes (N, K, 4), counts (N,) int64 -> (N, length, 4)."""
    if backend == "triton":
        from pyvrel.kernels.tubes import interpolate_boxes_triton

        return interpolate_boxes_triton(frames, boxes, counts, length)
    N, K = frames.shape
    out = boxes.new_zeros(N, length, 4)
    if out.numel():
        _ext.launch(backend, "interpolate_boxes_forward", frames, boxes, counts, N, K, out, length,
                    _codes.dtype_code(boxes))
    return out


@_interpolate_boxes.register_fake
def _(frames, boxes, counts, length, backend):
    return boxes.new_empty(frames.shape[0], length, 4)


@torch.library.custom_op("pyvrel::interpolate_boxes_backward", mutates_args=())
def _interpolate_boxes_backward(frames: Tensor, counts: Tensor, grad: Tensor, backend: str) -> Tensor:
    """grad (N, L, 4) -> grad of boxes (N, K, 4)."""
    if backend == "triton":
        from pyvrel.kernels.tubes import interpolate_boxes_backward_triton

        return interpolate_boxes_backward_triton(frames, counts, grad)
    N, K = frames.shape
    gb = grad.new_zeros(N, K, 4)
    if gb.numel() and grad.numel():
        _ext.launch(backend, "interpolate_boxes_backward", frames, counts, N, K, grad, grad.shape[1], gb,
                    _codes.dtype_code(grad))
    return gb


@_interpolate_boxes_backward.register_fake
def _(frames, counts, grad, backend):
    return grad.new_empty(frames.shape[0], frames.shape[1], 4)


def _interpolate_setup(ctx, inputs, output):
    frames, boxes, counts, length, backend = inputs
    ctx.save_for_backward(frames, counts)
    ctx.backend = backend


def _interpolate_grad(ctx, grad):
    frames, counts = ctx.saved_tensors
    return None, _interpolate_boxes_backward(frames, counts, grad.contiguous(), ctx.backend), None, None, None


_interpolate_boxes.register_autograd(_interpolate_grad, setup_context=_interpolate_setup)


# ---- validation -----------------------------------------------------------------------------


def _check_tubes(op: str, name: str, tubes: Tubes | tuple[Tensor, Tensor, Tensor]) -> Tubes:
    """Validate a tube batch and return it with int64 start/length."""
    if not isinstance(tubes, tuple) or len(tubes) != 3:
        raise TypeError(f"{op}: {name} must be a Tubes (boxes, start, length) tuple, got {type(tubes).__name__}")
    boxes, start, length = tubes
    _checks.tensor(op, f"{name}.boxes", boxes, ndim=3, last=4, dtypes=_checks.FLOAT_DTYPES)
    n, t = boxes.shape[0], boxes.shape[1]
    for field, value in (("start", start), ("length", length)):
        _checks.tensor(op, f"{name}.{field}", value, ndim=1, integer=True)
        if value.shape[0] != n:
            raise ValueError(f"{op}: {name}.{field} must have shape ({n},) to match {name}.boxes "
                             f"{tuple(boxes.shape)}, got {tuple(value.shape)}")
    _checks.same_device(op, **{f"{name}.boxes": boxes, f"{name}.start": start, f"{name}.length": length})
    _checks.int_range(op, f"{name}.length", length, 0, t, f"in [0, T={t}]")
    _checks.int_range(op, f"{name}.start", start, 0, _checks.MAX_FRAME, ">= 0 and <= 2**53")
    # unchecked values (CUDA, see _checks.check_values) are clamped: no kernel reads past T
    return Tubes(boxes, start.to(torch.int64).clamp(0, _checks.MAX_FRAME).contiguous(),
                 length.to(torch.int64).clamp(0, t).contiguous())


def _pair_setup(op: str, a: Tubes, b: Tubes, pixel_offset: float, mode: str,
                backend: str | None) -> tuple[float, int, str]:
    """Checks shared by the tube IoU ops (checked tubes a, b); returns (pixel offset, mode code,
    backend)."""
    _checks.same_dtype(op, **{"a.boxes": a.boxes, "b.boxes": b.boxes})
    device = _checks.same_device(op, **{"a.boxes": a.boxes, "b.boxes": b.boxes})
    off = _checks.pixel_offset(op, pixel_offset)
    if mode not in _codes.TUBE_IOU_MODE:
        raise ValueError(f"{op}: mode must be one of {tuple(_codes.TUBE_IOU_MODE)}, got {mode!r}")
    return off, _codes.TUBE_IOU_MODE[mode], choose_backend(op, device, backend, _BACKENDS)


def _kernel_args(a: Tubes, b: Tubes) -> tuple[Tensor, ...]:
    """The tube tensors of a and b as the custom ops take them (contiguous float32/float64)."""
    cdt = _checks.compute_dtype(a.boxes)
    return (a.boxes.to(cdt).contiguous(), a.start, a.length, b.boxes.to(cdt).contiguous(), b.start, b.length)


# ---- public API -----------------------------------------------------------------------------


def tube_iou(
    a: Tubes,
    b: Tubes,
    pixel_offset: float = 0,
    *,
    mode: TubeIoUMode = "volume",
    backend: str | None = None,
) -> Tensor:
    """Pairwise spatio-temporal IoU of two tube batches.

    Args:
        a (Tubes): ``N`` tubes, ``boxes (N, Ta, 4)``, ``start (N,)``, ``length (N,)``.
        b (Tubes): ``M`` tubes of the same dtype and device.
        pixel_offset: 0 (continuous) or 1 (inclusive pixels: with ``mode="volume"`` and float64
            boxes this reproduces the official VidVRD/VidOR evaluation bit for bit).
        mode: ``"volume"`` — VidVRD's volumetric vIoU: sum over shared frames of the intersections
            / (vol_a + vol_b - inter), each volume summed over its tube's whole span.
            ``"iou3dt"`` — mean per-frame IoU over the shared frames times the temporal IoU.
        backend: ``None`` (automatic), ``"cpp"``, ``"cuda"``, ``"triton"`` or ``"reference"``.

    Returns:
        Tensor[N, M] of the boxes' dtype. Tubes whose spans do not overlap (``[0, 5)`` and
        ``[5, 10)`` included) give 0 and cost O(1): they are pruned before any frame is read.
        Sums over frames are accumulated in float64. Not differentiable (see
        :func:`tube_iou_aligned`).
    """
    op = "tube_iou"
    a, b = _check_tubes(op, "a", a), _check_tubes(op, "b", b)
    off, code, chosen = _pair_setup(op, a, b, pixel_offset, mode, backend)
    if chosen == "reference":
        return reference.tube_iou_ref(a, b, off, mode).to(a.boxes.device)
    return call(_tube_iou, *_kernel_args(a, b), off, code, chosen).to(a.boxes.dtype)


def tube_iou_aligned(
    a: Tubes,
    b: Tubes,
    pixel_offset: float = 0,
    *,
    mode: TubeIoUMode = "volume",
    backend: str | None = None,
) -> Tensor:
    """Spatio-temporal IoU of paired tubes ``(a[i], b[i])``.

    Args:
        a, b (Tubes): ``N`` tubes each (``Ta`` and ``Tb`` may differ); same dtype and device.
        pixel_offset, mode, backend: as in :func:`tube_iou`.

    Returns:
        Tensor[N]. Differentiable w.r.t. ``a.boxes`` and ``b.boxes`` (zero gradient on frames
        outside the spans, and for disjoint boxes' intersection terms).
    """
    op = "tube_iou_aligned"
    a, b = _check_tubes(op, "a", a), _check_tubes(op, "b", b)
    if a.boxes.shape[0] != b.boxes.shape[0]:
        raise ValueError(f"{op}: a and b must hold the same number of tubes, got {a.boxes.shape[0]} and {b.boxes.shape[0]}")
    off, code, chosen = _pair_setup(op, a, b, pixel_offset, mode, backend)
    if chosen == "reference":
        return reference.tube_iou_aligned_ref(a, b, off, mode)
    return call(_tube_iou_aligned, *_kernel_args(a, b), off, code, chosen).to(a.boxes.dtype)


def temporal_iou(spans_a: Tensor, spans_b: Tensor) -> Tensor:
    """Pairwise IoU of half-open frame spans.

    Args:
        spans_a (Tensor[N, 2]), spans_b (Tensor[M, 2]): ``[begin, end)`` (integer or float).

    Returns:
        Tensor[N, M] float64 for float64 input, else float32. Touching spans (``[0, 5)`` and
        ``[5, 10)``) give 0; empty spans give 0. Plain tensor math, on any device.
    """
    op = "temporal_iou"
    _checks.tensor(op, "spans_a", spans_a, ndim=2, last=2)
    _checks.tensor(op, "spans_b", spans_b, ndim=2, last=2)
    _checks.same_device(op, spans_a=spans_a, spans_b=spans_b)
    dtype = torch.float64 if torch.float64 in (spans_a.dtype, spans_b.dtype) else torch.float32
    return reference.temporal_iou_ref(spans_a, spans_b).to(dtype)


def interpolate_boxes(
    frames: Tensor, boxes: Tensor, counts: Tensor | None = None, *, backend: str | None = None
) -> Tubes:
    """Fill unsampled frames of box tracks by linear interpolation (vRGV appendix, eq. 14).

    The box at frame ``f`` with ``F_k <= f <= F_{k+1}`` is
    ``(F_{k+1} - f) / (F_{k+1} - F_k) * B_k + (f - F_k) / (F_{k+1} - F_k) * B_{k+1}``.

    Args:
        frames (Tensor[N, K] int): strictly increasing sampled frame indices of each track, in
            ``[0, 2**53]``.
        boxes (Tensor[N, K, 4]): box of each sample.
        counts (Tensor[N] int, optional): number of valid samples per track (default: all ``K``).
        backend: as in :func:`tube_iou`.

    Returns:
        Tubes with ``start = frames[:, 0]``, ``length = frames[n, counts[n]-1] - frames[n, 0] + 1``
        (0 for empty tracks) and ``boxes (N, max length, 4)``, zero-padded. Differentiable w.r.t.
        ``boxes``.
    """
    op = "interpolate_boxes"
    _checks.tensor(op, "frames", frames, ndim=2, integer=True)
    _checks.tensor(op, "boxes", boxes, ndim=3, last=4, dtypes=_checks.FLOAT_DTYPES)
    n, k = frames.shape
    if boxes.shape[:2] != frames.shape:
        raise ValueError(f"{op}: boxes must have shape ({n}, {k}, 4) to match frames, got {tuple(boxes.shape)}")
    if counts is None:
        counts = torch.full((n,), k, dtype=torch.int64, device=frames.device)
    _checks.tensor(op, "counts", counts, ndim=1, integer=True)
    if counts.shape[0] != n:
        raise ValueError(f"{op}: counts must have shape ({n},), got {tuple(counts.shape)}")
    device = _checks.same_device(op, frames=frames, boxes=boxes, counts=counts)
    _checks.int_range(op, "counts", counts, 0, k, f"in [0, K={k}]")
    frames, counts = frames.to(torch.int64).contiguous(), counts.to(torch.int64).clamp(0, k).contiguous()
    valid = torch.arange(k, device=device)[None, :] < counts[:, None]
    _checks.int_range(op, "frames", torch.where(valid, frames, 0), 0, _checks.MAX_FRAME)
    if k > 1 and _checks.check_values(frames) and bool(((frames[:, 1:] <= frames[:, :-1]) & valid[:, 1:]).any()):
        raise ValueError(f"{op}: frames must be strictly increasing within the first counts[n] samples of each track")
    _checks.finite(op, "boxes", torch.where(valid[..., None], boxes, 0))
    chosen = choose_backend(op, device, backend, _BACKENDS)
    if k == 0:  # no samples: empty tracks
        zeros = torch.zeros(n, dtype=torch.int64, device=device)
        return Tubes(boxes.new_zeros(n, 0, 4), zeros, zeros.clone())
    if chosen == "reference":
        return reference.interpolate_boxes_ref(frames, boxes, counts)
    last = frames.gather(1, (counts - 1).clamp(min=0)[:, None])[:, 0]
    length = torch.where(counts > 0, last - frames[:, 0] + 1, torch.zeros_like(counts))
    start = torch.where(counts > 0, frames[:, 0], torch.zeros_like(counts))
    max_len = int(length.max()) if n else 0
    out = call(_interpolate_boxes, frames, boxes.to(_checks.compute_dtype(boxes)).contiguous(), counts, max_len, chosen)
    return Tubes(out.to(boxes.dtype), start, length)


# ---- conversions ----------------------------------------------------------------------------


def pack_tubes(
    tracks: Sequence[Tensor | Sequence[Sequence[float]]],
    starts: Sequence[int] | Tensor,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tubes:
    """Pad per-tube box lists ``tracks[i] (L_i, 4)`` starting at frames ``starts[i]`` into :class:`Tubes`."""
    if len(tracks) != len(starts):
        raise ValueError(f"pack_tubes: got {len(tracks)} tracks but {len(starts)} starts")
    items = [torch.as_tensor(t, dtype=dtype).reshape(-1, 4) if len(t) else torch.zeros(0, 4, dtype=dtype)
             for t in tracks]
    length = torch.tensor([t.shape[0] for t in items], dtype=torch.int64)
    boxes = torch.zeros(len(items), int(length.max()) if len(items) else 0, 4, dtype=dtype)
    for i, t in enumerate(items):
        boxes[i, : t.shape[0]] = t
    start = torch.as_tensor(starts, dtype=torch.int64).reshape(-1)
    _checks.int_range("pack_tubes", "starts", start, 0, _checks.MAX_FRAME, ">= 0 and <= 2**53")
    return Tubes(boxes, start, length).to(device) if device is not None else Tubes(boxes, start, length)


def unpack_tubes(tubes: Tubes) -> list[tuple[int, Tensor]]:
    """Inverse of :func:`pack_tubes`: a ``(start, boxes (L_i, 4))`` pair per tube."""
    tubes = _check_tubes("unpack_tubes", "tubes", tubes)
    return [(int(s), tubes.boxes[i, : int(n)]) for i, (s, n) in enumerate(zip(tubes.start.tolist(), tubes.length.tolist()))]


def tubes_from_frame_boxes(
    tracks: Sequence[Mapping[int, Sequence[float]]],
    *,
    fill_gaps: bool = True,
    dtype: torch.dtype = torch.float32,
) -> Tubes:
    """Tubes from per-track ``{frame: (x1, y1, x2, y2)}`` dicts.

    Frames missing inside a track's span are filled by :func:`interpolate_boxes` when
    ``fill_gaps`` is true, and raise ``ValueError`` naming the track otherwise.
    """
    k = max((len(t) for t in tracks), default=0)
    frames = torch.zeros(len(tracks), k, dtype=torch.int64)
    boxes = torch.zeros(len(tracks), k, 4, dtype=dtype)
    counts = torch.zeros(len(tracks), dtype=torch.int64)
    for i, track in enumerate(tracks):
        keys = sorted(int(f) for f in track)
        if keys and not fill_gaps and keys[-1] - keys[0] + 1 != len(keys):
            raise ValueError(f"tubes_from_frame_boxes: track {i} has gaps in frames [{keys[0]}, {keys[-1]}] "
                             "and fill_gaps=False")
        counts[i] = len(keys)
        if keys:
            frames[i, : len(keys)] = torch.tensor(keys)
            boxes[i, : len(keys)] = torch.tensor([list(track[f]) for f in keys], dtype=dtype)
    return interpolate_boxes(frames, boxes, counts)


def tubes_to_frame_boxes(tubes: Tubes) -> list[dict[int, list[float]]]:
    """Per-tube ``{frame: [x1, y1, x2, y2]}`` dicts, one entry per frame of the tube's span."""
    return [{start + i: box for i, box in enumerate(boxes.tolist())} for start, boxes in unpack_tubes(tubes)]
