// Linear interpolation of sampled box tracks onto every frame (vRGV appendix eq. 14), CUDA.
#include "kernels.h"
#include "pyvrel/tube.h"
#include "utils.cuh"

namespace pyvrel::cuda {

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
