// Viterbi linking on the CPU: exact max-sum DP with k disjoint paths, and the smoothed
// (log-sum-exp) forward-backward with marginals and gradients. OpenMP across problems; each
// thread reuses its buffers across problems.
//
// The IoU rows of this file divide under a select; GCC if-converts and vectorises such loops only
// without -ftrapping-math. No result changes (same IEEE operations; only floating-point traps,
// which nothing here enables, are assumed off). The pragma comes first so that every function of
// the file, the header ones included, gets it and stays inlinable.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels.h"
#include "pyvrel/viterbi.h"

namespace pyvrel::cpu {

namespace {

constexpr acc_t kNegInf = -std::numeric_limits<acc_t>::infinity();

// No more threads than problems: waking an idle team costs more than a small problem.
int team_size(int num_threads, int64_t B) {
  return static_cast<int>(B < num_threads ? (B > 0 ? B : 1) : num_threads);
}

// Link weights E[t][q][p] = lambda_t * IoU(box[t, p], box[t+1, q]) of one problem (q-major, so
// the DP over predecessors p reads contiguously).
template <typename T>
void link_weights(const T* boxes, const int64_t* frames, int64_t L, int64_t N, acc_t w,
                  bool gap_scaling, T off, std::vector<acc_t>& E) {
  E.resize(static_cast<size_t>((L > 1 ? L - 1 : 0) * N * N));
  for (int64_t t = 0; t + 1 < L; ++t) {
    const acc_t lambda = viterbi_link_weight(frames, t, w, gap_scaling);
    for (int64_t q = 0; q < N; ++q)
      for (int64_t p = 0; p < N; ++p)
        E[(t * N + q) * N + p] = viterbi_edge(lambda, boxes + 4 * (t * N + p),
                                              boxes + 4 * ((t + 1) * N + q), off);
  }
}

template <typename T>
void viterbi_forward_impl(const void* boxes_, const void* unary_, const int64_t* frames,
                          const int64_t* lengths, const uint8_t* valid, int64_t B, int64_t Tn,
                          int64_t N, int64_t k, double pairwise_weight, bool gap_scaling,
                          bool legacy_vrgv, double pixel_offset, int64_t* paths, double* scores,
                          int num_threads) {
  const auto* boxes = static_cast<const T*>(boxes_);
  const auto* unary = static_cast<const T*>(unary_);
  const T off = static_cast<T>(pixel_offset);
#pragma omp parallel num_threads(team_size(num_threads, B))
  {
    std::vector<acc_t> V(2 * N), lambda(Tn), cand(N);
    std::vector<T> area(Tn * N), row(N), x1(N), y1(N), x2(N), y2(N);
    std::vector<int32_t> back(Tn * N);
    std::vector<uint8_t> ok(Tn * N);
#pragma omp for schedule(dynamic)
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t i = 0; i < k * Tn; ++i) paths[b * k * Tn + i] = -1;
      for (int64_t r = 0; r < k; ++r) scores[b * k + r] = kNegInf;
      const int64_t L = lengths[b];
      if (L == 0) continue;
      const int64_t base = b * Tn * N;
      // Link weights are recomputed per path (IoUs on the fly): cheaper than storing L*N*N.
      for (int64_t t = 0; t + 1 < L; ++t)
        lambda[t] = viterbi_link_weight(frames + b * Tn, t, pairwise_weight, gap_scaling);
      for (int64_t i = 0; i < L * N; ++i) {
        ok[i] = valid[base + i];
        area[i] = box_area(boxes + 4 * (base + i), off);
      }
      for (int64_t r = 0; r < k; ++r) {
        // V holds two frames (previous, current); NaN-free: -inf marks "no path ends here".
        acc_t* prev = V.data();
        acc_t* cur = V.data() + N;
        for (int64_t q = 0; q < N; ++q)
          prev[q] = ok[q] ? viterbi_unary_weight(0, L, legacy_vrgv) *
                                static_cast<acc_t>(unary[base + q])
                          : kNegInf;
        for (int64_t t = 1; t < L; ++t) {
          const acc_t c = viterbi_unary_weight(t, L, legacy_vrgv);
          const T* prev_boxes = boxes + 4 * (base + (t - 1) * N);
          for (int64_t p = 0; p < N; ++p) {  // frame t - 1 as coordinate arrays
            x1[p] = prev_boxes[4 * p];
            y1[p] = prev_boxes[4 * p + 1];
            x2[p] = prev_boxes[4 * p + 2];
            y2[p] = prev_boxes[4 * p + 3];
          }
          const T* prev_area = area.data() + (t - 1) * N;
          for (int64_t q = 0; q < N; ++q) {
            int32_t arg = -1;
            acc_t best = 0;
            if (ok[t * N + q]) {
              // The IoU row first (a branch-free loop the compiler vectorises), then the max.
              const T* bq = boxes + 4 * (base + t * N + q);
              const T area_q = area[t * N + q];
              for (int64_t p = 0; p < N; ++p)
                row[p] = box_iou_unpacked(x1[p], y1[p], x2[p], y2[p], prev_area[p], bq[0], bq[1],
                                          bq[2], bq[3], area_q, off);
              // cand = -inf exactly where prev is -inf (IoU rows are finite), so the max over
              // all p and the first p reaching it are the strict-> scan over finite candidates.
              acc_t m = kNegInf;
              for (int64_t p = 0; p < N; ++p) {
                cand[p] = prev[p] + lambda[t - 1] * static_cast<acc_t>(row[p]);
                m = max_(m, cand[p]);
              }
              if (m != kNegInf) {
                best = m;
                for (arg = 0; cand[arg] != m; ++arg) {
                }
              }
            }
            back[t * N + q] = arg;
            cur[q] = arg >= 0 ? c * static_cast<acc_t>(unary[base + t * N + q]) + best : kNegInf;
          }
          std::swap(prev, cur);
        }
        int64_t end = -1;
        for (int64_t q = 0; q < N; ++q)
          if (prev[q] != kNegInf && (end < 0 || prev[q] > prev[end])) end = q;
        if (end < 0) break;  // some frame has no box left
        scores[b * k + r] = prev[end];
        for (int64_t t = L - 1; t >= 0; --t) {
          paths[(b * k + r) * Tn + t] = end;
          ok[t * N + end] = 0;
          end = t > 0 ? back[t * N + end] : -1;
        }
      }
    }
  }
}

template <typename T>
void soft_viterbi_forward_impl(const void* boxes_, const void* unary_, const int64_t* frames,
                               const int64_t* lengths, const uint8_t* valid,
                               const double* pairwise_weight, int64_t B, int64_t Tn, int64_t N,
                               double tau, bool gap_scaling, bool legacy_vrgv, double pixel_offset,
                               double* marginals, double* log_partition, double* grad_weight,
                               int num_threads) {
  const auto* boxes = static_cast<const T*>(boxes_);
  const auto* unary = static_cast<const T*>(unary_);
  const T off = static_cast<T>(pixel_offset);
  const acc_t inv_tau = acc_t(1) / tau;
#pragma omp parallel num_threads(team_size(num_threads, B))
  {
    std::vector<acc_t> E, alpha(Tn * N), beta(Tn * N), node(Tn * N), tmp(N);
#pragma omp for schedule(dynamic)
    for (int64_t b = 0; b < B; ++b) {
      const int64_t L = lengths[b], base = b * Tn * N;
      for (int64_t i = 0; i < Tn * N; ++i) marginals[base + i] = 0;
      log_partition[b] = kNegInf;
      grad_weight[b] = 0;
      if (L == 0) continue;
      link_weights(boxes + 4 * base, frames + b * Tn, L, N, pairwise_weight[b], gap_scaling, off,
                   E);
      for (int64_t t = 0; t < L; ++t)
        for (int64_t q = 0; q < N; ++q)
          node[t * N + q] = valid[base + t * N + q]
                                ? viterbi_unary_weight(t, L, legacy_vrgv) *
                                      static_cast<acc_t>(unary[base + t * N + q]) * inv_tau
                                : kNegInf;
      // Forward: alpha[t][q] = node[t][q] + lse_p(alpha[t-1][p] + E[t-1][q][p] / tau).
      for (int64_t q = 0; q < N; ++q) alpha[q] = node[q];
      for (int64_t t = 1; t < L; ++t)
        for (int64_t q = 0; q < N; ++q) {
          const acc_t* e = E.data() + ((t - 1) * N + q) * N;
          for (int64_t p = 0; p < N; ++p)  // -inf stays -inf (padded boxes never enter)
            tmp[p] = alpha[(t - 1) * N + p] == kNegInf ? kNegInf
                                                       : alpha[(t - 1) * N + p] + e[p] * inv_tau;
          alpha[t * N + q] = node[t * N + q] + log_sum_exp(tmp.data(), N);
        }
      const acc_t log_z = log_sum_exp(alpha.data() + (L - 1) * N, N);
      if (log_z == kNegInf) continue;  // no path: some frame has no valid box
      // Backward: beta[t][p] = lse_q(E[t][q][p] / tau + node[t+1][q] + beta[t+1][q]).
      for (int64_t p = 0; p < N; ++p) beta[(L - 1) * N + p] = 0;
      for (int64_t t = L - 2; t >= 0; --t)
        for (int64_t p = 0; p < N; ++p) {
          for (int64_t q = 0; q < N; ++q)
            tmp[q] = node[(t + 1) * N + q] == kNegInf
                         ? kNegInf
                         : E[(t * N + q) * N + p] * inv_tau + node[(t + 1) * N + q] +
                               beta[(t + 1) * N + q];
          beta[t * N + p] = log_sum_exp(tmp.data(), N);
        }
      for (int64_t i = 0; i < L * N; ++i)
        marginals[base + i] = node[i] == kNegInf ? 0 : std::exp(alpha[i] + beta[i] - log_z);
      // d log Z / d w = E[sum_t gamma_t IoU_t] = sum_t sum_pq xi_t(p, q) * E_t[q][p] / w, with
      // E / w computed as gamma_t * IoU (w may be 0).
      acc_t gw = 0;
      for (int64_t t = 0; t + 1 < L; ++t) {
        const acc_t gamma = viterbi_gap_factor(frames + b * Tn, t, gap_scaling);
        for (int64_t q = 0; q < N; ++q) {
          const acc_t right = node[(t + 1) * N + q] + beta[(t + 1) * N + q];
          if (right == kNegInf) continue;
          for (int64_t p = 0; p < N; ++p) {
            if (alpha[t * N + p] == kNegInf) continue;
            const acc_t e = E[(t * N + q) * N + p];
            const acc_t xi = std::exp(alpha[t * N + p] + e * inv_tau + right - log_z);
            gw += xi * viterbi_edge(gamma, boxes + 4 * (base + t * N + p),
                                    boxes + 4 * (base + (t + 1) * N + q), off);
          }
        }
      }
      log_partition[b] = tau * log_z;
      grad_weight[b] = gw;
    }
  }
}

}  // namespace

void viterbi_forward(const void* boxes, const void* unary, const int64_t* frames,
                     const int64_t* lengths, const uint8_t* valid, int64_t B, int64_t T, int64_t N,
                     int64_t k, double pairwise_weight, bool gap_scaling, bool legacy_vrgv,
                     double pixel_offset, int64_t* paths, double* scores, int dtype,
                     int num_threads) {
  PYVREL_DISPATCH_FLOAT(dtype, "viterbi_link", viterbi_forward_impl, boxes, unary, frames, lengths,
                        valid, B, T, N, k, pairwise_weight, gap_scaling, legacy_vrgv, pixel_offset,
                        paths, scores, num_threads);
}

void soft_viterbi_forward(const void* boxes, const void* unary, const int64_t* frames,
                          const int64_t* lengths, const uint8_t* valid,
                          const double* pairwise_weight, int64_t B, int64_t T, int64_t N,
                          double tau, bool gap_scaling, bool legacy_vrgv, double pixel_offset,
                          double* marginals, double* log_partition, double* grad_weight, int dtype,
                          int num_threads) {
  PYVREL_DISPATCH_FLOAT(dtype, "soft_viterbi", soft_viterbi_forward_impl, boxes, unary, frames,
                        lengths, valid, pairwise_weight, B, T, N, tau, gap_scaling, legacy_vrgv,
                        pixel_offset, marginals, log_partition, grad_weight, num_threads);
}

}  // namespace pyvrel::cpu
