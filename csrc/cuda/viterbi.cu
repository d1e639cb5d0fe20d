// Viterbi linking on CUDA: one block per problem (N of a few hundred fits one block), threads
// over the boxes of the current frame, frames in sequence; the k disjoint paths are found in the
// same launch. The arithmetic and tie rules are those of csrc/cpu/viterbi.cpp (identical results).
// Also the smoothed (log-sum-exp) forward-backward of soft_viterbi.
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

// Block-wide maximum (MAX) or sum of one value per thread, returned to every thread (blockDim.x
// is a power of two).
template <bool MAX>
__device__ acc_t block_reduce(acc_t v, acc_t* red) {
  const int tid = threadIdx.x;
  __syncthreads();  // every thread has read the previous result
  red[tid] = v;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (tid < stride) red[tid] = MAX ? max_(red[tid], red[tid + stride]) : red[tid] + red[tid + stride];
    __syncthreads();
  }
  return red[0];
}

// Smoothed Viterbi: one block per problem; threads over the boxes of a frame for the forward
// (alpha) and backward (beta) recursions, then, frame by frame, the marginals and the link
// posteriors of d log Z / d w (deterministic block reductions). Same formulas as the CPU kernel:
// scores are never scaled by 1 / tau (soft_max), marginals are normalised per frame and link
// posteriors per link, so tau -> 0 gives the hard path. exp/log may differ from the host's in the
// last bits, so results agree to rounding, not bitwise. Workspace: alpha, beta.
template <typename T>
__global__ void __launch_bounds__(kViterbiThreads)
    soft_viterbi_kernel(const T* boxes_all, const T* unary_all, const int64_t* frames_all,
                        const int64_t* lengths, const uint8_t* valid_all,
                        const double* pairwise_weight, int64_t Tn, int64_t N, double tau,
                        bool gap_scaling, bool legacy_vrgv, T off, double* marginals_all,
                        double* log_partition, double* grad_weight, double* workspace) {
  const int64_t b = blockIdx.x, tid = threadIdx.x, nt = blockDim.x, TN = Tn * N;
  const T* boxes = boxes_all + 4 * b * TN;
  const int64_t* frames = frames_all + b * Tn;
  double* alpha = workspace + 2 * b * TN;
  double* beta = alpha + TN;
  double* marginals = marginals_all + b * TN;
  const int64_t L = lengths[b];
  const acc_t w = pairwise_weight[b], neg_inf = -CUDART_INF;
  __shared__ acc_t red[kViterbiThreads];
  auto node = [&](int64_t t, int64_t q) -> acc_t {
    return valid_all[b * TN + t * N + q]
               ? viterbi_unary_weight(t, L, legacy_vrgv) *
                     static_cast<acc_t>(unary_all[b * TN + t * N + q])
               : neg_inf;
  };
  auto edge = [&](int64_t t, int64_t p, int64_t q) -> acc_t {  // lambda_t IoU, t -> t+1
    return viterbi_edge(viterbi_link_weight(frames, t, w, gap_scaling), boxes + 4 * (t * N + p),
                        boxes + 4 * ((t + 1) * N + q), off);
  };
  for (int64_t i = tid; i < TN; i += nt) marginals[i] = 0;
  if (tid == 0) {
    log_partition[b] = neg_inf;
    grad_weight[b] = 0;
  }
  if (L == 0) return;
  for (int64_t q = tid; q < N; q += nt) alpha[q] = node(0, q);
  __syncthreads();
  for (int64_t t = 1; t < L; ++t) {
    for (int64_t q = tid; q < N; q += nt) {
      acc_t m = neg_inf, sum = 0;
      for (int64_t p = 0; p < N; ++p)
        if (alpha[(t - 1) * N + p] != neg_inf)
          m = max_(m, alpha[(t - 1) * N + p] + edge(t - 1, p, q));
      if (m != neg_inf)
        for (int64_t p = 0; p < N; ++p)
          if (alpha[(t - 1) * N + p] != neg_inf)
            sum += exp((alpha[(t - 1) * N + p] + edge(t - 1, p, q) - m) / tau);
      alpha[t * N + q] = m == neg_inf ? m : node(t, q) + m + tau * log(sum);
    }
    __syncthreads();
  }
  acc_t top = neg_inf;
  for (int64_t q = tid; q < N; q += nt) top = max_(top, alpha[(L - 1) * N + q]);
  top = block_reduce<true>(top, red);
  if (top == neg_inf) return;  // no path (the same for every thread)
  acc_t total = 0;
  for (int64_t q = tid; q < N; q += nt) total += exp((alpha[(L - 1) * N + q] - top) / tau);
  const acc_t log_z = top + tau * log(block_reduce<false>(total, red));
  for (int64_t p = tid; p < N; p += nt) beta[(L - 1) * N + p] = 0;
  __syncthreads();
  for (int64_t t = L - 2; t >= 0; --t) {
    for (int64_t p = tid; p < N; p += nt) {
      acc_t m = neg_inf, sum = 0;
      for (int64_t q = 0; q < N; ++q) {
        const acc_t right = node(t + 1, q);
        if (right != neg_inf) m = max_(m, edge(t, p, q) + right + beta[(t + 1) * N + q]);
      }
      if (m != neg_inf)
        for (int64_t q = 0; q < N; ++q) {
          const acc_t right = node(t + 1, q);
          if (right != neg_inf) sum += exp((edge(t, p, q) + right + beta[(t + 1) * N + q] - m) / tau);
        }
      beta[t * N + p] = m == neg_inf ? m : m + tau * log(sum);
    }
    __syncthreads();
  }
  auto box_x = [&](int64_t t, int64_t q) -> acc_t {  // alpha + beta of a valid box
    return node(t, q) == neg_inf ? neg_inf : alpha[t * N + q] + beta[t * N + q];
  };
  auto link_x = [&](int64_t t, int64_t q, int64_t r) -> acc_t {  // link (t, q) -> (t + 1, r)
    const acc_t right = node(t + 1, r);
    if (alpha[t * N + q] == neg_inf || right == neg_inf) return neg_inf;
    return alpha[t * N + q] + edge(t, q, r) + right + beta[(t + 1) * N + r];
  };
  acc_t gw = 0;
  for (int64_t t = 0; t < L; ++t) {
    acc_t m = neg_inf;
    for (int64_t q = tid; q < N; q += nt) m = max_(m, box_x(t, q));
    m = block_reduce<true>(m, red);
    acc_t sum = 0;
    for (int64_t q = tid; q < N; q += nt)
      if (box_x(t, q) != neg_inf) sum += exp((box_x(t, q) - m) / tau);
    sum = block_reduce<false>(sum, red);
    for (int64_t q = tid; q < N; q += nt)
      marginals[t * N + q] = box_x(t, q) == neg_inf ? 0 : exp((box_x(t, q) - m) / tau) / sum;
    if (t + 1 >= L) continue;
    const acc_t gamma = viterbi_gap_factor(frames, t, gap_scaling);
    acc_t lm = neg_inf;
    for (int64_t i = tid; i < N * N; i += nt) lm = max_(lm, link_x(t, i / N, i % N));
    lm = block_reduce<true>(lm, red);
    if (lm == neg_inf) continue;
    acc_t xs = 0, dot = 0;
    for (int64_t i = tid; i < N * N; i += nt) {
      const int64_t q = i / N, r = i % N;
      const acc_t x = link_x(t, q, r);
      if (x == neg_inf) continue;
      const acc_t xi = exp((x - lm) / tau);
      xs += xi;
      dot += xi * viterbi_edge(gamma, boxes + 4 * (t * N + q), boxes + 4 * ((t + 1) * N + r), off);
    }
    xs = block_reduce<false>(xs, red);
    gw += block_reduce<false>(dot, red) / xs;
  }
  if (tid == 0) {
    log_partition[b] = log_z;
    grad_weight[b] = gw;
  }
}

template <typename T>
void soft_viterbi_forward_impl(const void* boxes, const void* unary, const int64_t* frames,
                               const int64_t* lengths, const uint8_t* valid,
                               const double* pairwise_weight, int64_t B, int64_t Tn, int64_t N,
                               double tau, bool gap_scaling, bool legacy_vrgv, double pixel_offset,
                               double* marginals, double* log_partition, double* grad_weight,
                               void* workspace, std::uintptr_t stream) {
  if (B == 0 || Tn == 0 || N == 0) return;
  soft_viterbi_kernel<T><<<static_cast<unsigned int>(B), kViterbiThreads, 0, as_stream(stream)>>>(
      static_cast<const T*>(boxes), static_cast<const T*>(unary), frames, lengths, valid,
      pairwise_weight, Tn, N, tau, gap_scaling, legacy_vrgv, static_cast<T>(pixel_offset),
      marginals, log_partition, grad_weight, static_cast<double*>(workspace));
  check_launch("soft_viterbi_forward");
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

int64_t soft_viterbi_workspace_bytes(int64_t B, int64_t T, int64_t N) {
  return 2 * B * T * N * static_cast<int64_t>(sizeof(double));
}

void soft_viterbi_forward(const void* boxes, const void* unary, const int64_t* frames,
                          const int64_t* lengths, const uint8_t* valid,
                          const double* pairwise_weight, int64_t B, int64_t T, int64_t N,
                          double tau, bool gap_scaling, bool legacy_vrgv, double pixel_offset,
                          double* marginals, double* log_partition, double* grad_weight, int dtype,
                          void* workspace, std::uintptr_t stream) {
  PYVREL_DISPATCH_FLOAT(dtype, "soft_viterbi", soft_viterbi_forward_impl, boxes, unary, frames,
                        lengths, valid, pairwise_weight, B, T, N, tau, gap_scaling, legacy_vrgv,
                        pixel_offset, marginals, log_partition, grad_weight, workspace, stream);
}

}  // namespace pyvrel::cuda
