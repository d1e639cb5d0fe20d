// The box family on CUDA: frame-level box IoU (pairwise and aligned, forward and backward), and
// greedy frame-level NMS, torchvision style: a bitmask kernel marks which later boxes each
// box suppresses, then a one-block kernel runs the greedy pass over the mask on the device. Boxes
// are visited in the caller's `order`, so the result is identical to csrc/cpu/boxes.cpp.
#include "kernels.h"
#include "pyvrel/boxes.h"
#include "utils.cuh"

namespace pyvrel::cuda {

namespace {

// One thread per output element: a (B, N, 4), b (B, M, 4) -> out (B, N, M).
template <typename T>
__global__ void box_iou_forward_kernel(const T* a, const T* b, T* out, int64_t B, int64_t N,
                                       int64_t M, T off) {
  PYVREL_CUDA_LOOP(idx, B * N * M) {
    const int64_t bn = idx / M, m = idx % M, batch = bn / N;
    out[idx] = box_iou(a + 4 * bn, b + 4 * (batch * M + m), off);
  }
}

// One thread per (batch, n): grad_a[batch, n] = sum over m, in the CPU kernel's order.
template <typename T>
__global__ void box_iou_grad_a_kernel(const T* a, const T* b, const T* g, T* ga, int64_t B,
                                      int64_t N, int64_t M, T off) {
  PYVREL_CUDA_LOOP(bn, B * N) {
    const int64_t batch = bn / N;
    T acc[4] = {0, 0, 0, 0}, discard[4] = {0, 0, 0, 0};
    for (int64_t m = 0; m < M; ++m)
      box_iou_grad(a + 4 * bn, b + 4 * (batch * M + m), off, g[bn * M + m], acc, discard);
    for (int c = 0; c < 4; ++c) ga[4 * bn + c] = acc[c];
  }
}

// One thread per (batch, m): grad_b[batch, m] = sum over n, in the CPU kernel's order.
template <typename T>
__global__ void box_iou_grad_b_kernel(const T* a, const T* b, const T* g, T* gb, int64_t B,
                                      int64_t N, int64_t M, T off) {
  PYVREL_CUDA_LOOP(bm, B * M) {
    const int64_t batch = bm / M, m = bm % M;
    T acc[4] = {0, 0, 0, 0}, discard[4] = {0, 0, 0, 0};
    for (int64_t n = 0; n < N; ++n)
      box_iou_grad(a + 4 * (batch * N + n), b + 4 * bm, off, g[(batch * N + n) * M + m], discard,
                   acc);
    for (int c = 0; c < 4; ++c) gb[4 * bm + c] = acc[c];
  }
}

// One thread per pair: a (K, 4), b (K, 4) -> out (K,).
template <typename T>
__global__ void box_iou_aligned_forward_kernel(const T* a, const T* b, T* out, int64_t K, T off) {
  PYVREL_CUDA_LOOP(k, K) { out[k] = box_iou(a + 4 * k, b + 4 * k, off); }
}

// One thread per pair: grad (K,) -> grad_a (K, 4), grad_b (K, 4).
template <typename T>
__global__ void box_iou_aligned_backward_kernel(const T* a, const T* b, const T* g, T* ga, T* gb,
                                                int64_t K, T off) {
  PYVREL_CUDA_LOOP(k, K) {
    T acc_a[4] = {0, 0, 0, 0}, acc_b[4] = {0, 0, 0, 0};
    box_iou_grad(a + 4 * k, b + 4 * k, off, g[k], acc_a, acc_b);
    for (int c = 0; c < 4; ++c) {
      ga[4 * k + c] = acc_a[c];
      gb[4 * k + c] = acc_b[c];
    }
  }
}

template <typename T>
void box_iou_forward_impl(const void* a, const void* b, void* out, int64_t B, int64_t N, int64_t M,
                          double pixel_offset, std::uintptr_t stream) {
  const int64_t total = B * N * M;
  if (total == 0) return;
  box_iou_forward_kernel<T><<<grid_size(total), kThreads, 0, as_stream(stream)>>>(
      static_cast<const T*>(a), static_cast<const T*>(b), static_cast<T*>(out), B, N, M,
      static_cast<T>(pixel_offset));
  check_launch("box_iou_forward");
}

template <typename T>
void box_iou_backward_impl(const void* a, const void* b, const void* g, void* ga, void* gb,
                           int64_t B, int64_t N, int64_t M, double pixel_offset,
                           std::uintptr_t stream) {
  const T off = static_cast<T>(pixel_offset);
  // Each gradient is written whenever it is non-empty (zeros when the other side is empty).
  if (B * N > 0) {
    box_iou_grad_a_kernel<T><<<grid_size(B * N), kThreads, 0, as_stream(stream)>>>(
        static_cast<const T*>(a), static_cast<const T*>(b), static_cast<const T*>(g),
        static_cast<T*>(ga), B, N, M, off);
    check_launch("box_iou_backward (grad_a)");
  }
  if (B * M > 0) {
    box_iou_grad_b_kernel<T><<<grid_size(B * M), kThreads, 0, as_stream(stream)>>>(
        static_cast<const T*>(a), static_cast<const T*>(b), static_cast<const T*>(g),
        static_cast<T*>(gb), B, N, M, off);
    check_launch("box_iou_backward (grad_b)");
  }
}

template <typename T>
void box_iou_aligned_forward_impl(const void* a, const void* b, void* out, int64_t K,
                                  double pixel_offset, std::uintptr_t stream) {
  if (K == 0) return;
  box_iou_aligned_forward_kernel<T><<<grid_size(K), kThreads, 0, as_stream(stream)>>>(
      static_cast<const T*>(a), static_cast<const T*>(b), static_cast<T*>(out), K,
      static_cast<T>(pixel_offset));
  check_launch("box_iou_aligned_forward");
}

template <typename T>
void box_iou_aligned_backward_impl(const void* a, const void* b, const void* g, void* ga, void* gb,
                                   int64_t K, double pixel_offset, std::uintptr_t stream) {
  if (K == 0) return;
  box_iou_aligned_backward_kernel<T><<<grid_size(K), kThreads, 0, as_stream(stream)>>>(
      static_cast<const T*>(a), static_cast<const T*>(b), static_cast<const T*>(g),
      static_cast<T*>(ga), static_cast<T*>(gb), K, static_cast<T>(pixel_offset));
  check_launch("box_iou_aligned_backward");
}

}  // namespace

void box_iou_forward(const void* a, const void* b, void* out, int64_t B, int64_t N, int64_t M,
                     int dtype, double pixel_offset, std::uintptr_t stream) {
  PYVREL_DISPATCH_FLOAT(dtype, "box_iou", box_iou_forward_impl, a, b, out, B, N, M, pixel_offset,
                        stream);
}

void box_iou_backward(const void* a, const void* b, const void* grad_out, void* grad_a,
                      void* grad_b, int64_t B, int64_t N, int64_t M, int dtype, double pixel_offset,
                      std::uintptr_t stream) {
  PYVREL_DISPATCH_FLOAT(dtype, "box_iou_backward", box_iou_backward_impl, a, b, grad_out, grad_a,
                        grad_b, B, N, M, pixel_offset, stream);
}

void box_iou_aligned_forward(const void* a, const void* b, void* out, int64_t K, int dtype,
                             double pixel_offset, std::uintptr_t stream) {
  PYVREL_DISPATCH_FLOAT(dtype, "box_iou_aligned", box_iou_aligned_forward_impl, a, b, out, K,
                        pixel_offset, stream);
}

void box_iou_aligned_backward(const void* a, const void* b, const void* grad_out, void* grad_a,
                              void* grad_b, int64_t K, int dtype, double pixel_offset,
                              std::uintptr_t stream) {
  PYVREL_DISPATCH_FLOAT(dtype, "box_iou_aligned_backward", box_iou_aligned_backward_impl, a, b,
                        grad_out, grad_a, grad_b, K, pixel_offset, stream);
}

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
