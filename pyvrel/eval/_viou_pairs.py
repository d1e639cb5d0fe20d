"""The evaluation's one call into the C++ extension: ``min(vIoU(subject), vIoU(object))`` of many
relation pairs, read straight from two ``RelationTable``s' columns (``pyvrel._C.relation_viou_pairs``,
csrc/cpu/relation_viou.cpp). The arithmetic is the volumetric vIoU of
:func:`pyvrel.ops.tube_iou_aligned` in float64, which with ``pixel_offset=1`` is the official one
bit for bit. torch is not imported.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def available() -> bool:
    """Whether ``pyvrel._C`` is built (else the caller scores pairs another way)."""
    from pyvrel import _ext

    return _ext.has_cpu_ext()


def relation_viou_pairs(a: Sequence[np.ndarray], ia: np.ndarray, b: Sequence[np.ndarray], ib: np.ndarray,
                        pixel_offset: float, out: np.ndarray) -> None:
    """Writes the vIoU of relation pairs ``(a[ia[k]], b[ib[k]])`` to ``out[k]`` (float64 ``(P,)``).

    ``a`` and ``b`` are a table's columns ``(boxes (R, 4) float64, first subject box row (n,),
    first object box row (n,), first frame (n,), frames (n,))``, int64 where not said, contiguous;
    ``ia``/``ib`` (P,) are relation indices into them.
    """
    from pyvrel import _ext

    ia, ib = (np.ascontiguousarray(x, dtype=np.int64) for x in (ia, ib))
    if not (out.dtype == np.float64 and out.shape == ia.shape == ib.shape and out.flags.c_contiguous):
        raise ValueError(f"relation_viou_pairs: out must be a contiguous float64 array of shape {ia.shape}")
    _ext.cpu().relation_viou_pairs(*(x.ctypes.data for x in a), ia.ctypes.data, *(x.ctypes.data for x in b),
                                   ib.ctypes.data, len(ia), float(pixel_offset), out.ctypes.data,
                                   _ext.num_threads())
