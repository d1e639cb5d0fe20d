// Greedy frame-level NMS on CUDA, torchvision style: a bitmask kernel marks which later boxes each
// box suppresses, then a one-block kernel runs the greedy pass over the mask on the device. Boxes
// are visited in the caller's `order`, so the result is identical to csrc/cpu/nms.cpp.
#include "kernels.h"
#include "pyvrel/box.h"
#include "utils.cuh"

namespace pyvrel::cuda {

namespace {

constexpr int kBits = 64;  // boxes per mask word (and threads per mask block)

PYVREL_HD int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Grid (col_blocks, col_blocks) of kBits threads. Thread t of block (cb, rb) is sorted position
// i = rb * 64 + t; bit k of mask[i, cb] (mask (N, col_blocks)) is set when the box at sorted
// position j = cb * 64 + k > i has the same idx and IoU > thr with it. Words with cb < rb are
// left unwritten (the reduction never reads them).
template <typename T>
__global__ void nms_mask_kernel(const T* boxes, const int64_t* order, const int64_t* idxs,
                                int64_t N, T thr, T off, uint64_t* mask) {
  const int64_t rb = blockIdx.y, cb = blockIdx.x, col_blocks = gridDim.x;
  const int t = static_cast<int>(threadIdx.x);
  if (cb < rb) return;
  const int64_t col0 = cb * kBits;
  const int cols = static_cast<int>(min_(N - col0, int64_t(kBits)));
  __shared__ T col_box[kBits][4];
  __shared__ int64_t col_idx[kBits];
  if (t < cols) {
    const int64_t bj = order[col0 + t];
    for (int c = 0; c < 4; ++c) col_box[t][c] = boxes[4 * bj + c];
    col_idx[t] = idxs != nullptr ? idxs[bj] : 0;
  }
  __syncthreads();
  const int64_t i = rb * kBits + t;
  if (i >= N) return;
  const int64_t bi = order[i];
  const T* box = boxes + 4 * bi;
  const int64_t idx = idxs != nullptr ? idxs[bi] : 0;
  uint64_t bits = 0;
  for (int k = cb == rb ? t + 1 : 0; k < cols; ++k)
    if (col_idx[k] == idx && box_iou(box, col_box[k], off) > thr) bits |= uint64_t(1) << k;
  mask[i * col_blocks + cb] = bits;
}

// One block: the serial greedy pass over sorted positions. removed (col_blocks words, shared)
// holds the suppressed positions; rows of kept boxes are OR-ed in by all threads in parallel.
// The word of the current 64 positions is tracked in a register by every thread, so the block
// synchronises once per 64 positions. Writes keep (N,) uint8 by original index.
__global__ void nms_reduce_kernel(const uint64_t* mask, const int64_t* order, int64_t N,
                                  uint8_t* keep) {
  extern __shared__ uint64_t removed[];
  const int64_t col_blocks = ceil_div(N, kBits);
  for (int64_t w = threadIdx.x; w < col_blocks; w += blockDim.x) removed[w] = 0;
  for (int64_t n = threadIdx.x; n < N; n += blockDim.x) keep[n] = 0;
  for (int64_t nb = 0; nb < col_blocks; ++nb) {
    __syncthreads();  // removed[nb] is final: only rows before position nb * 64 write it
    uint64_t cur = removed[nb];
    const int cols = static_cast<int>(min_(N - nb * kBits, int64_t(kBits)));
    for (int k = 0; k < cols; ++k) {
      if ((cur >> k) & 1) continue;
      const int64_t i = nb * kBits + k;
      const uint64_t* row = mask + i * col_blocks;
      if (threadIdx.x == 0) keep[order[i]] = 1;
      cur |= row[nb];
      for (int64_t w = nb + 1 + threadIdx.x; w < col_blocks; w += blockDim.x) removed[w] |= row[w];
    }
  }
}

template <typename T>
void nms_forward_impl(const void* boxes, const int64_t* order, const int64_t* idxs, uint8_t* keep,
                      int64_t N, double iou_threshold, double pixel_offset, void* workspace,
                      std::uintptr_t stream) {
  if (N == 0) return;
  if (N > kNmsMaxBoxes)
    throw std::invalid_argument("nms: at most " + std::to_string(kNmsMaxBoxes) +
                                " boxes on CUDA, got " + std::to_string(N));
  const int64_t col_blocks = ceil_div(N, kBits);
  auto* mask = static_cast<uint64_t*>(workspace);
  const dim3 grid(static_cast<unsigned int>(col_blocks), static_cast<unsigned int>(col_blocks));
  nms_mask_kernel<T><<<grid, kBits, 0, as_stream(stream)>>>(static_cast<const T*>(boxes), order,
                                                            idxs, N, static_cast<T>(iou_threshold),
                                                            static_cast<T>(pixel_offset), mask);
  check_launch("nms_forward (mask)");
  nms_reduce_kernel<<<1, 1024, col_blocks * sizeof(uint64_t), as_stream(stream)>>>(mask, order, N,
                                                                                   keep);
  check_launch("nms_forward (reduce)");
}

}  // namespace

int64_t nms_workspace_bytes(int64_t N) {
  return N * ceil_div(N, kBits) * static_cast<int64_t>(sizeof(uint64_t));
}

void nms_forward(const void* boxes, const int64_t* order, const int64_t* idxs, uint8_t* keep,
                 int64_t N, int dtype, double iou_threshold, double pixel_offset, void* workspace,
                 std::uintptr_t stream) {
  PYVREL_DISPATCH_FLOAT(dtype, "nms", nms_forward_impl, boxes, order, idxs, keep, N, iou_threshold,
                        pixel_offset, workspace, stream);
}

}  // namespace pyvrel::cuda
