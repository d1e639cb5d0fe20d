// The box family on the CPU: frame-level box IoU (pairwise and aligned, forward and backward)
// and greedy frame-level NMS. The visiting order comes from the caller (a stable
// descending sort by score), so every backend breaks ties the same way.
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels.h"
#include "pyvrel/boxes.h"

namespace pyvrel::cpu {

template <typename scalar_t>
void box_iou_forward_impl(const void* a_, const void* b_, void* out_, int64_t B, int64_t N,
                          int64_t M, double pixel_offset, int num_threads) {
  const auto* a = static_cast<const scalar_t*>(a_);
  const auto* b = static_cast<const scalar_t*>(b_);
  auto* out = static_cast<scalar_t*>(out_);
  const auto off = static_cast<scalar_t>(pixel_offset);
#pragma omp parallel for num_threads(num_threads) schedule(static)
  for (int64_t bn = 0; bn < B * N; ++bn) {
    const int64_t batch = bn / N;
    const scalar_t* box_a = a + 4 * bn;
    const scalar_t* bs = b + 4 * batch * M;
    scalar_t* row = out + bn * M;
    for (int64_t m = 0; m < M; ++m) row[m] = box_iou(box_a, bs + 4 * m, off);
  }
}

void box_iou_forward(const void* a_, const void* b_, void* out_, int64_t B, int64_t N, int64_t M,
                     int dtype, double pixel_offset, int num_threads) {
  PYVREL_DISPATCH_FLOAT(dtype, "box_iou", box_iou_forward_impl, a_, b_, out_, B, N, M, pixel_offset,
                        num_threads);
}

template <typename scalar_t>
void box_iou_backward_impl(const void* a_, const void* b_, const void* g_, void* ga_, void* gb_,
                           int64_t B, int64_t N, int64_t M, double pixel_offset, int num_threads) {
  const auto* a = static_cast<const scalar_t*>(a_);
  const auto* b = static_cast<const scalar_t*>(b_);
  const auto* g = static_cast<const scalar_t*>(g_);
  auto* ga = static_cast<scalar_t*>(ga_);
  auto* gb = static_cast<scalar_t*>(gb_);
  const auto off = static_cast<scalar_t>(pixel_offset);
  // grad_a: each (batch, n) row owns its output; grad_b: each (batch, m) column does.
#pragma omp parallel num_threads(num_threads)
  {
    scalar_t scratch[4];
#pragma omp for schedule(static)
    for (int64_t bn = 0; bn < B * N; ++bn) {
      const int64_t batch = bn / N;
      scalar_t* out = ga + 4 * bn;
      out[0] = out[1] = out[2] = out[3] = 0;
      for (int64_t m = 0; m < M; ++m)
        box_iou_grad(a + 4 * bn, b + 4 * (batch * M + m), off, g[bn * M + m], out, scratch);
    }
#pragma omp for schedule(static)
    for (int64_t bm = 0; bm < B * M; ++bm) {
      const int64_t batch = bm / M, m = bm % M;
      scalar_t* out = gb + 4 * bm;
      out[0] = out[1] = out[2] = out[3] = 0;
      for (int64_t n = 0; n < N; ++n)
        box_iou_grad(a + 4 * (batch * N + n), b + 4 * bm, off, g[(batch * N + n) * M + m], scratch,
                     out);
    }
  }
}

void box_iou_backward(const void* a_, const void* b_, const void* g_, void* ga_, void* gb_,
                      int64_t B, int64_t N, int64_t M, int dtype, double pixel_offset,
                      int num_threads) {
  PYVREL_DISPATCH_FLOAT(dtype, "box_iou_backward", box_iou_backward_impl, a_, b_, g_, ga_, gb_, B,
                        N, M, pixel_offset, num_threads);
}

template <typename scalar_t>
void box_iou_aligned_forward_impl(const void* a_, const void* b_, void* out_, int64_t K,
                                  double pixel_offset, int num_threads) {
  const auto* a = static_cast<const scalar_t*>(a_);
  const auto* b = static_cast<const scalar_t*>(b_);
  auto* out = static_cast<scalar_t*>(out_);
  const auto off = static_cast<scalar_t>(pixel_offset);
#pragma omp parallel for num_threads(num_threads) schedule(static)
  for (int64_t k = 0; k < K; ++k) out[k] = box_iou(a + 4 * k, b + 4 * k, off);
}

void box_iou_aligned_forward(const void* a_, const void* b_, void* out_, int64_t K, int dtype,
                             double pixel_offset, int num_threads) {
  PYVREL_DISPATCH_FLOAT(dtype, "box_iou_aligned", box_iou_aligned_forward_impl, a_, b_, out_, K,
                        pixel_offset, num_threads);
}

template <typename scalar_t>
void box_iou_aligned_backward_impl(const void* a_, const void* b_, const void* g_, void* ga_,
                                   void* gb_, int64_t K, double pixel_offset, int num_threads) {
  const auto* a = static_cast<const scalar_t*>(a_);
  const auto* b = static_cast<const scalar_t*>(b_);
  const auto* g = static_cast<const scalar_t*>(g_);
  auto* ga = static_cast<scalar_t*>(ga_);
  auto* gb = static_cast<scalar_t*>(gb_);
  const auto off = static_cast<scalar_t>(pixel_offset);
#pragma omp parallel for num_threads(num_threads) schedule(static)
  for (int64_t k = 0; k < K; ++k) {
    for (int c = 0; c < 4; ++c) ga[4 * k + c] = gb[4 * k + c] = 0;
    box_iou_grad(a + 4 * k, b + 4 * k, off, g[k], ga + 4 * k, gb + 4 * k);
  }
}

void box_iou_aligned_backward(const void* a_, const void* b_, const void* g_, void* ga_, void* gb_,
                              int64_t K, int dtype, double pixel_offset, int num_threads) {
  PYVREL_DISPATCH_FLOAT(dtype, "box_iou_aligned_backward", box_iou_aligned_backward_impl, a_, b_,
                        g_, ga_, gb_, K, pixel_offset, num_threads);
}

template <typename scalar_t>
void nms_forward_impl(const void* boxes_, const int64_t* order, const int64_t* idxs, uint8_t* keep,
                      int64_t N, double iou_threshold, double pixel_offset) {
  const auto* boxes = static_cast<const scalar_t*>(boxes_);
  const auto off = static_cast<scalar_t>(pixel_offset);
  const auto thr = static_cast<scalar_t>(iou_threshold);
  std::vector<uint8_t> suppressed(N, 0);
  for (int64_t n = 0; n < N; ++n) keep[n] = 0;
  for (int64_t i = 0; i < N; ++i) {
    const int64_t bi = order[i];
    if (suppressed[bi]) continue;
    keep[bi] = 1;
    for (int64_t j = i + 1; j < N; ++j) {
      const int64_t bj = order[j];
      if (suppressed[bj] || (idxs != nullptr && idxs[bi] != idxs[bj])) continue;
      if (box_iou(boxes + 4 * bi, boxes + 4 * bj, off) > thr) suppressed[bj] = 1;
    }
  }
}

void nms_forward(const void* boxes_, const int64_t* order, const int64_t* idxs, uint8_t* keep,
                 int64_t N, int dtype, double iou_threshold, double pixel_offset) {
  PYVREL_DISPATCH_FLOAT(dtype, "nms", nms_forward_impl, boxes_, order, idxs, keep, N, iou_threshold,
                        pixel_offset);
}

}  // namespace pyvrel::cpu
