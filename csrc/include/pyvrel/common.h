// Shared definitions for pyvrel's torch-free C++/CUDA core.
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define PYVREL_HD __host__ __device__ __forceinline__
#else
#define PYVREL_HD inline
#endif

namespace pyvrel {

// Scalar type codes passed from Python (pyvrel/_ext.py keeps the same table).
enum class DType : int { Float32 = 0, Float64 = 1 };

// Modes of tube IoU (pyvrel/ops/tubes.py keeps the same table).
enum class TubeIoUMode : int { Volume = 0, Iou3dt = 1 };

template <typename T>
PYVREL_HD T min_(T a, T b) {
  return a < b ? a : b;
}
template <typename T>
PYVREL_HD T max_(T a, T b) {
  return a < b ? b : a;
}

// Accumulator type for sums over frames: always double, so float32 inputs lose nothing over
// long tubes and float64 inputs reproduce the official (Python float) evaluation bit for bit.
using acc_t = double;

}  // namespace pyvrel

// Calls FN<float>(args...) or FN<double>(args...) by the DType code `dtype`.
#define PYVREL_DISPATCH_FLOAT(dtype, NAME, FN, ...)                                \
  switch (static_cast<::pyvrel::DType>(dtype)) {                                   \
    case ::pyvrel::DType::Float32:                                                 \
      return FN<float>(__VA_ARGS__);                                               \
    case ::pyvrel::DType::Float64:                                                 \
      return FN<double>(__VA_ARGS__);                                              \
    default:                                                                       \
      throw std::invalid_argument(std::string(NAME) + ": unsupported dtype code"); \
  }
