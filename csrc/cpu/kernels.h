// Declarations of pyvrel's CPU kernels (namespace pyvrel::cpu). Every kernel works on
// contiguous buffers allocated by the caller; `dtype` is a pyvrel::DType code and
// `num_threads` the OpenMP team size (torch.get_num_threads() on the Python side).
#pragma once
#include <cstdint>

#include "pyvrel/local_attention.h"
#include "pyvrel/seq_nms.h"

namespace pyvrel::cpu {

// a (B, N, 4), b (B, M, 4) -> out (B, N, M).
void box_iou_forward(const void* a, const void* b, void* out, int64_t B, int64_t N, int64_t M,
                     int dtype, double pixel_offset, int num_threads);
// grad_out (B, N, M) -> grad_a (B, N, 4), grad_b (B, M, 4) (overwritten).
void box_iou_backward(const void* a, const void* b, const void* grad_out, void* grad_a,
                      void* grad_b, int64_t B, int64_t N, int64_t M, int dtype, double pixel_offset,
                      int num_threads);
// a (K, 4), b (K, 4) -> out (K,).
void box_iou_aligned_forward(const void* a, const void* b, void* out, int64_t K, int dtype,
                             double pixel_offset, int num_threads);
void box_iou_aligned_backward(const void* a, const void* b, const void* grad_out, void* grad_a,
                              void* grad_b, int64_t K, int dtype, double pixel_offset,
                              int num_threads);

// Greedy NMS over boxes (N, 4) visited in `order` (N,) int64. `idxs` (N,) int64 or null: boxes
// of different idxs never suppress each other. Writes keep (N,) uint8 over original indices.
void nms_forward(const void* boxes, const int64_t* order, const int64_t* idxs, uint8_t* keep,
                 int64_t N, int dtype, double iou_threshold, double pixel_offset);

// Tubes: boxes (N, T, 4), start (N,), length (N,) int64. Pairwise -> out (N, M); mode is a
// pyvrel::TubeIoUMode code.
void tube_iou_forward(const void* a, const int64_t* a_start, const int64_t* a_len, int64_t N,
                      int64_t Ta, const void* b, const int64_t* b_start, const int64_t* b_len,
                      int64_t M, int64_t Tb, void* out, int dtype, int mode, double pixel_offset,
                      int num_threads);
// Aligned pairs (a[i], b[i]) -> out (N,).
void tube_iou_aligned_forward(const void* a, const int64_t* a_start, const int64_t* a_len,
                              int64_t Ta, const void* b, const int64_t* b_start,
                              const int64_t* b_len, int64_t Tb, int64_t N, void* out, int dtype,
                              int mode, double pixel_offset, int num_threads);
// grad_out (N,) -> grad_a (N, Ta, 4), grad_b (N, Tb, 4) (overwritten).
void tube_iou_aligned_backward(const void* a, const int64_t* a_start, const int64_t* a_len,
                               int64_t Ta, const void* b, const int64_t* b_start,
                               const int64_t* b_len, int64_t Tb, int64_t N, const void* grad_out,
                               void* grad_a, void* grad_b, int dtype, int mode, double pixel_offset,
                               int num_threads);

// Linear interpolation of sampled tracks: frames (N, K) int64 strictly increasing over the first
// counts[n] entries, boxes (N, K, 4) -> out (N, L, 4): frame frames[n, 0] + i for
// i <= frames[n, counts[n]-1] - frames[n, 0], zeros after.
void interpolate_boxes_forward(const int64_t* frames, const void* boxes, const int64_t* counts,
                               int64_t N, int64_t K, void* out, int64_t L, int dtype,
                               int num_threads);
// grad_out (N, L, 4) -> grad_boxes (N, K, 4) (overwritten).
void interpolate_boxes_backward(const int64_t* frames, const int64_t* counts, int64_t N, int64_t K,
                                const void* grad_out, int64_t L, void* grad_boxes, int dtype,
                                int num_threads);

// Windowed local attention (pyvrel/local_attention.h has the conventions and LocalAttentionArgs).
// Forward writes args.out and args.lse; backward reads them and writes the gradient buffers (dk, dv
// are built per (batch, head) in query order: deterministic). dtype: float32 or float64.
void local_attention_forward(const LocalAttentionArgs& args, int dtype, int num_threads);
void local_attention_backward(const LocalAttentionArgs& args, const LocalAttentionGrads& grads,
                              int dtype, int num_threads);
// Seq-NMS of B videos (pyvrel/seq_nms.h has SeqNmsArgs: shapes, codes and outputs).
void seq_nms_forward(const SeqNmsArgs& args, int dtype, int num_threads);
// The same results by the CUDA kernel's algorithm (pyvrel/seq_nms_block.h) run serially per
// video: how the CPU tests reach the code of the CUDA backend.
void seq_nms_block_forward(const SeqNmsArgs& args, int dtype, int num_threads);

// Viterbi linking of B problems: boxes (B, T, N, 4), unary (B, T, N), frames (B, T) int64,
// lengths (B,), valid (B, T, N) uint8 -> paths (B, k, T) int64 (-1 past the length or when no
// path is left) and scores (B, k) float64 (-inf when none): the k best disjoint paths.
void viterbi_forward(const void* boxes, const void* unary, const int64_t* frames,
                     const int64_t* lengths, const uint8_t* valid, int64_t B, int64_t T, int64_t N,
                     int64_t k, double pairwise_weight, bool gap_scaling, bool legacy_vrgv,
                     double pixel_offset, int64_t* paths, double* scores, int dtype,
                     int num_threads);
// Smoothed Viterbi (temperature tau), pairwise_weight (B,) float64 -> marginals (B, T, N),
// log_partition (B,) and its derivative w.r.t. the pairwise weight grad_weight (B,), all float64.
void soft_viterbi_forward(const void* boxes, const void* unary, const int64_t* frames,
                          const int64_t* lengths, const uint8_t* valid,
                          const double* pairwise_weight, int64_t B, int64_t T, int64_t N,
                          double tau, bool gap_scaling, bool legacy_vrgv, double pixel_offset,
                          double* marginals, double* log_partition, double* grad_weight, int dtype,
                          int num_threads);

}  // namespace pyvrel::cpu
