// Tube (trajectory) IoU on the CPU: pairwise and aligned, volumetric vIoU and iou3dt.
#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels.h"
#include "pyvrel/tube.h"

namespace pyvrel::cpu {

namespace {

template <typename T>
std::vector<acc_t> volumes(const T* boxes, const int64_t* len, int64_t N, int64_t Tn, T off,
                           int num_threads) {
  std::vector<acc_t> v(N);
#pragma omp parallel for num_threads(num_threads) schedule(static)
  for (int64_t n = 0; n < N; ++n) v[n] = tube_volume(boxes + 4 * n * Tn, len[n], off);
  return v;
}

}  // namespace

template <typename scalar_t>
void tube_iou_forward_impl(const void* a_, const int64_t* a_start, const int64_t* a_len, int64_t N,
                           int64_t Ta, const void* b_, const int64_t* b_start, const int64_t* b_len,
                           int64_t M, int64_t Tb, void* out_, int mode, double pixel_offset,
                           int num_threads) {
  const auto* a = static_cast<const scalar_t*>(a_);
  const auto* b = static_cast<const scalar_t*>(b_);
  auto* out = static_cast<scalar_t*>(out_);
  const auto off = static_cast<scalar_t>(pixel_offset);
  const bool volume = static_cast<TubeIoUMode>(mode) == TubeIoUMode::Volume;
  std::vector<acc_t> va, vb;
  if (volume) {
    va = volumes(a, a_len, N, Ta, off, num_threads);
    vb = volumes(b, b_len, M, Tb, off, num_threads);
  }
  // Temporal pruning: visit b tubes sorted by start, so each a tube scans only those that
  // start before it ends and skips those that end before it starts.
  std::vector<int64_t> by_start(M);
  std::iota(by_start.begin(), by_start.end(), 0);
  std::stable_sort(by_start.begin(), by_start.end(),
                   [&](int64_t x, int64_t y) { return b_start[x] < b_start[y]; });
  std::vector<int64_t> sorted_start(M);
  for (int64_t k = 0; k < M; ++k) sorted_start[k] = b_start[by_start[k]];
#pragma omp parallel for num_threads(num_threads) schedule(dynamic, 8)
  for (int64_t n = 0; n < N; ++n) {
    scalar_t* row = out + n * M;
    std::fill(row, row + M, scalar_t(0));
    const int64_t sa = a_start[n], la = a_len[n];
    if (la <= 0) continue;
    const scalar_t* ta = a + 4 * n * Ta;
    const int64_t stop =
        std::lower_bound(sorted_start.begin(), sorted_start.end(), sa + la) - sorted_start.begin();
    for (int64_t k = 0; k < stop; ++k) {
      const int64_t m = by_start[k];
      const int64_t sb = b_start[m], lb = b_len[m];
      if (sb + lb <= sa || lb <= 0) continue;
      const scalar_t* tb = b + 4 * m * Tb;
      row[m] =
          static_cast<scalar_t>(volume ? tube_volume_iou(ta, sa, la, va[n], tb, sb, lb, vb[m], off)
                                       : tube_iou3dt(ta, sa, la, tb, sb, lb, off));
    }
  }
}

void tube_iou_forward(const void* a_, const int64_t* a_start, const int64_t* a_len, int64_t N,
                      int64_t Ta, const void* b_, const int64_t* b_start, const int64_t* b_len,
                      int64_t M, int64_t Tb, void* out_, int dtype, int mode, double pixel_offset,
                      int num_threads) {
  PYVREL_DISPATCH_FLOAT(dtype, "tube_iou", tube_iou_forward_impl, a_, a_start, a_len, N, Ta, b_,
                        b_start, b_len, M, Tb, out_, mode, pixel_offset, num_threads);
}

template <typename scalar_t>
void tube_iou_aligned_forward_impl(const void* a_, const int64_t* a_start, const int64_t* a_len,
                                   int64_t Ta, const void* b_, const int64_t* b_start,
                                   const int64_t* b_len, int64_t Tb, int64_t N, void* out_,
                                   int mode, double pixel_offset, int num_threads) {
  const auto* a = static_cast<const scalar_t*>(a_);
  const auto* b = static_cast<const scalar_t*>(b_);
  auto* out = static_cast<scalar_t*>(out_);
  const auto off = static_cast<scalar_t>(pixel_offset);
  const bool volume = static_cast<TubeIoUMode>(mode) == TubeIoUMode::Volume;
#pragma omp parallel for num_threads(num_threads) schedule(dynamic, 8)
  for (int64_t n = 0; n < N; ++n) {
    const scalar_t* ta = a + 4 * n * Ta;
    const scalar_t* tb = b + 4 * n * Tb;
    const int64_t sa = a_start[n], la = a_len[n], sb = b_start[n], lb = b_len[n];
    acc_t r = 0;
    if (temporal_overlap(sa, la, sb, lb).empty()) {
      r = 0;
    } else if (volume) {
      r = tube_volume_iou(ta, sa, la, tube_volume(ta, la, off), tb, sb, lb,
                          tube_volume(tb, lb, off), off);
    } else {
      r = tube_iou3dt(ta, sa, la, tb, sb, lb, off);
    }
    out[n] = static_cast<scalar_t>(r);
  }
}

void tube_iou_aligned_forward(const void* a_, const int64_t* a_start, const int64_t* a_len,
                              int64_t Ta, const void* b_, const int64_t* b_start,
                              const int64_t* b_len, int64_t Tb, int64_t N, void* out_, int dtype,
                              int mode, double pixel_offset, int num_threads) {
  PYVREL_DISPATCH_FLOAT(dtype, "tube_iou_aligned", tube_iou_aligned_forward_impl, a_, a_start,
                        a_len, Ta, b_, b_start, b_len, Tb, N, out_, mode, pixel_offset,
                        num_threads);
}

template <typename scalar_t>
void tube_iou_aligned_backward_impl(const void* a_, const int64_t* a_start, const int64_t* a_len,
                                    int64_t Ta, const void* b_, const int64_t* b_start,
                                    const int64_t* b_len, int64_t Tb, int64_t N, const void* g_,
                                    void* ga_, void* gb_, int mode, double pixel_offset,
                                    int num_threads) {
  const auto* a = static_cast<const scalar_t*>(a_);
  const auto* b = static_cast<const scalar_t*>(b_);
  const auto* g = static_cast<const scalar_t*>(g_);
  auto* ga = static_cast<scalar_t*>(ga_);
  auto* gb = static_cast<scalar_t*>(gb_);
  const auto off = static_cast<scalar_t>(pixel_offset);
  const bool volume = static_cast<TubeIoUMode>(mode) == TubeIoUMode::Volume;
#pragma omp parallel for num_threads(num_threads) schedule(dynamic, 8)
  for (int64_t n = 0; n < N; ++n) {
    scalar_t* gta = ga + 4 * n * Ta;
    scalar_t* gtb = gb + 4 * n * Tb;
    std::fill(gta, gta + 4 * Ta, scalar_t(0));
    std::fill(gtb, gtb + 4 * Tb, scalar_t(0));
    const scalar_t* ta = a + 4 * n * Ta;
    const scalar_t* tb = b + 4 * n * Tb;
    if (volume)
      tube_volume_iou_grad(ta, a_start[n], a_len[n], tb, b_start[n], b_len[n], off, g[n], gta, gtb);
    else
      tube_iou3dt_grad(ta, a_start[n], a_len[n], tb, b_start[n], b_len[n], off, g[n], gta, gtb);
  }
}

void tube_iou_aligned_backward(const void* a_, const int64_t* a_start, const int64_t* a_len,
                               int64_t Ta, const void* b_, const int64_t* b_start,
                               const int64_t* b_len, int64_t Tb, int64_t N, const void* g_,
                               void* ga_, void* gb_, int dtype, int mode, double pixel_offset,
                               int num_threads) {
  PYVREL_DISPATCH_FLOAT(dtype, "tube_iou_aligned_backward", tube_iou_aligned_backward_impl, a_,
                        a_start, a_len, Ta, b_, b_start, b_len, Tb, N, g_, ga_, gb_, mode,
                        pixel_offset, num_threads);
}

}  // namespace pyvrel::cpu
