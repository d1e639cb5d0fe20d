// The evaluation's relation-pair vIoU (not an op kernel: called only by pyvrel/eval/_viou_pairs.py
// through pyvrel._C.relation_viou_pairs).
#pragma once
#include <cstdint>

namespace pyvrel::cpu {

// Relation pairs of the evaluation: out[k] = min(vIoU(sub), vIoU(obj)) of relation ia[k] of a and
// relation ib[k] of b (float64, volumetric, as tube_iou_aligned). A relation's subject boxes are
// rows a_sub[i] .. a_sub[i] + a_len[i] of a_boxes (4 numbers per row), its object boxes start at
// row a_obj[i], its first frame is a_start[i]; the same for b.
void relation_viou_pairs(const double* a_boxes, const int64_t* a_sub, const int64_t* a_obj,
                         const int64_t* a_start, const int64_t* a_len, const int64_t* ia,
                         const double* b_boxes, const int64_t* b_sub, const int64_t* b_obj,
                         const int64_t* b_start, const int64_t* b_len, const int64_t* ib, int64_t P,
                         double pixel_offset, double* out, int num_threads);

}  // namespace pyvrel::cpu
