// Declarations of pyvrel's CUDA kernels (namespace pyvrel::cuda): the same functions, shapes and
// results as csrc/cpu/kernels.h, with the trailing `num_threads` replaced by `stream`, a
// cudaStream_t passed as an integer. Every pointer is a device pointer to a contiguous buffer
// allocated by the caller; outputs are overwritten and nothing is allocated here. Launches are
// asynchronous on `stream`; a failed launch throws std::runtime_error, a bad dtype or mode code
// std::invalid_argument. Empty inputs launch nothing. Plain C++ (no CUDA types), so the host
// compiler can include it.
#pragma once
#include <cstdint>

#include "pyvrel/local_attention.h"
#include "pyvrel/seq_nms.h"

namespace pyvrel::cuda {

// a (B, N, 4), b (B, M, 4) -> out (B, N, M).
void box_iou_forward(const void* a, const void* b, void* out, int64_t B, int64_t N, int64_t M,
                     int dtype, double pixel_offset, std::uintptr_t stream);
// grad_out (B, N, M) -> grad_a (B, N, 4), grad_b (B, M, 4). Deterministic (no atomics).
void box_iou_backward(const void* a, const void* b, const void* grad_out, void* grad_a,
                      void* grad_b, int64_t B, int64_t N, int64_t M, int dtype, double pixel_offset,
                      std::uintptr_t stream);
// a (K, 4), b (K, 4) -> out (K,).
void box_iou_aligned_forward(const void* a, const void* b, void* out, int64_t K, int dtype,
                             double pixel_offset, std::uintptr_t stream);
void box_iou_aligned_backward(const void* a, const void* b, const void* grad_out, void* grad_a,
                              void* grad_b, int64_t K, int dtype, double pixel_offset,
                              std::uintptr_t stream);

// Largest N that nms_forward accepts (its reduction keeps one bit per box in shared memory).
constexpr int64_t kNmsMaxBoxes = 6144 * 64;
// Bytes of the workspace nms_forward needs: N * ceil(N / 64) * 8 (a uint64 suppression mask).
int64_t nms_workspace_bytes(int64_t N);
// Greedy NMS over boxes (N, 4) visited in `order` (N,) int64. `idxs` (N,) int64 or null: boxes
// of different idxs never suppress each other. Writes keep (N,) uint8 over original indices,
// identical to the CPU kernel. `workspace` holds nms_workspace_bytes(N) bytes.
void nms_forward(const void* boxes, const int64_t* order, const int64_t* idxs, uint8_t* keep,
                 int64_t N, int dtype, double iou_threshold, double pixel_offset, void* workspace,
                 std::uintptr_t stream);

// Tubes: boxes (N, T, 4), start (N,), length (N,) int64. Pairwise -> out (N, M); mode is a
// pyvrel::TubeIoUMode code.
void tube_iou_forward(const void* a, const int64_t* a_start, const int64_t* a_len, int64_t N,
                      int64_t Ta, const void* b, const int64_t* b_start, const int64_t* b_len,
                      int64_t M, int64_t Tb, void* out, int dtype, int mode, double pixel_offset,
                      std::uintptr_t stream);
// Aligned pairs (a[i], b[i]) -> out (N,).
void tube_iou_aligned_forward(const void* a, const int64_t* a_start, const int64_t* a_len,
                              int64_t Ta, const void* b, const int64_t* b_start,
                              const int64_t* b_len, int64_t Tb, int64_t N, void* out, int dtype,
                              int mode, double pixel_offset, std::uintptr_t stream);
// grad_out (N,) -> grad_a (N, Ta, 4), grad_b (N, Tb, 4).
void tube_iou_aligned_backward(const void* a, const int64_t* a_start, const int64_t* a_len,
                               int64_t Ta, const void* b, const int64_t* b_start,
                               const int64_t* b_len, int64_t Tb, int64_t N, const void* grad_out,
                               void* grad_a, void* grad_b, int dtype, int mode, double pixel_offset,
                               std::uintptr_t stream);

// Linear interpolation of sampled tracks: frames (N, K) int64 strictly increasing over the first
// counts[n] entries, boxes (N, K, 4) -> out (N, L, 4): frame frames[n, 0] + i for
// i <= frames[n, counts[n]-1] - frames[n, 0], zeros after.
void interpolate_boxes_forward(const int64_t* frames, const void* boxes, const int64_t* counts,
                               int64_t N, int64_t K, void* out, int64_t L, int dtype,
                               std::uintptr_t stream);
// grad_out (N, L, 4) -> grad_boxes (N, K, 4). Deterministic (no atomics).
void interpolate_boxes_backward(const int64_t* frames, const int64_t* counts, int64_t N, int64_t K,
                                const void* grad_out, int64_t L, void* grad_boxes, int dtype,
                                std::uintptr_t stream);

// Windowed local attention (pyvrel/local_attention.h has the conventions and LocalAttentionArgs).
// dtype codes: 0 float32, 1 float64, 2 float16, 3 bfloat16; lse/dlse are float32 (float64 for
// float64). The backward is deterministic and needs local_attention_workspace_bytes(...) bytes of
// workspace.
int64_t local_attention_workspace_bytes(int64_t B, int64_t H, int64_t Lq, int64_t Lk, int64_t D,
                                        int64_t Dv, int64_t W, int dtype);
void local_attention_forward(const LocalAttentionArgs& args, int dtype, std::uintptr_t stream);
void local_attention_backward(const LocalAttentionArgs& args, const LocalAttentionGrads& grads,
                              void* workspace, int dtype, std::uintptr_t stream);
// Seq-NMS: as pyvrel::cpu::seq_nms_forward, with a workspace of seq_nms_workspace_bytes(B, T, N)
// bytes (dense link masks and the per-video DP state) instead of the thread count.
int64_t seq_nms_workspace_bytes(int64_t B, int64_t T, int64_t N);
void seq_nms_forward(const SeqNmsArgs& args, int dtype, void* workspace, std::uintptr_t stream);

// Largest N per frame that viterbi_forward accepts (two frames of float64 DP values in shared
// memory).
constexpr int64_t kViterbiMaxBoxes = 3072;
// Viterbi linking: as pyvrel::cpu::viterbi_forward, with a workspace of
// viterbi_workspace_bytes(B, T, N) bytes (back pointers and available boxes).
int64_t viterbi_workspace_bytes(int64_t B, int64_t T, int64_t N);
void viterbi_forward(const void* boxes, const void* unary, const int64_t* frames,
                     const int64_t* lengths, const uint8_t* valid, int64_t B, int64_t T, int64_t N,
                     int64_t k, double pairwise_weight, bool gap_scaling, bool legacy_vrgv,
                     double pixel_offset, int64_t* paths, double* scores, int dtype,
                     void* workspace, std::uintptr_t stream);

// Smoothed Viterbi: as pyvrel::cpu::soft_viterbi_forward, with a workspace of
// soft_viterbi_workspace_bytes(B, T, N) bytes (forward and backward log-messages).
int64_t soft_viterbi_workspace_bytes(int64_t B, int64_t T, int64_t N);
void soft_viterbi_forward(const void* boxes, const void* unary, const int64_t* frames,
                          const int64_t* lengths, const uint8_t* valid,
                          const double* pairwise_weight, int64_t B, int64_t T, int64_t N,
                          double tau, bool gap_scaling, bool legacy_vrgv, double pixel_offset,
                          double* marginals, double* log_partition, double* grad_weight, int dtype,
                          void* workspace, std::uintptr_t stream);

}  // namespace pyvrel::cuda
