// The tube family on the CPU: tube (trajectory) IoU, pairwise and aligned, volumetric vIoU and
// iou3dt; linear interpolation of sampled box tracks onto every frame (vRGV appendix eq. 14).
#include <algorithm>
#include <climits>
#include <cstdint>
#include <limits>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels.h"
#include "parallel.h"
#include "pyvrel/tubes.h"

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

// The pairwise kernel works on blocks of kLanes b tubes (consecutive by start) held in
// structure-of-arrays form over the block's frames, so that one a box is compared with all
// kLanes boxes of a frame in vectorised code.
constexpr int kLanes = 16;

// Indices 0..n-1 sorted by start (stable).
std::vector<int64_t> order_by_start(const int64_t* start, int64_t n) {
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t x, int64_t y) { return start[x] < start[y]; });
  return order;
}

// A box whose intersection with any box is exactly 0 (and whose IoU is 0): it stands for the
// frames where a lane's tube does not exist. Adding those zeros to a float sum changes no bit,
// so each pair's sum equals the per-pair loop of tube_volume_iou / tube_iou3dt exactly.
template <typename T>
constexpr T kFar = std::numeric_limits<T>::infinity();

// Adds the sums over frames [lo, hi) of row tube a (first frame sa) against the kLanes lanes of a
// block whose structure-of-arrays boxes soa[((t - t0) * 4 + coord) * kLanes + lane] start at
// frame t0.
template <bool IOU, typename T>
PYVREL_CPU_CLONES void lane_sums(const T* ta, int64_t sa, int64_t lo, int64_t hi, const T* soa, int64_t t0, T off,
               acc_t* sums) {
  for (int64_t t = lo; t < hi; ++t) {
    const T* x = ta + 4 * (t - sa);
    const T ax1 = x[0], ay1 = x[1], ax2 = x[2], ay2 = x[3];
    const T* y = soa + (t - t0) * 4 * kLanes;
#pragma omp simd
    for (int j = 0; j < kLanes; ++j) {
      const T bx1 = y[j], by1 = y[kLanes + j], bx2 = y[2 * kLanes + j], by2 = y[3 * kLanes + j];
      sums[j] += static_cast<acc_t>(IOU ? box_iou(ax1, ay1, ax2, ay2, bx1, by1, bx2, by2, off)
                                        : box_inter(ax1, ay1, ax2, ay2, bx1, by1, bx2, by2, off));
    }
  }
}

// Frames covered by the non-empty lanes of a block: disjoint segments [t0, t1) in increasing
// order, stored from frame `at` of the block's structure-of-arrays buffer. The buffer holds the
// covered frames only, so it is sized by the tubes' lengths, never by the gaps between starts.
struct Segment {
  int64_t t0, t1, at;
};

// Segments of the lanes[0 .. width) into segs (at most kLanes); returns their number and the
// covered frame count in *covered.
inline int block_segments(const int64_t* lanes, int width, const int64_t* b_start,
                          const int64_t* b_len, Segment* segs, int64_t* covered) {
  Segment spans[kLanes];
  int n = 0, count = 0;
  for (int j = 0; j < width; ++j)
    if (b_len[lanes[j]] > 0) spans[n++] = {b_start[lanes[j]], b_start[lanes[j]] + b_len[lanes[j]], 0};
  std::sort(spans, spans + n, [](const Segment& x, const Segment& y) { return x.t0 < y.t0; });
  *covered = 0;
  for (int i = 0; i < n; ++i) {
    if (count && spans[i].t0 <= segs[count - 1].t1) {
      const int64_t t1 = std::max(segs[count - 1].t1, spans[i].t1);
      *covered += t1 - segs[count - 1].t1;
      segs[count - 1].t1 = t1;
    } else {
      segs[count++] = {spans[i].t0, spans[i].t1, *covered};
      *covered += spans[i].t1 - spans[i].t0;
    }
  }
  return count;
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
  // Temporal pruning: both batches are visited sorted by start. Each block of kLanes b tubes
  // covers frames [t0, t1); only a tubes that overlap that range are compared with it, over
  // their shared frames, and only pairs whose spans overlap are written (the others keep 0).
  const std::vector<int64_t> a_order = order_by_start(a_start, N);
  const std::vector<int64_t> b_order = order_by_start(b_start, M);
  std::vector<int64_t> a_sorted_start(N);
  for (int64_t r = 0; r < N; ++r) a_sorted_start[r] = a_start[a_order[r]];
  const int64_t blocks = (M + kLanes - 1) / kLanes;
  // Per-thread buffers sized by the largest block's covered frames, allocated before the region.
  int64_t most = 0;
  for (int64_t c0 = 0; c0 < M; c0 += kLanes) {
    Segment segs[kLanes];
    int64_t covered = 0;
    block_segments(b_order.data() + c0, static_cast<int>(std::min<int64_t>(kLanes, M - c0)),
                   b_start, b_len, segs, &covered);
    most = std::max(most, covered);
  }
  ThreadBuffers<scalar_t> soa_buffers(num_threads, static_cast<std::size_t>(most * 4 * kLanes));
#pragma omp parallel num_threads(num_threads)
  {
#pragma omp for schedule(static)
    for (int64_t n = 0; n < N; ++n) std::fill(out + n * M, out + (n + 1) * M, scalar_t(0));
    scalar_t* soa = soa_buffers.mine();
#pragma omp for schedule(dynamic, 1)
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const int64_t c0 = blk * kLanes;
      const int64_t* lanes = b_order.data() + c0;
      const int width = static_cast<int>(std::min<int64_t>(kLanes, M - c0));
      Segment segs[kLanes];
      int64_t covered = 0;
      const int n_segs = block_segments(lanes, width, b_start, b_len, segs, &covered);
      if (n_segs == 0) continue;  // only empty tubes
      const int64_t t0 = segs[0].t0, t1 = segs[n_segs - 1].t1;
      for (int sg = 0; sg < n_segs; ++sg)
        for (int64_t t = segs[sg].t0; t < segs[sg].t1; ++t) {
          scalar_t* y = soa + (segs[sg].at + t - segs[sg].t0) * 4 * kLanes;
          for (int j = 0; j < kLanes; ++j) {
            const int64_t m = j < width ? lanes[j] : 0;
            const int64_t i = t - (j < width ? b_start[m] : 0);
            const bool exists = j < width && i >= 0 && i < b_len[m];
            for (int c = 0; c < 4; ++c)
              y[c * kLanes + j] =
                  exists ? b[4 * (m * Tb + i) + c] : (c < 2 ? kFar<scalar_t> : -kFar<scalar_t>);
          }
        }
      const int64_t stop = std::lower_bound(a_sorted_start.begin(), a_sorted_start.end(), t1) -
                           a_sorted_start.begin();
      acc_t sums[kLanes];
      for (int64_t r = 0; r < stop; ++r) {
        const int64_t n = a_order[r];
        const int64_t sa = a_start[n], la = a_len[n];
        const int64_t lo = std::max(sa, t0), hi = std::min(sa + la, t1);
        if (hi <= lo) continue;
        // frames of no lane add exact zeros, so skipping the gaps between segments changes no bit
        for (int j = 0; j < kLanes; ++j) sums[j] = 0;
        for (int sg = 0; sg < n_segs; ++sg) {
          const int64_t s0 = std::max(lo, segs[sg].t0), s1 = std::min(hi, segs[sg].t1);
          if (s1 <= s0) continue;
          const scalar_t* y = soa + segs[sg].at * 4 * kLanes;
          if (volume)
            lane_sums<false>(a + 4 * n * Ta, sa, s0, s1, y, segs[sg].t0, off, sums);
          else
            lane_sums<true>(a + 4 * n * Ta, sa, s0, s1, y, segs[sg].t0, off, sums);
        }
        for (int j = 0; j < width; ++j) {
          const int64_t m = lanes[j];
          const int64_t sb = b_start[m], lb = b_len[m];
          const Overlap o = temporal_overlap(sa, la, sb, lb);
          if (o.empty() || lb <= 0) continue;
          acc_t result;
          if (volume) {
            const acc_t uni = va[n] + vb[m] - sums[j];
            result = uni > 0 ? sums[j] / uni : acc_t(0);
          } else {
            const acc_t shared = static_cast<acc_t>(o.hi - o.lo);
            const acc_t span = static_cast<acc_t>(std::max(sa + la, sb + lb) - std::min(sa, sb));
            result = (sums[j] / shared) * (shared / span);
          }
          out[n * M + m] = static_cast<scalar_t>(result);
        }
      }
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

template <typename scalar_t>
void interpolate_boxes_forward_impl(const int64_t* frames, const void* boxes_,
                                    const int64_t* counts, int64_t N, int64_t K, void* out_,
                                    int64_t L, int num_threads) {
  const auto* boxes = static_cast<const scalar_t*>(boxes_);
  auto* out = static_cast<scalar_t*>(out_);
#pragma omp parallel for num_threads(num_threads) schedule(dynamic, 4)
  for (int64_t n = 0; n < N; ++n) {
    scalar_t* o = out + 4 * n * L;
    std::fill(o, o + 4 * L, scalar_t(0));
    const int64_t k = counts[n];
    if (k <= 0) continue;
    const int64_t* f = frames + n * K;
    const scalar_t* bx = boxes + 4 * n * K;
    const int64_t len = f[k - 1] - f[0] + 1;
    for (int64_t i = 0; i < len; ++i) {
      const InterpWeight w = interp_weight(f, k, f[0] + i);
      const scalar_t* left = bx + 4 * w.j;
      const scalar_t* right = bx + 4 * std::min(w.j + 1, k - 1);
      for (int c = 0; c < 4; ++c)
        o[4 * i + c] = static_cast<scalar_t>(w.wl * left[c] + w.wr * right[c]);
    }
  }
}

void interpolate_boxes_forward(const int64_t* frames, const void* boxes_, const int64_t* counts,
                               int64_t N, int64_t K, void* out_, int64_t L, int dtype,
                               int num_threads) {
  PYVREL_DISPATCH_FLOAT(dtype, "interpolate_boxes", interpolate_boxes_forward_impl, frames, boxes_,
                        counts, N, K, out_, L, num_threads);
}

template <typename scalar_t>
void interpolate_boxes_backward_impl(const int64_t* frames, const int64_t* counts, int64_t N,
                                     int64_t K, const void* g_, int64_t L, void* gb_,
                                     int num_threads) {
  const auto* g = static_cast<const scalar_t*>(g_);
  auto* gb = static_cast<scalar_t*>(gb_);
#pragma omp parallel for num_threads(num_threads) schedule(dynamic, 4)
  for (int64_t n = 0; n < N; ++n) {
    scalar_t* out = gb + 4 * n * K;
    std::fill(out, out + 4 * K, scalar_t(0));
    const int64_t k = counts[n];
    if (k <= 0) continue;
    const int64_t* f = frames + n * K;
    const scalar_t* go = g + 4 * n * L;
    const int64_t len = f[k - 1] - f[0] + 1;
    for (int64_t i = 0; i < len; ++i) {
      const InterpWeight w = interp_weight(f, k, f[0] + i);
      const int64_t right = std::min(w.j + 1, k - 1);
      for (int c = 0; c < 4; ++c) {
        out[4 * w.j + c] += static_cast<scalar_t>(w.wl * go[4 * i + c]);
        out[4 * right + c] += static_cast<scalar_t>(w.wr * go[4 * i + c]);
      }
    }
  }
}

void interpolate_boxes_backward(const int64_t* frames, const int64_t* counts, int64_t N, int64_t K,
                                const void* g_, int64_t L, void* gb_, int dtype, int num_threads) {
  PYVREL_DISPATCH_FLOAT(dtype, "interpolate_boxes_backward", interpolate_boxes_backward_impl,
                        frames, counts, N, K, g_, L, gb_, num_threads);
}

}  // namespace pyvrel::cpu
