// Shared definitions for pyvrel's torch-free C++/CUDA core.
#pragma once
#include <cstdint>

#include "pyvrel/codes.h"

#if defined(__CUDACC__)
#define PYVREL_HD __host__ __device__ __forceinline__
#else
#define PYVREL_HD inline
#endif

// CPU hot loops marked PYVREL_CPU_CLONES are compiled twice, for AVX2 and for the baseline
// x86-64 ISA, and the loader picks one for the running CPU (GCC/Clang function multiversioning
// on x86-64 Linux). AVX2 without FMA: results are bitwise those of the baseline build.
#if !defined(__CUDACC__) && defined(__x86_64__) && defined(__linux__) && \
    (defined(__GNUC__) || defined(__clang__))
#define PYVREL_CPU_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define PYVREL_CPU_CLONES
#endif

namespace pyvrel {

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
