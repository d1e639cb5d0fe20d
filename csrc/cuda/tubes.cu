// Tube (trajectory) IoU on CUDA: pairwise and aligned, volumetric vIoU and iou3dt.
#include "kernels.h"
#include "pyvrel/tube.h"
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

}  // namespace pyvrel::cuda
