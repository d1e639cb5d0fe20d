"""Integer codes that pyvrel passes to its C++/CUDA kernels: scalar types and op modes.

The C++ side of each table is ``csrc/include/pyvrel/codes.h``; both extensions export its values
(``pyvrel._C.codes()``, ``pyvrel._cuda.codes()``) and ``tests/test_build_info.py`` checks that they
equal these.
"""

from __future__ import annotations

import torch

# enum class DType. The CPU kernels take float32/float64; CUDA local attention all four.
DTYPE: dict[torch.dtype, int] = {torch.float32: 0, torch.float64: 1, torch.float16: 2, torch.bfloat16: 3}
# enum class TubeIoUMode: VidVRD's volumetric vIoU, or iou3dt (mean per-frame IoU).
TUBE_IOU_MODE: dict[str, int] = {"volume": 0, "iou3dt": 1}
# enum class SeqNmsRescore / SeqNmsSuppress.
SEQ_NMS_RESCORE: dict[str, int] = {"avg": 0, "max": 1, "none": 2}
SEQ_NMS_SUPPRESS: dict[str, int] = {"remove": 0, "zero": 1}

# The tables by the name under which the extensions export them.
TABLES: dict[str, dict] = {
    "DType": {str(k).replace("torch.", ""): v for k, v in DTYPE.items()},
    "TubeIoUMode": TUBE_IOU_MODE,
    "SeqNmsRescore": SEQ_NMS_RESCORE,
    "SeqNmsSuppress": SEQ_NMS_SUPPRESS,
}


def dtype_code(t: torch.Tensor) -> int:
    """The ``DType`` code of ``t``'s dtype."""
    return DTYPE[t.dtype]
