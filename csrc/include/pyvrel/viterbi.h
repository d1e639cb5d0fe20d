// Per-element math of Viterbi linking and its smoothed (log-sum-exp) version, shared by the CPU
// and CUDA kernels. A path picks one box per frame t < L; its score is
//   sum_t c_t * unary[t, p_t] + sum_{t < L-1} lambda_t * IoU(box[t, p_t], box[t+1, p_{t+1}])
// (vRGV eq. 12-13 with every link used). Everything is accumulated in double (acc_t).
#pragma once
#include <math.h>

#include "pyvrel/boxes.h"
#include "pyvrel/common.h"

namespace pyvrel {

// Weight c_t of frame t's unary in a path of L frames: 1, or 2 for inner frames when
// `legacy_vrgv` (vRGV sums eq. 12 over the links, counting inner nodes twice).
PYVREL_HD acc_t viterbi_unary_weight(int64_t t, int64_t L, bool legacy_vrgv) {
  return legacy_vrgv && t > 0 && t < L - 1 ? acc_t(2) : acc_t(1);
}

// Factor gamma_t of link t -> t + 1 before the pairwise weight: 1 / frame gap (vRGV's
// lambda = 1 / D) when `gap_scaling`, else 1.
PYVREL_HD acc_t viterbi_gap_factor(const int64_t* frames, int64_t t, bool gap_scaling) {
  return gap_scaling ? acc_t(1) / static_cast<acc_t>(frames[t + 1] - frames[t]) : acc_t(1);
}

// lambda_t = pairwise_weight * gamma_t, computed as the reference does (w / gap, or w).
PYVREL_HD acc_t viterbi_link_weight(const int64_t* frames, int64_t t, acc_t pairwise_weight,
                                    bool gap_scaling) {
  return gap_scaling ? pairwise_weight / static_cast<acc_t>(frames[t + 1] - frames[t])
                     : pairwise_weight;
}

// IoU of boxes a and b given as coordinates and areas (areas as box_area computes them): the
// operations and their order are box_inter's and box_iou's, so the result is identical. Scalar
// arguments let a kernel keep a frame's boxes as separate coordinate arrays, which vectorises.
template <typename T>
PYVREL_HD T box_iou_unpacked(T ax1, T ay1, T ax2, T ay2, T area_a, T bx1, T by1, T bx2, T by2,
                             T area_b, T off) {
  const T w = max_(T(0), min_(ax2, bx2) - max_(ax1, bx1) + off);
  const T h = max_(T(0), min_(ay2, by2) - max_(ay1, by1) + off);
  const T inter = w * h;
  const T uni = area_a + area_b - inter;
  const T ratio = inter / (uni > T(0) ? uni : T(1));  // divides unconditionally: no branch
  return uni > T(0) ? ratio : T(0);
}

// Pairwise term of a link: lambda_t * IoU (IoU in the boxes' type, then widened).
template <typename T>
PYVREL_HD acc_t viterbi_edge(acc_t lambda, const T* a, const T* b, T off) {
  return lambda * static_cast<acc_t>(box_iou(a, b, off));
}

// Maximum of n values (-inf when n == 0).
PYVREL_HD acc_t max_of(const acc_t* x, int64_t n) {
  acc_t m = -INFINITY;
  for (int64_t i = 0; i < n; ++i) m = max_(m, x[i]);
  return m;
}

// 1 / tau, at most the largest double (tau may be subnormal): exponents (x - max) * 1 / tau are
// then 0 or negative, never NaN, and a product costs less than a division.
PYVREL_HD acc_t soft_max_scale(acc_t tau) { return min_(acc_t(1) / tau, acc_t(1.7976931348623157e308)); }

// tau * log(sum_i exp(x[i] / tau)) of n scores (the soft maximum at temperature tau), computed
// around the maximum so that no x / tau is ever formed: no overflow, and tau -> 0 gives the
// maximum. -inf when all are -inf (or n == 0).
PYVREL_HD acc_t soft_max(const acc_t* x, int64_t n, acc_t tau) {
  const acc_t m = max_of(x, n);
  if (m == -INFINITY) return m;
  const acc_t inv_tau = soft_max_scale(tau);
  acc_t sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += exp((x[i] - m) * inv_tau);
  return m + tau * log(sum);
}

}  // namespace pyvrel
