// Integer codes that Python passes to the kernels: scalar types and op modes. The Python side of
// each table is pyvrel/_codes.py; both extensions export these values as `codes()` (bind_shared.inc)
// and tests/test_build_info.py checks that the two sides agree.
#pragma once

namespace pyvrel {

// Scalar type of a kernel's floating-point buffers. The CPU kernels take Float32/Float64
// (PYVREL_DISPATCH_FLOAT); CUDA local attention takes all four.
enum class DType : int { Float32 = 0, Float64 = 1, Float16 = 2, BFloat16 = 3 };

// Tube IoU: VidVRD's volumetric vIoU, or iou3dt (the mean per-frame IoU over the union span).
enum class TubeIoUMode : int { Volume = 0, Iou3dt = 1 };

// Seq-NMS: how the selected path's boxes are rescored, and what happens to suppressed boxes.
enum class SeqNmsRescore : int { Avg = 0, Max = 1, None = 2 };
enum class SeqNmsSuppress : int { Remove = 0, Zero = 1 };

}  // namespace pyvrel
