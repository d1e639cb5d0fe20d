// Greedy frame-level NMS on the CPU. The visiting order comes from the caller (a stable
// descending sort by score), so every backend breaks ties the same way.
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels.h"
#include "pyvrel/box.h"

namespace pyvrel::cpu {

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
