// Per-element math of Seq-NMS shared by the CPU and CUDA kernels (docs/architecture.md).
// Scores and path sums are accumulated in double (acc_t); IoUs are computed in the boxes' type
// and compared with the threshold rounded to that type, as the Python reference does.
#pragma once
#include "pyvrel/boxes.h"
#include "pyvrel/common.h"

namespace pyvrel {

// The arguments of one Seq-NMS call on B videos of Tn frames x N boxes: the inputs, options and
// caller-allocated outputs of the CPU kernels (host pointers) and the CUDA kernel (device
// pointers). Outputs: scores_out at valid entries, seq_id (-1: in no sequence), per sequence its
// first frame, length and score sum, the box indices of the sequences back to back in nodes and
// the node slots each video needed (the caller retries with more when it exceeds node_cap).
struct SeqNmsArgs {
  const void* boxes;      // (B, Tn, N, 4) of the dtype
  const void* scores;     // (B, Tn, N) of the dtype
  const uint8_t* valid;   // (B, Tn, N)
  const int64_t* labels;  // (B, Tn, N) or null: boxes of different labels never link
  int64_t B, Tn, N;
  double link_threshold, suppress_threshold;
  bool strict;  // IoU > threshold (else >=)
  int rescore;  // SeqNmsRescore code
  int suppress; // SeqNmsSuppress code
  int64_t max_sequences;  // <= 0: no limit
  double min_score, pixel_offset;
  void* scores_out;       // (B, Tn, N) of the dtype
  int64_t* seq_id;        // (B, Tn, N)
  int64_t* seq_count;     // (B,)
  int64_t* seq_start;     // (B, Kcap)
  int64_t* seq_len;       // (B, Kcap)
  double* seq_score;      // (B, Kcap)
  int64_t Kcap;
  int64_t* nodes;         // (B, node_cap)
  int64_t node_cap;
  int64_t* nodes_needed;  // (B,)
};

// IoU threshold test: iou >= thr, or iou > thr when `strict`.
template <typename T>
PYVREL_HD bool iou_passes(T iou, T thr, bool strict) {
  return strict ? iou > thr : iou >= thr;
}

// Whether box a of frame t links to box b of frame t + 1. Labels (may be null) must be equal
// and non-negative.
template <typename T>
PYVREL_HD bool seq_nms_link(const T* a, const T* b, const int64_t* label_a, const int64_t* label_b,
                            T off, T thr, bool strict) {
  if (label_a != nullptr && (*label_a < 0 || *label_a != *label_b)) return false;
  return iou_passes(box_iou(a, b, off), thr, strict);
}

// One relaxation of the backward DP: successor value `cand` of index j replaces the current best
// when there is none yet or it is strictly greater (so the lowest index wins ties).
PYVREL_HD bool dp_improves(acc_t cand, acc_t best, bool have_best) {
  return !have_best || cand > best;
}

// Necessary condition for a positive intersection width of boxes with x2 = hi and x1 = lo:
// box_inter computes fl(fl(min(x2) - max(x1)) + off) and rounding is monotone, so a pair fails
// this test only if its computed width is <= 0. Monotone in `lo`, which makes it usable as a
// binary-search bound over boxes sorted by x1.
template <typename T>
PYVREL_HD bool x_overlap_possible(T hi, T lo, T off) {
  return (hi - lo) + off > T(0);
}

// Whether box q of a path frame is suppressed by the path box p of that frame (always itself).
template <typename T>
PYVREL_HD bool seq_nms_suppressed(const T* path_box, const T* box, bool is_path_box, T off, T thr,
                                  bool strict) {
  return is_path_box || iou_passes(box_iou(path_box, box, off), thr, strict);
}

// New score of the boxes of a selected path of `len` boxes with score sum `sum` and maximum
// box score `max_score`.
PYVREL_HD acc_t seq_nms_rescored(int rescore, acc_t sum, acc_t max_score, int64_t len) {
  return rescore == static_cast<int>(SeqNmsRescore::Avg) ? sum / static_cast<acc_t>(len) : max_score;
}

}  // namespace pyvrel
