"""Frame-level box ops: pairwise/aligned IoU and (batched) non-maximum suppression."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from pyvrel import _codes, _ext
from pyvrel.ops import _checks, reference
from pyvrel.ops._backend import call, choose_backend

__all__ = ["box_iou", "box_iou_aligned", "nms", "batched_nms"]

_IOU_BACKENDS = ("cpp", "cuda", "triton", "reference")
_NMS_BACKENDS = ("cpp", "cuda", "reference")  # greedy NMS is serial: no Triton kernel (README)


# ---- pyvrel::box_iou ------------------------------------------------------------------------


@torch.library.custom_op("pyvrel::box_iou", mutates_args=())
def _box_iou(a: Tensor, b: Tensor, pixel_offset: float, backend: str) -> Tensor:
    """a (B, N, 4), b (B, M, 4) contiguous float32/float64 -> (B, N, M)."""
    B, N, M = a.shape[0], a.shape[1], b.shape[1]
    if backend == "triton":
        from pyvrel.kernels.boxes import box_iou_triton

        return box_iou_triton(a, b, pixel_offset)
    out = a.new_empty(B, N, M)
    if out.numel():
        _ext.launch(backend, "box_iou_forward", a, b, out, B, N, M, _codes.dtype_code(a), pixel_offset)
    return out


@_box_iou.register_fake
def _(a, b, pixel_offset, backend):
    return a.new_empty(a.shape[0], a.shape[1], b.shape[1])


@torch.library.custom_op("pyvrel::box_iou_backward", mutates_args=())
def _box_iou_backward(a: Tensor, b: Tensor, grad: Tensor, pixel_offset: float, backend: str) -> tuple[Tensor, Tensor]:
    if backend == "triton":
        from pyvrel.kernels.boxes import box_iou_backward_triton

        return box_iou_backward_triton(a, b, grad, pixel_offset)
    ga, gb = torch.zeros_like(a), torch.zeros_like(b)
    if grad.numel():
        _ext.launch(backend, "box_iou_backward", a, b, grad, ga, gb, a.shape[0], a.shape[1], b.shape[1],
                    _codes.dtype_code(a), pixel_offset)
    return ga, gb


@_box_iou_backward.register_fake
def _(a, b, grad, pixel_offset, backend):
    return torch.empty_like(a), torch.empty_like(b)


def _box_iou_setup(ctx, inputs, output):
    a, b, pixel_offset, backend = inputs
    ctx.save_for_backward(a, b)
    ctx.pixel_offset, ctx.backend = pixel_offset, backend


def _box_iou_grad(ctx, grad):
    a, b = ctx.saved_tensors
    ga, gb = _box_iou_backward(a, b, grad.contiguous(), ctx.pixel_offset, ctx.backend)
    return ga, gb, None, None


_box_iou.register_autograd(_box_iou_grad, setup_context=_box_iou_setup)


# ---- pyvrel::box_iou_aligned ----------------------------------------------------------------


@torch.library.custom_op("pyvrel::box_iou_aligned", mutates_args=())
def _box_iou_aligned(a: Tensor, b: Tensor, pixel_offset: float, backend: str) -> Tensor:
    """a (K, 4), b (K, 4) contiguous -> (K,)."""
    if backend == "triton":
        from pyvrel.kernels.boxes import box_iou_aligned_triton

        return box_iou_aligned_triton(a, b, pixel_offset)
    out = a.new_empty(a.shape[0])
    if out.numel():
        _ext.launch(backend, "box_iou_aligned_forward", a, b, out, a.shape[0], _codes.dtype_code(a), pixel_offset)
    return out


@_box_iou_aligned.register_fake
def _(a, b, pixel_offset, backend):
    return a.new_empty(a.shape[0])


@torch.library.custom_op("pyvrel::box_iou_aligned_backward", mutates_args=())
def _box_iou_aligned_backward(a: Tensor, b: Tensor, grad: Tensor, pixel_offset: float, backend: str) -> tuple[Tensor, Tensor]:
    if backend == "triton":
        from pyvrel.kernels.boxes import box_iou_aligned_backward_triton

        return box_iou_aligned_backward_triton(a, b, grad, pixel_offset)
    ga, gb = torch.zeros_like(a), torch.zeros_like(b)
    if grad.numel():
        _ext.launch(backend, "box_iou_aligned_backward", a, b, grad, ga, gb, a.shape[0], _codes.dtype_code(a),
                    pixel_offset)
    return ga, gb


@_box_iou_aligned_backward.register_fake
def _(a, b, grad, pixel_offset, backend):
    return torch.empty_like(a), torch.empty_like(b)


def _box_iou_aligned_grad(ctx, grad):
    a, b = ctx.saved_tensors
    ga, gb = _box_iou_aligned_backward(a, b, grad.contiguous(), ctx.pixel_offset, ctx.backend)
    return ga, gb, None, None


_box_iou_aligned.register_autograd(_box_iou_aligned_grad, setup_context=_box_iou_setup)


# ---- pyvrel::nms ----------------------------------------------------------------------------


@torch.library.custom_op("pyvrel::nms_keep", mutates_args=())
def _nms_keep(boxes: Tensor, order: Tensor, idxs: Tensor | None, iou_threshold: float, pixel_offset: float,
              backend: str) -> Tensor:
    """boxes (N, 4), order (N,) int64 visiting order, idxs (N,) int64 or None -> keep (N,) bool."""
    n = boxes.shape[0]
    keep = torch.zeros(n, dtype=torch.uint8, device=boxes.device)
    if n:
        args = [boxes, order, idxs, keep, n, _codes.dtype_code(boxes), iou_threshold, pixel_offset]
        if backend == "cuda":
            args.append(torch.empty(_ext.cuda().nms_workspace_bytes(n), dtype=torch.uint8, device=boxes.device))
        _ext.launch(backend, "nms_forward", *args, threads=False)  # the CPU kernel is serial
    return keep.bool()


@_nms_keep.register_fake
def _(boxes, order, idxs, iou_threshold, pixel_offset, backend):
    return boxes.new_empty(boxes.shape[0], dtype=torch.bool)


# ---- public API -----------------------------------------------------------------------------


def box_iou(a: Tensor, b: Tensor, pixel_offset: float = 0, *, backend: str | None = None) -> Tensor:
    """Pairwise IoU of two sets of boxes.

    Args:
        a (Tensor[..., N, 4]): boxes ``(x1, y1, x2, y2)``, floating point.
        b (Tensor[..., M, 4]): boxes of the same dtype and device; the leading (batch) dimensions
            of ``a`` and ``b`` broadcast.
        pixel_offset: 0 for continuous coordinates, 1 for the legacy inclusive-pixel convention
            (widths and heights get +1, as in the official VidVRD evaluation).
        backend: ``None`` (automatic), ``"cpp"``, ``"cuda"``, ``"triton"`` or ``"reference"``.

    Returns:
        Tensor[..., N, M] of the input dtype. Areas are not clamped; a union <= 0 (e.g. two
        zero-area boxes) gives 0, never NaN. Differentiable w.r.t. ``a`` and ``b``.
    """
    op = "box_iou"
    _checks.tensor(op, "a", a, min_ndim=2, last=4, dtypes=_checks.FLOAT_DTYPES)
    _checks.tensor(op, "b", b, min_ndim=2, last=4, dtypes=_checks.FLOAT_DTYPES)
    _checks.same_dtype(op, a=a, b=b)
    device = _checks.same_device(op, a=a, b=b)
    off = _checks.pixel_offset(op, pixel_offset)
    try:  # (equal batch shapes skip torch's Python broadcast, a large share of a tiny call)
        batch = a.shape[:-2] if a.shape[:-2] == b.shape[:-2] else torch.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except RuntimeError:
        raise ValueError(
            f"{op}: batch dimensions of a {tuple(a.shape)} and b {tuple(b.shape)} do not broadcast"
        ) from None
    chosen = choose_backend(op, device, backend, _IOU_BACKENDS)
    if chosen == "reference":
        return reference.box_iou_ref(a, b, off)
    n, m, cdt = a.shape[-2], b.shape[-2], _checks.compute_dtype(a)
    flat = math.prod(batch)
    a3 = a.expand(*batch, n, 4).reshape(flat, n, 4).to(cdt).contiguous()
    b3 = b.expand(*batch, m, 4).reshape(flat, m, 4).to(cdt).contiguous()
    return call(_box_iou, a3, b3, off, chosen).reshape(*batch, n, m).to(a.dtype)


def box_iou_aligned(a: Tensor, b: Tensor, pixel_offset: float = 0, *, backend: str | None = None) -> Tensor:
    """IoU of paired boxes ``a[..., i]`` and ``b[..., i]``.

    Args:
        a, b (Tensor[..., 4]): boxes of the same shape, dtype and device.
        pixel_offset, backend: as in :func:`box_iou`.

    Returns:
        Tensor[...] of the input dtype; differentiable.
    """
    op = "box_iou_aligned"
    _checks.tensor(op, "a", a, min_ndim=1, last=4, dtypes=_checks.FLOAT_DTYPES)
    _checks.tensor(op, "b", b, min_ndim=1, last=4, dtypes=_checks.FLOAT_DTYPES)
    if a.shape != b.shape:
        raise ValueError(f"{op}: a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    _checks.same_dtype(op, a=a, b=b)
    device = _checks.same_device(op, a=a, b=b)
    off = _checks.pixel_offset(op, pixel_offset)
    chosen = choose_backend(op, device, backend, _IOU_BACKENDS)
    if chosen == "reference":
        return reference.box_iou_aligned_ref(a, b, off)
    cdt = _checks.compute_dtype(a)
    out = call(_box_iou_aligned, a.reshape(-1, 4).to(cdt).contiguous(), b.reshape(-1, 4).to(cdt).contiguous(), off,
               chosen)
    return out.reshape(a.shape[:-1]).to(a.dtype)


def batched_nms(
    boxes: Tensor,
    scores: Tensor,
    idxs: Tensor | None,
    iou_threshold: float,
    *,
    pixel_offset: float = 0,
    backend: str | None = None,
) -> Tensor:
    """Greedy non-maximum suppression within groups (e.g. classes).

    Boxes are visited by descending score; a box is kept unless an already kept box of the same
    ``idxs`` value overlaps it with IoU > ``iou_threshold`` (strict, as torchvision).

    Args:
        boxes (Tensor[N, 4]): ``(x1, y1, x2, y2)``, finite, floating point.
        scores (Tensor[N]): finite scores.
        idxs (Tensor[N] int, optional): group of each box; ``None`` suppresses across all boxes.
        iou_threshold: in [0, 1].
        pixel_offset, backend: as in :func:`box_iou` (no Triton backend: the greedy loop is serial).

    Returns:
        Tensor[K] int64: indices of the kept boxes, by descending score.

    Ties are deterministic on every backend: the sort is stable, so among equal scores the lower
    index is visited (and kept) first.
    """
    op = "batched_nms" if idxs is not None else "nms"
    _checks.tensor(op, "boxes", boxes, ndim=2, last=4, dtypes=_checks.FLOAT_DTYPES)
    _checks.tensor(op, "scores", scores, ndim=1, dtypes=_checks.FLOAT_DTYPES)
    if scores.shape[0] != boxes.shape[0]:
        raise ValueError(f"{op}: scores must have shape ({boxes.shape[0]},) to match boxes, got {tuple(scores.shape)}")
    tensors = {"boxes": boxes, "scores": scores}
    if idxs is not None:
        _checks.tensor(op, "idxs", idxs, ndim=1, integer=True)
        if idxs.shape[0] != boxes.shape[0]:
            raise ValueError(f"{op}: idxs must have shape ({boxes.shape[0]},) to match boxes, got {tuple(idxs.shape)}")
        tensors["idxs"] = idxs
    device = _checks.same_device(op, **tensors)
    iou_threshold = _checks.number(op, "iou_threshold", iou_threshold, 0.0, 1.0)
    off = _checks.pixel_offset(op, pixel_offset)
    _checks.finite(op, "boxes", boxes)
    _checks.finite(op, "scores", scores)
    chosen = choose_backend(op, device, backend, _NMS_BACKENDS)
    if chosen == "reference":
        return reference.batched_nms_ref(boxes, scores, idxs, float(iou_threshold), off)
    order = torch.sort(scores, descending=True, stable=True).indices
    group = None if idxs is None else idxs.to(torch.int64).contiguous()
    keep = call(_nms_keep, boxes.to(_checks.compute_dtype(boxes)).contiguous(), order, group, float(iou_threshold), off,
                chosen)
    return order[keep[order]]


def nms(
    boxes: Tensor, scores: Tensor, iou_threshold: float, *, pixel_offset: float = 0, backend: str | None = None
) -> Tensor:
    """Class-agnostic greedy NMS; see :func:`batched_nms` (with ``idxs=None``)."""
    return batched_nms(boxes, scores, None, iou_threshold, pixel_offset=pixel_offset, backend=backend)
