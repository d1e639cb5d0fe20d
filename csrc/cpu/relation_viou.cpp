// The evaluation's relation-pair vIoU on the CPU: the volumetric vIoU of tubes.h in float64, so
// the official arithmetic bit for bit with pixel_offset = 1.
#include "relation_viou.h"

#include <cstdint>

#include "pyvrel/tubes.h"

namespace pyvrel::cpu {

void relation_viou_pairs(const double* a_boxes, const int64_t* a_sub, const int64_t* a_obj,
                         const int64_t* a_start, const int64_t* a_len, const int64_t* ia,
                         const double* b_boxes, const int64_t* b_sub, const int64_t* b_obj,
                         const int64_t* b_start, const int64_t* b_len, const int64_t* ib, int64_t P,
                         double pixel_offset, double* out, int num_threads) {
#pragma omp parallel for num_threads(num_threads) schedule(dynamic, 64)
  for (int64_t k = 0; k < P; ++k) {
    const int64_t i = ia[k], j = ib[k];
    const int64_t sa = a_start[i], la = a_len[i], sb = b_start[j], lb = b_len[j];
    double r = 0;
    if (!temporal_overlap(sa, la, sb, lb).empty()) {
      const double* as = a_boxes + 4 * a_sub[i];
      const double* ao = a_boxes + 4 * a_obj[i];
      const double* bs = b_boxes + 4 * b_sub[j];
      const double* bo = b_boxes + 4 * b_obj[j];
      const double vs = tube_volume_iou(as, sa, la, tube_volume(as, la, pixel_offset), bs, sb, lb,
                                        tube_volume(bs, lb, pixel_offset), pixel_offset);
      const double vo = tube_volume_iou(ao, sa, la, tube_volume(ao, la, pixel_offset), bo, sb, lb,
                                        tube_volume(bo, lb, pixel_offset), pixel_offset);
      r = vs < vo ? vs : vo;
    }
    out[k] = r;
  }
}

}  // namespace pyvrel::cpu
