// Declarations of pyvrel's CPU kernels (namespace pyvrel::cpu). Every kernel works on
// contiguous buffers allocated by the caller; `dtype` is a pyvrel::DType code and
// `num_threads` the OpenMP team size (torch.get_num_threads() on the Python side).
#pragma once
#include <cstdint>

#include "pyvrel/local_attn.h"

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

// Cut every "sub_traj"/"obj_traj" value that is a plain list of [a, b, c, d] number lists out of
// JSON text: the skeleton gets the string "\u0000pv<k>" instead of trajectory k, whose boxes go to
// numbers (4 per box, in order), its box count to box_counts[k] and whether any number had a
// fraction or exponent to is_float[k]. Other values are copied unchanged. Returns the number of
// trajectories cut, or -1 when the skeleton capacity is too small.
int64_t cut_trajectories(const char* text, int64_t length, char* skeleton, int64_t skeleton_capacity,
                         int64_t* skeleton_length, double* numbers, int64_t numbers_capacity,
                         int64_t* box_counts, uint8_t* is_float, int64_t max_trajectories);
// Windowed local attention (pyvrel/local_attn.h has the conventions and LocalAttnArgs). Forward
// writes args.out and args.lse; backward reads them and writes the gradient buffers (dk, dv are
// built per (batch, head) in query order: deterministic). dtype: float32 or float64.
void local_attn_forward(const LocalAttnArgs& args, int dtype, int num_threads);
void local_attn_backward(const LocalAttnArgs& args, const LocalAttnGrads& grads, int dtype,
                         int num_threads);

}  // namespace pyvrel::cpu
