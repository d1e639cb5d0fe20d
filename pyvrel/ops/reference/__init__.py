"""Plain PyTorch / Python references of every pyvrel op: the executable specification.

Kernels are tested against these functions; benchmarks time them as the baseline. They favour
clarity over speed (loops where the algorithm is a loop) and are never edited to match a kernel.
Conventions are those of ``pyvrel.ops``: boxes ``(x1, y1, x2, y2)``, ``pixel_offset`` added to
widths and heights, half-open frame spans ``[start, start + length)``. One module per op family
(``boxes``, ``tubes``, ``local_attention``, ``seq_nms``, ``viterbi``); every reference is also
importable from here.
"""

from pyvrel.ops.reference.boxes import batched_nms_ref, box_area_ref, box_iou_aligned_ref, box_iou_ref, nms_ref
from pyvrel.ops.reference.local_attention import local_attention_ref, local_window_ref
from pyvrel.ops.reference.seq_nms import SeqNMSRefVideo, fill_gaps_ref, seq_nms_ref
from pyvrel.ops.reference.tubes import interpolate_boxes_ref, temporal_iou_ref, tube_iou_aligned_ref, tube_iou_ref
from pyvrel.ops.reference.viterbi import soft_viterbi_ref, viterbi_link_ref

__all__ = [
    "box_area_ref",
    "box_iou_ref",
    "box_iou_aligned_ref",
    "nms_ref",
    "batched_nms_ref",
    "tube_iou_ref",
    "tube_iou_aligned_ref",
    "temporal_iou_ref",
    "interpolate_boxes_ref",
    "local_window_ref",
    "local_attention_ref",
    "fill_gaps_ref",
    "seq_nms_ref",
    "SeqNMSRefVideo",
    "viterbi_link_ref",
    "soft_viterbi_ref",
]
