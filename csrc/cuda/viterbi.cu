// Viterbi linking on CUDA: one block per problem (N of a few hundred fits one block), threads
// over the boxes of the current frame, frames in sequence; the k disjoint paths are found in the
// same launch. The arithmetic and tie rules are those of csrc/cpu/viterbi.cpp (identical results).
#include <math_constants.h>

#include "kernels.h"
#include "pyvrel/viterbi.h"
#include "utils.cuh"

namespace pyvrel::cuda {

namespace {

constexpr int kViterbiThreads = 128;

// Workspace per problem: back pointers (T, N) int32 and the boxes still available (T, N) uint8.
PYVREL_HD int64_t problem_bytes(int64_t T, int64_t N) { return (T * N * 5 + 7) / 8 * 8; }

template <typename T>
__global__ void __launch_bounds__(kViterbiThreads)
    viterbi_kernel(const T* boxes_all, const T* unary_all, const int64_t* frames_all,
                   const int64_t* lengths, const uint8_t* valid_all, int64_t Tn, int64_t N,
                   int64_t k, double pairwise_weight, bool gap_scaling, bool legacy_vrgv, T off,
                   int64_t* paths, double* scores, uint8_t* workspace) {
  extern __shared__ acc_t V[];  // (2, N): previous and current frame
  const int64_t b = blockIdx.x, tid = threadIdx.x, nt = blockDim.x, TN = Tn * N;
  const T* boxes = boxes_all + 4 * b * TN;
  const T* unary = unary_all + b * TN;
  const int64_t* frames = frames_all + b * Tn;
  auto* back = reinterpret_cast<int32_t*>(workspace + b * problem_bytes(Tn, N));
  uint8_t* ok = workspace + b * problem_bytes(Tn, N) + TN * 4;
  const int64_t L = lengths[b];
  for (int64_t i = tid; i < k * Tn; i += nt) paths[b * k * Tn + i] = -1;
  for (int64_t r = tid; r < k; r += nt) scores[b * k + r] = -CUDART_INF;
  for (int64_t i = tid; i < TN; i += nt) ok[i] = i < L * N ? valid_all[b * TN + i] : 0;
  __syncthreads();
  if (L == 0) return;
  for (int64_t r = 0; r < k; ++r) {
    acc_t* prev = V;
    acc_t* cur = V + N;
    for (int64_t q = tid; q < N; q += nt)
      prev[q] = ok[q] ? viterbi_unary_weight(0, L, legacy_vrgv) * static_cast<acc_t>(unary[q])
                      : -CUDART_INF;
    __syncthreads();
    for (int64_t t = 1; t < L; ++t) {
      const acc_t c = viterbi_unary_weight(t, L, legacy_vrgv);
      const acc_t lambda = viterbi_link_weight(frames, t - 1, pairwise_weight, gap_scaling);
      for (int64_t q = tid; q < N; q += nt) {
        int32_t arg = -1;
        acc_t best = 0;
        if (ok[t * N + q])
          for (int64_t p = 0; p < N; ++p) {
            if (prev[p] == -CUDART_INF) continue;
            const acc_t cand = prev[p] + viterbi_edge(lambda, boxes + 4 * ((t - 1) * N + p),
                                                      boxes + 4 * (t * N + q), off);
            if (arg < 0 || cand > best) {
              best = cand;
              arg = static_cast<int32_t>(p);
            }
          }
        back[t * N + q] = arg;
        cur[q] = arg >= 0 ? c * static_cast<acc_t>(unary[t * N + q]) + best : -CUDART_INF;
      }
      __syncthreads();
      acc_t* swap = prev;
      prev = cur;
      cur = swap;
    }
    // One thread picks the end (lowest index among the best) and walks the back pointers.
    __shared__ int found;
    if (tid == 0) {
      int64_t end = -1;
      for (int64_t q = 0; q < N; ++q)
        if (prev[q] != -CUDART_INF && (end < 0 || prev[q] > prev[end])) end = q;
      found = end >= 0;
      if (found) {
        scores[b * k + r] = prev[end];
        for (int64_t t = L - 1; t >= 0; --t) {
          paths[(b * k + r) * Tn + t] = end;
          ok[t * N + end] = 0;
          end = t > 0 ? back[t * N + end] : -1;
        }
      }
    }
    __syncthreads();
    if (!found) break;
  }
}

template <typename T>
void viterbi_forward_impl(const void* boxes, const void* unary, const int64_t* frames,
                          const int64_t* lengths, const uint8_t* valid, int64_t B, int64_t Tn,
                          int64_t N, int64_t k, double pairwise_weight, bool gap_scaling,
                          bool legacy_vrgv, double pixel_offset, int64_t* paths, double* scores,
                          void* workspace, std::uintptr_t stream) {
  if (B == 0 || Tn == 0 || N == 0) return;
  if (N > kViterbiMaxBoxes)
    throw std::invalid_argument("viterbi_link: at most " + std::to_string(kViterbiMaxBoxes) +
                                " boxes per frame on CUDA, got " + std::to_string(N));
  const size_t shared = 2 * static_cast<size_t>(N) * sizeof(acc_t);
  viterbi_kernel<T><<<static_cast<unsigned int>(B), kViterbiThreads, shared, as_stream(stream)>>>(
      static_cast<const T*>(boxes), static_cast<const T*>(unary), frames, lengths, valid, Tn, N, k,
      pairwise_weight, gap_scaling, legacy_vrgv, static_cast<T>(pixel_offset), paths, scores,
      static_cast<uint8_t*>(workspace));
  check_launch("viterbi_forward");
}

}  // namespace

int64_t viterbi_workspace_bytes(int64_t B, int64_t T, int64_t N) {
  return B * problem_bytes(T, N);
}

void viterbi_forward(const void* boxes, const void* unary, const int64_t* frames,
                     const int64_t* lengths, const uint8_t* valid, int64_t B, int64_t T, int64_t N,
                     int64_t k, double pairwise_weight, bool gap_scaling, bool legacy_vrgv,
                     double pixel_offset, int64_t* paths, double* scores, int dtype,
                     void* workspace, std::uintptr_t stream) {
  PYVREL_DISPATCH_FLOAT(dtype, "viterbi_link", viterbi_forward_impl, boxes, unary, frames, lengths,
                        valid, B, T, N, k, pairwise_weight, gap_scaling, legacy_vrgv, pixel_offset,
                        paths, scores, workspace, stream);
}

}  // namespace pyvrel::cuda
