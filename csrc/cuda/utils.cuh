// Launch helpers shared by pyvrel's CUDA kernels. The dtype dispatch is PYVREL_DISPATCH_FLOAT
// from pyvrel/common.h (included here).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "pyvrel/common.h"

namespace pyvrel::cuda {

constexpr int kThreads = 256;          // threads per block of the element-wise kernels
constexpr int64_t kMaxBlocks = 65536;  // grid-stride loops cover the rest

// Blocks for `n` elements at `threads` per block (at least 1, at most kMaxBlocks).
inline unsigned int grid_size(int64_t n, int threads = kThreads) {
  return static_cast<unsigned int>(max_(int64_t(1), min_((n + threads - 1) / threads, kMaxBlocks)));
}

// Throws std::runtime_error naming the kernel if its launch failed.
inline void check_launch(const char* kernel) {
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("pyvrel CUDA kernel ") + kernel + ": " +
                             cudaGetErrorString(err));
}

inline cudaStream_t as_stream(std::uintptr_t stream) {
  return reinterpret_cast<cudaStream_t>(stream);
}

// Grid-stride loop over [0, n) with a 64-bit index.
#define PYVREL_CUDA_LOOP(i, n)                                                           \
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)

}  // namespace pyvrel::cuda
