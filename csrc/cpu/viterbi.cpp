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
#include "parallel.h"
#include "pyvrel/viterbi.h"

namespace pyvrel::cpu {

namespace {

constexpr acc_t kNegInf = -std::numeric_limits<acc_t>::infinity();

// No more threads than problems: waking an idle team costs more than a small problem.
int team_size(int num_threads, int64_t B) {
  return static_cast<int>(B < num_threads ? (B > 0 ? B : 1) : num_threads);
}

// Link weights E[q][p] = lambda_t * IoU(box[t, p], box[t+1, q]) of link t of one problem
// (q-major, so the DP over predecessors p reads contiguously).
template <typename T>
void link_weights(const T* boxes, const int64_t* frames, int64_t t, int64_t N, acc_t w,
                  bool gap_scaling, T off, acc_t* E) {
  const acc_t lambda = viterbi_link_weight(frames, t, w, gap_scaling);
  for (int64_t q = 0; q < N; ++q)
    for (int64_t p = 0; p < N; ++p)
      E[q * N + p] = viterbi_edge(lambda, boxes + 4 * (t * N + p), boxes + 4 * ((t + 1) * N + q), off);
}

// The soft Viterbi keeps all link weights of a problem when they fit in this many values, else
// it recomputes each link's weights in the backward pass.
constexpr int64_t kLinkBudget = int64_t(1) << 23;

template <typename T>
void viterbi_forward_impl(const void* boxes_, const void* unary_, const int64_t* frames,
                          const int64_t* lengths, const uint8_t* valid, int64_t B, int64_t Tn,
                          int64_t N, int64_t k, double pairwise_weight, bool gap_scaling,
                          bool legacy_vrgv, double pixel_offset, int64_t* paths, double* scores,
                          int num_threads) {
  const auto* boxes = static_cast<const T*>(boxes_);
  const auto* unary = static_cast<const T*>(unary_);
  const T off = static_cast<T>(pixel_offset);
  const int team = team_size(num_threads, B);
  // Per-thread buffers, allocated before the region: V (2N), lambda (Tn), cand (N); area (Tn N),
  // row, x1, y1, x2, y2 (N each); back pointers and available boxes (Tn N each).
  ThreadBuffers<acc_t> acc_buffers(team, static_cast<size_t>(3 * N + Tn));
  ThreadBuffers<T> box_buffers(team, static_cast<size_t>(Tn * N + 5 * N));
  ThreadBuffers<int32_t> back_buffers(team, static_cast<size_t>(Tn * N));
  ThreadBuffers<uint8_t> ok_buffers(team, static_cast<size_t>(Tn * N));
#pragma omp parallel num_threads(team)
  {
    acc_t* V = acc_buffers.mine();
    acc_t* lambda = V + 2 * N;
    acc_t* cand = lambda + Tn;
    T* area = box_buffers.mine();
    T* row = area + Tn * N;
    T* x1 = row + N;
    T* y1 = x1 + N;
    T* x2 = y1 + N;
    T* y2 = x2 + N;
    int32_t* back = back_buffers.mine();
    uint8_t* ok = ok_buffers.mine();
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
        acc_t* prev = V;
        acc_t* cur = V + N;
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
          const T* prev_area = area + (t - 1) * N;
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

// The DP runs on scores (path-score units), with log-sum-exps at temperature tau (soft_max):
// nothing is multiplied by 1 / tau before a difference is taken, and the marginals (and the link
// posteriors of the weight gradient) are normalised per frame (per link), where they sum to 1.
// So tau -> 0 gives the hard path's marginals and score instead of overflow or cancellation.
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
  const int64_t links = Tn > 1 ? Tn - 1 : 1;
  const acc_t inv_tau = soft_max_scale(tau);
  const bool keep_links = links * N * N <= kLinkBudget;
  const int team = team_size(num_threads, B);
  // Per-thread buffers, allocated before the region: link weights, alpha, beta, node, tmp.
  const size_t e_size = static_cast<size_t>((keep_links ? links : 1) * N * N);
  ThreadBuffers<acc_t> buffers(team, e_size + static_cast<size_t>(3 * Tn * N + N * N));
#pragma omp parallel num_threads(team)
  {
    acc_t* E = buffers.mine();
    acc_t* alpha = E + e_size;
    acc_t* beta = alpha + Tn * N;
    acc_t* node = beta + Tn * N;
    acc_t* tmp = node + Tn * N;  // N * N
#pragma omp for schedule(dynamic)
    for (int64_t b = 0; b < B; ++b) {
      const int64_t L = lengths[b], base = b * Tn * N;
      const T* bx = boxes + 4 * base;
      const int64_t* fr = frames + b * Tn;
      for (int64_t i = 0; i < Tn * N; ++i) marginals[base + i] = 0;
      log_partition[b] = kNegInf;
      grad_weight[b] = 0;
      if (L == 0) continue;
      // weights of link t: computed by the forward pass, kept or recomputed by the backward one
      auto link = [&](int64_t t, bool forward) -> const acc_t* {
        acc_t* e = keep_links ? E + t * N * N : E;
        if (forward || !keep_links) link_weights(bx, fr, t, N, pairwise_weight[b], gap_scaling, off, e);
        return e;
      };
      for (int64_t t = 0; t < L; ++t)
        for (int64_t q = 0; q < N; ++q)
          node[t * N + q] = valid[base + t * N + q]
                                ? viterbi_unary_weight(t, L, legacy_vrgv) *
                                      static_cast<acc_t>(unary[base + t * N + q])
                                : kNegInf;
      // Forward: alpha[t][q] = node[t][q] + soft_max_p(alpha[t-1][p] + E[t-1][q][p]).
      for (int64_t q = 0; q < N; ++q) alpha[q] = node[q];
      for (int64_t t = 1; t < L; ++t) {
        const acc_t* e = link(t - 1, true);
        for (int64_t q = 0; q < N; ++q) {
          for (int64_t p = 0; p < N; ++p)  // -inf stays -inf (padded boxes never enter)
            tmp[p] = alpha[(t - 1) * N + p] == kNegInf ? kNegInf : alpha[(t - 1) * N + p] + e[q * N + p];
          alpha[t * N + q] = node[t * N + q] + soft_max(tmp, N, tau);
        }
      }
      const acc_t log_z = soft_max(alpha + (L - 1) * N, N, tau);
      if (log_z == kNegInf) continue;  // no path: some frame has no valid box
      // Backward: beta[t][p] = soft_max_q(E[t][q][p] + node[t+1][q] + beta[t+1][q]), and the
      // weight gradient d log Z / d w = sum_t sum_pq xi_t(p, q) * gamma_t * IoU, where the link
      // posterior xi_t is the softmax over (p, q) of alpha[t][p] + E[t][q][p] + node/beta[t+1][q].
      for (int64_t p = 0; p < N; ++p) beta[(L - 1) * N + p] = 0;
      acc_t gw = 0;
      for (int64_t t = L - 2; t >= 0; --t) {
        const acc_t* e = link(t, false);
        for (int64_t p = 0; p < N; ++p) {
          for (int64_t q = 0; q < N; ++q)
            tmp[q] = node[(t + 1) * N + q] == kNegInf
                         ? kNegInf
                         : e[q * N + p] + node[(t + 1) * N + q] + beta[(t + 1) * N + q];
          beta[t * N + p] = soft_max(tmp, N, tau);
        }
        for (int64_t q = 0; q < N; ++q) {
          const acc_t right = node[(t + 1) * N + q] + beta[(t + 1) * N + q];
          for (int64_t p = 0; p < N; ++p)
            tmp[q * N + p] = right == kNegInf || alpha[t * N + p] == kNegInf
                                 ? kNegInf
                                 : alpha[t * N + p] + e[q * N + p] + right;
        }
        const acc_t m = max_of(tmp, N * N);
        if (m == kNegInf) continue;
        const acc_t gamma = viterbi_gap_factor(fr, t, gap_scaling);
        acc_t sum = 0, dot = 0;
        for (int64_t q = 0; q < N; ++q)
          for (int64_t p = 0; p < N; ++p) {
            if (tmp[q * N + p] == kNegInf) continue;
            const acc_t xi = std::exp((tmp[q * N + p] - m) * inv_tau);
            sum += xi;
            dot += xi * viterbi_edge(gamma, bx + 4 * (t * N + p), bx + 4 * ((t + 1) * N + q), off);
          }
        gw += dot / sum;
      }
      // Marginals: per frame, the softmax over its boxes of alpha + beta (they sum to 1).
      for (int64_t t = 0; t < L; ++t) {
        for (int64_t q = 0; q < N; ++q)
          tmp[q] = node[t * N + q] == kNegInf ? kNegInf : alpha[t * N + q] + beta[t * N + q];
        const acc_t m = max_of(tmp, N);
        acc_t sum = 0;
        for (int64_t q = 0; q < N; ++q) {
          tmp[q] = tmp[q] == kNegInf ? 0 : std::exp((tmp[q] - m) * inv_tau);
          sum += tmp[q];
        }
        for (int64_t q = 0; q < N; ++q) marginals[base + t * N + q] = tmp[q] / sum;
      }
      log_partition[b] = log_z;
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
