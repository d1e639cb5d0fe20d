// Linear interpolation of sampled box tracks onto every frame (vRGV appendix eq. 14), CPU.
#include <algorithm>
#include <stdexcept>
#include <string>

#include "kernels.h"
#include "pyvrel/tube.h"

namespace pyvrel::cpu {

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
