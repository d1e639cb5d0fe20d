"""Validation of per-frame box inputs ``(T, N, 4)`` or ``(B, T, N, 4)`` with per-box values,
shared by :mod:`pyvrel.ops.seq_nms` and :mod:`pyvrel.ops.viterbi`."""

from __future__ import annotations

import torch
from torch import Tensor

from pyvrel.ops import _checks


def finite_where_valid(op: str, boxes_name: str, boxes: Tensor, values_name: str, values: Tensor, mask: Tensor,
                        everything_valid: bool) -> None:
    """No NaN/inf in boxes (B, T, N, 4) or values (B, T, N) where ``mask``; padding is never read.

    One fused test first (a sum of finite values is finite unless it overflows); the precise,
    per-argument tests, without copying the valid entries, only when it fails or entries are
    masked. A value check (see :func:`pyvrel.ops._checks.check_values`)."""
    if values.numel() == 0 or not _checks.check_values(values):
        return
    if everything_valid and bool(torch.isfinite(boxes.sum(-1) + values).all()):
        return
    if bool((~torch.isfinite(boxes).all(-1) & mask).any()):
        raise ValueError(f"{op}: {boxes_name} contains NaN or infinite values")
    if bool((~torch.isfinite(values) & mask).any()):
        raise ValueError(f"{op}: {values_name} contains NaN or infinite values")


def per_box_inputs(op: str, boxes: Tensor, values_name: str, values: Tensor, counts: Tensor | None,
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
        _checks.int_range(op, "counts", counts, 0, N, f"in [0, N={N}]")
        return torch.arange(N, device=counts.device) < counts.reshape(B, T)[..., None]
    if valid is not None:
        _checks.tensor(op, "valid", valid, dtypes=(torch.bool,))
        if tuple(valid.shape) != shape:
            raise ValueError(f"{op}: valid must have shape {shape}, got {tuple(valid.shape)}")
        tensors["valid"] = valid
        return valid.reshape(B, T, N)
    return None
