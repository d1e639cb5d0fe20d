// The tube family on CUDA: tube (trajectory) IoU, pairwise and aligned, volumetric vIoU and
// iou3dt; linear interpolation of sampled box tracks onto every frame (vRGV appendix eq. 14).
#include "kernels.h"
#include "pyvrel/tubes.h"
#include "utils.cuh"

namespace pyvrel::cuda {

namespace {

// IoU of one pair of tubes; 0 (without touching the boxes) when their spans are disjoint.
template <typename T>
__device__ acc_t pair_iou(const T* ta, int64_t sa, int64_t la, const T* tb, int64_t sb, int64_t lb,
                          bool volume, T off) {
  if (temporal_overlap(sa, la, sb, lb).empty()) return 0;
  if (volume)
    return tube_volume_iou(ta, sa, la, tube_volume(ta, la, off), tb, sb, lb,
                           tube_volume(tb, lb, off), off);
  return tube_iou3dt(ta, sa, la, tb, sb, lb, off);
}

// Pairwise kernel: each block takes kTile x kTile tiles of pairs (grid-stride over tiles). In
// volume mode the block first sums the kTile + kTile tube volumes of its tile into shared memory,
// so a tube's volume is computed once per tile instead of once per pair (kTile times less work);
// then thread (i, j) of the tile scores pair (n0 + i, m0 + j). a (N, Ta, 4), b (M, Tb, 4) ->
// out (N, M). Launched with kTile * kTile threads per block.
constexpr int kTile = 16;

template <typename T>
__global__ void tube_iou_forward_kernel(const T* a, const int64_t* a_start, const int64_t* a_len,
                                        int64_t N, int64_t Ta, const T* b, const int64_t* b_start,
                                        const int64_t* b_len, int64_t M, int64_t Tb, T* out,
                                        bool volume, T off) {
  __shared__ acc_t vol_a[kTile], vol_b[kTile];
  const int64_t tiles_m = (M + kTile - 1) / kTile, tiles = ((N + kTile - 1) / kTile) * tiles_m;
  const int i = threadIdx.x / kTile, j = threadIdx.x % kTile;
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const int64_t n0 = (tile / tiles_m) * kTile, m0 = (tile % tiles_m) * kTile;
    if (volume && threadIdx.x < kTile && n0 + threadIdx.x < N) {
      const int64_t n = n0 + threadIdx.x;
      vol_a[threadIdx.x] = tube_volume(a + 4 * n * Ta, a_len[n], off);
    } else if (volume && threadIdx.x >= kTile && threadIdx.x < 2 * kTile &&
               m0 + threadIdx.x - kTile < M) {
      const int64_t m = m0 + threadIdx.x - kTile;
      vol_b[threadIdx.x - kTile] = tube_volume(b + 4 * m * Tb, b_len[m], off);
    }
    __syncthreads();
    const int64_t n = n0 + i, m = m0 + j;
    if (n < N && m < M) {
      const T* ta = a + 4 * n * Ta;
      const T* tb = b + 4 * m * Tb;
      const acc_t iou = volume ? tube_volume_iou(ta, a_start[n], a_len[n], vol_a[i], tb, b_start[m],
                                                 b_len[m], vol_b[j], off)
                               : tube_iou3dt(ta, a_start[n], a_len[n], tb, b_start[m], b_len[m], off);
      out[n * M + m] = static_cast<T>(iou);
    }
    __syncthreads();  // the next tile overwrites vol_a / vol_b
  }
}

// One thread per aligned pair n: a (N, Ta, 4), b (N, Tb, 4) -> out (N,).
template <typename T>
__global__ void tube_iou_aligned_forward_kernel(const T* a, const int64_t* a_start,
                                                const int64_t* a_len, int64_t Ta, const T* b,
                                                const int64_t* b_start, const int64_t* b_len,
                                                int64_t Tb, int64_t N, T* out, bool volume, T off) {
  PYVREL_CUDA_LOOP(n, N) {
    out[n] = static_cast<T>(pair_iou(a + 4 * n * Ta, a_start[n], a_len[n], b + 4 * n * Tb,
                                     b_start[n], b_len[n], volume, off));
  }
}

// One thread per aligned pair n: zeroes its rows grad_a (Ta, 4), grad_b (Tb, 4), then
// accumulates g[n] * d(iou)/d(boxes) into them.
template <typename T>
__global__ void tube_iou_aligned_backward_kernel(const T* a, const int64_t* a_start,
                                                 const int64_t* a_len, int64_t Ta, const T* b,
                                                 const int64_t* b_start, const int64_t* b_len,
                                                 int64_t Tb, int64_t N, const T* g, T* ga, T* gb,
                                                 bool volume, T off) {
  PYVREL_CUDA_LOOP(n, N) {
    T* gta = ga + 4 * n * Ta;
    T* gtb = gb + 4 * n * Tb;
    for (int64_t i = 0; i < 4 * Ta; ++i) gta[i] = 0;
    for (int64_t i = 0; i < 4 * Tb; ++i) gtb[i] = 0;
    const T* ta = a + 4 * n * Ta;
    const T* tb = b + 4 * n * Tb;
    if (volume)
      tube_volume_iou_grad(ta, a_start[n], a_len[n], tb, b_start[n], b_len[n], off, g[n], gta, gtb);
    else
      tube_iou3dt_grad(ta, a_start[n], a_len[n], tb, b_start[n], b_len[n], off, g[n], gta, gtb);
  }
}

bool is_volume(int mode) {
  switch (static_cast<TubeIoUMode>(mode)) {
    case TubeIoUMode::Volume:
      return true;
    case TubeIoUMode::Iou3dt:
      return false;
  }
  throw std::invalid_argument("tube_iou: unsupported mode code " + std::to_string(mode));
}

template <typename T>
void tube_iou_forward_impl(const void* a, const int64_t* a_start, const int64_t* a_len, int64_t N,
                           int64_t Ta, const void* b, const int64_t* b_start, const int64_t* b_len,
                           int64_t M, int64_t Tb, void* out, int mode, double pixel_offset,
                           std::uintptr_t stream) {
  const bool volume = is_volume(mode);
  if (N * M == 0) return;
  const int64_t tiles = ((N + kTile - 1) / kTile) * ((M + kTile - 1) / kTile);
  tube_iou_forward_kernel<T><<<grid_size(tiles, 1), kTile * kTile, 0, as_stream(stream)>>>(
      static_cast<const T*>(a), a_start, a_len, N, Ta, static_cast<const T*>(b), b_start, b_len, M,
      Tb, static_cast<T*>(out), volume, static_cast<T>(pixel_offset));
  check_launch("tube_iou_forward");
}

template <typename T>
void tube_iou_aligned_forward_impl(const void* a, const int64_t* a_start, const int64_t* a_len,
                                   int64_t Ta, const void* b, const int64_t* b_start,
                                   const int64_t* b_len, int64_t Tb, int64_t N, void* out, int mode,
                                   double pixel_offset, std::uintptr_t stream) {
  const bool volume = is_volume(mode);
  if (N == 0) return;
  tube_iou_aligned_forward_kernel<T><<<grid_size(N), kThreads, 0, as_stream(stream)>>>(
      static_cast<const T*>(a), a_start, a_len, Ta, static_cast<const T*>(b), b_start, b_len, Tb, N,
      static_cast<T*>(out), volume, static_cast<T>(pixel_offset));
  check_launch("tube_iou_aligned_forward");
}

template <typename T>
void tube_iou_aligned_backward_impl(const void* a, const int64_t* a_start, const int64_t* a_len,
                                    int64_t Ta, const void* b, const int64_t* b_start,
                                    const int64_t* b_len, int64_t Tb, int64_t N, const void* g,
                                    void* ga, void* gb, int mode, double pixel_offset,
                                    std::uintptr_t stream) {
  const bool volume = is_volume(mode);
  if (N == 0) return;
  tube_iou_aligned_backward_kernel<T><<<grid_size(N), kThreads, 0, as_stream(stream)>>>(
      static_cast<const T*>(a), a_start, a_len, Ta, static_cast<const T*>(b), b_start, b_len, Tb, N,
      static_cast<const T*>(g), static_cast<T*>(ga), static_cast<T*>(gb), volume,
      static_cast<T>(pixel_offset));
  check_launch("tube_iou_aligned_backward");
}

}  // namespace

void tube_iou_forward(const void* a, const int64_t* a_start, const int64_t* a_len, int64_t N,
                      int64_t Ta, const void* b, const int64_t* b_start, const int64_t* b_len,
                      int64_t M, int64_t Tb, void* out, int dtype, int mode, double pixel_offset,
                      std::uintptr_t stream) {
  PYVREL_DISPATCH_FLOAT(dtype, "tube_iou", tube_iou_forward_impl, a, a_start, a_len, N, Ta, b,
                        b_start, b_len, M, Tb, out, mode, pixel_offset, stream);
}

void tube_iou_aligned_forward(const void* a, const int64_t* a_start, const int64_t* a_len,
                              int64_t Ta, const void* b, const int64_t* b_start,
                              const int64_t* b_len, int64_t Tb, int64_t N, void* out, int dtype,
                              int mode, double pixel_offset, std::uintptr_t stream) {
  PYVREL_DISPATCH_FLOAT(dtype, "tube_iou_aligned", tube_iou_aligned_forward_impl, a, a_start, a_len,
                        Ta, b, b_start, b_len, Tb, N, out, mode, pixel_offset, stream);
}

void tube_iou_aligned_backward(const void* a, const int64_t* a_start, const int64_t* a_len,
                               int64_t Ta, const void* b, const int64_t* b_start,
                               const int64_t* b_len, int64_t Tb, int64_t N, const void* grad_out,
                               void* grad_a, void* grad_b, int dtype, int mode, double pixel_offset,
                               std::uintptr_t stream) {
  PYVREL_DISPATCH_FLOAT(dtype, "tube_iou_aligned_backward", tube_iou_aligned_backward_impl, a,
                        a_start, a_len, Ta, b, b_start, b_len, Tb, N, grad_out, grad_a, grad_b,
                        mode, pixel_offset, stream);
}

namespace {

// One thread per output frame (n, i): frames (N, K), boxes (N, K, 4) -> out (N, L, 4).
template <typename T>
__global__ void interpolate_forward_kernel(const int64_t* frames, const T* boxes,
                                           const int64_t* counts, int64_t N, int64_t K, T* out,
                                           int64_t L) {
  PYVREL_CUDA_LOOP(idx, N * L) {
    const int64_t n = idx / L, i = idx % L, k = counts[n];
    const int64_t* f = frames + n * K;
    T* o = out + 4 * idx;
    if (k <= 0 || i > f[k - 1] - f[0]) {
      for (int c = 0; c < 4; ++c) o[c] = 0;
      continue;
    }
    const InterpWeight w = interp_weight(f, k, f[0] + i);
    const T* left = boxes + 4 * (n * K + w.j);
    const T* right = boxes + 4 * (n * K + min_(w.j + 1, k - 1));
    for (int c = 0; c < 4; ++c) o[c] = static_cast<T>(w.wl * left[c] + w.wr * right[c]);
  }
}

// One thread per sampled box (n, p): gathers grad_out (N, L, 4) over the frames in
// [f[p-1], f[p+1]] (the only ones whose weights use box p) -> grad_boxes (N, K, 4). Terms are
// added in the CPU kernel's order, so the sums match it exactly.
template <typename T>
__global__ void interpolate_backward_kernel(const int64_t* frames, const int64_t* counts, int64_t N,
                                            int64_t K, const T* g, int64_t L, T* gb) {
  PYVREL_CUDA_LOOP(idx, N * K) {
    const int64_t n = idx / K, p = idx % K, k = counts[n];
    const int64_t* f = frames + n * K;
    T acc[4] = {0, 0, 0, 0};
    if (p < k) {
      const T* go = g + 4 * n * L;
      const int64_t first = f[max_(p - 1, int64_t(0))], last = f[min_(p + 1, k - 1)];
      for (int64_t frame = first; frame <= last; ++frame) {
        const InterpWeight w = interp_weight(f, k, frame);
        const T* gi = go + 4 * (frame - f[0]);
        if (w.j == p)
          for (int c = 0; c < 4; ++c) acc[c] += static_cast<T>(w.wl * gi[c]);
        if (min_(w.j + 1, k - 1) == p)
          for (int c = 0; c < 4; ++c) acc[c] += static_cast<T>(w.wr * gi[c]);
      }
    }
    for (int c = 0; c < 4; ++c) gb[4 * idx + c] = acc[c];
  }
}

template <typename T>
void interpolate_boxes_forward_impl(const int64_t* frames, const void* boxes, const int64_t* counts,
                                    int64_t N, int64_t K, void* out, int64_t L,
                                    std::uintptr_t stream) {
  if (N * L == 0) return;
  interpolate_forward_kernel<T><<<grid_size(N * L), kThreads, 0, as_stream(stream)>>>(
      frames, static_cast<const T*>(boxes), counts, N, K, static_cast<T*>(out), L);
  check_launch("interpolate_boxes_forward");
}

template <typename T>
void interpolate_boxes_backward_impl(const int64_t* frames, const int64_t* counts, int64_t N,
                                     int64_t K, const void* g, int64_t L, void* gb,
                                     std::uintptr_t stream) {
  if (N * K == 0) return;
  interpolate_backward_kernel<T><<<grid_size(N * K), kThreads, 0, as_stream(stream)>>>(
      frames, counts, N, K, static_cast<const T*>(g), L, static_cast<T*>(gb));
  check_launch("interpolate_boxes_backward");
}

}  // namespace

void interpolate_boxes_forward(const int64_t* frames, const void* boxes, const int64_t* counts,
                               int64_t N, int64_t K, void* out, int64_t L, int dtype,
                               std::uintptr_t stream) {
  PYVREL_DISPATCH_FLOAT(dtype, "interpolate_boxes", interpolate_boxes_forward_impl, frames, boxes,
                        counts, N, K, out, L, stream);
}

void interpolate_boxes_backward(const int64_t* frames, const int64_t* counts, int64_t N, int64_t K,
                                const void* grad_out, int64_t L, void* grad_boxes, int dtype,
                                std::uintptr_t stream) {
  PYVREL_DISPATCH_FLOAT(dtype, "interpolate_boxes_backward", interpolate_boxes_backward_impl,
                        frames, counts, N, K, grad_out, L, grad_boxes, stream);
}

}  // namespace pyvrel::cuda
