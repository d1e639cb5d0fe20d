"""pyvrel ops: validated public functions with C++, CUDA, Triton and PyTorch-reference backends.

Every op takes ``backend=None`` (automatic: CUDA tensors -> CUDA extension, then Triton; CPU
tensors -> C++ extension; the reference, with a logged warning, when none can run) or one of
``"cpp"``, ``"cuda"``, ``"triton"``, ``"reference"``. References live in
:mod:`pyvrel.ops.reference` (one module per op family).
"""

from pyvrel.ops.boxes import batched_nms, box_iou, box_iou_aligned, nms
from pyvrel.ops.local_attention import local_attention, window_extents
from pyvrel.ops.tubes import (
    interpolate_boxes,
    pack_tubes,
    temporal_iou,
    tube_iou,
    tube_iou_aligned,
    tubes_from_frame_boxes,
    tubes_to_frame_boxes,
    unpack_tubes,
)
from pyvrel.ops.types import Tubes
from pyvrel.ops.seq_nms import GapFilled, SeqNMSResult, fill_gaps, seq_nms
from pyvrel.ops.viterbi import SoftViterbiResult, ViterbiResult, path_tubes, soft_viterbi, viterbi_link

__all__ = [
    "GapFilled",
    "SeqNMSResult",
    "fill_gaps",
    "SoftViterbiResult",
    "ViterbiResult",
    "path_tubes",
    "seq_nms",
    "soft_viterbi",
    "viterbi_link",
    "Tubes",
    "batched_nms",
    "box_iou",
    "box_iou_aligned",
    "interpolate_boxes",
    "local_attention",
    "nms",
    "pack_tubes",
    "temporal_iou",
    "tube_iou",
    "tube_iou_aligned",
    "tubes_from_frame_boxes",
    "tubes_to_frame_boxes",
    "unpack_tubes",
    "window_extents",
]
