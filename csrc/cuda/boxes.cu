// Frame-level box IoU on CUDA (pairwise and aligned, forward and backward).
#include "kernels.h"
#include "pyvrel/box.h"
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

}  // namespace pyvrel::cuda
