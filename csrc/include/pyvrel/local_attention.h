// Windowed (local) attention: the window/index math and the per-query-row forward and backward
// math, shared by the CPU kernels (csrc/cpu/local_attention.cpp) and the CUDA kernels
// (csrc/cuda/local_attention.cu). Torch-free.
//
// Conventions (pyvrel.ops.local_attention documents them for users):
// - A window has `left` and `right` extents and `dilation` d, so W = left + right + 1 slots;
//   slot o (0 <= o < W) of a query whose window starts at key `start` reads key start + d * o.
// - Query i of Lq is centred on key c_i: the explicit centre, i when Lq == Lk, else
//   floor((i + 0.5) * Lk / Lq). The unshifted window starts at c_i - d * left.
// - "truncate": keys outside [0, n) (n = valid key count) are dropped. "shift": the window moves
//   by whole multiples of d, first down so it ends at or before n - 1, then (unless causal) up so
//   it starts at or after 0; keys still outside [0, n) are dropped (sequences shorter than the
//   window). Since keys grow with o, the valid slots are one contiguous range [lo, hi].
// - Scores are scale * <q_i, k_j> + bias[o]; a row without valid slot (or a padded query) has
//   output 0 and log-sum-exp -inf, and gets zero gradient.
#pragma once
#include <cmath>

#include "pyvrel/common.h"

#if defined(_OPENMP) && !defined(__CUDACC__)
#define PYVREL_PRAGMA(x) _Pragma(#x)
#define PYVREL_SIMD PYVREL_PRAGMA(omp simd)
#define PYVREL_SIMD_SUM(var) PYVREL_PRAGMA(omp simd reduction(+ : var))
#define PYVREL_SIMD_SUM4(a, b, c, d) PYVREL_PRAGMA(omp simd reduction(+ : a, b, c, d))
#else
#define PYVREL_SIMD
#define PYVREL_SIMD_SUM(var)
#define PYVREL_SIMD_SUM4(a, b, c, d)
#endif

namespace pyvrel {

// Window geometry of one call.
struct LocalWindow {
  int64_t left;      // keys before the centre (in units of dilation)
  int64_t right;     // keys after the centre (0 when causal)
  int64_t dilation;  // >= 1
  bool shift;        // "shift" boundary (else "truncate")
  bool causal;       // never shift the window up (keys stay at or before the centre)
  PYVREL_HD int64_t slots() const { return left + right + 1; }
};

// Default centre of query i when no explicit centres are given.
PYVREL_HD int64_t local_attention_default_center(int64_t i, int64_t Lq, int64_t Lk) {
  return Lq == Lk ? i : ((2 * i + 1) * Lk) / (2 * Lq);
}

// Key read by slot 0 of the window centred on key c, with n valid keys.
PYVREL_HD int64_t local_attention_window_start(const LocalWindow& w, int64_t c, int64_t n) {
  int64_t start = c - w.dilation * w.left;
  if (w.shift) {
    const int64_t end = start + w.dilation * (w.left + w.right);
    if (end > n - 1) start -= w.dilation * ((end - (n - 1) + w.dilation - 1) / w.dilation);
    if (!w.causal && start < 0) start += w.dilation * ((-start + w.dilation - 1) / w.dilation);
  }
  return start;
}

// Valid slots [*lo, *hi] (empty when *lo > *hi) of a window starting at key `start`, n valid keys.
PYVREL_HD void local_attention_valid_slots(const LocalWindow& w, int64_t start, int64_t n,
                                           int64_t* lo, int64_t* hi) {
  const int64_t d = w.dilation;
  int64_t a = 0, b = w.slots() - 1;
  if (start < 0) a = max_(a, (-start + d - 1) / d);
  if (n <= start) {
    b = -1;
  } else {
    b = min_(b, (n - 1 - start) / d);
  }
  *lo = a;
  *hi = b;
}

// Window of query i of batch row `batch`: start key and valid slot range; false when the row has
// no valid slot or the query is padding (i >= q_len).
PYVREL_HD bool local_attention_query_window(const LocalWindow& w, int64_t i, int64_t Lq, int64_t Lk,
                                            int64_t q_len, int64_t kv_len,
                                            const int64_t* centers_row, int64_t* start, int64_t* lo,
                                            int64_t* hi) {
  if (i >= q_len) return false;
  const int64_t c = centers_row ? centers_row[i] : local_attention_default_center(i, Lq, Lk);
  *start = local_attention_window_start(w, c, kv_len);
  local_attention_valid_slots(w, *start, kv_len, lo, hi);
  return *lo <= *hi;
}

// Buffers and sizes of one call (all contiguous; shapes in the comments). Shared by the CPU and
// CUDA entry points (csrc/cpu/kernels.h, csrc/cuda/kernels.h).
struct LocalAttentionArgs {
  const void* q;          // (B, H, Lq, D)
  const void* k;          // (B, H, Lk, D)
  const void* v;          // (B, H, Lk, Dv)
  const void* bias;       // (H, W) or null
  const int64_t* q_len;   // (B,) valid queries per batch row
  const int64_t* kv_len;  // (B,) valid keys per batch row
  const int64_t* centers; // (B, Lq) explicit centres, or null for the default
  void* out;              // (B, H, Lq, Dv): written by the forward, read by the backward
  void* lse;              // (B, H, Lq) log-sum-exp (float32 for half types on CUDA)
  int64_t B, H, Lq, Lk, D, Dv;
  int64_t left, right, dilation;
  bool shift, causal;
  double scale;
};

// Gradient buffers of the backward: inputs dout (and optional dlse), outputs overwritten.
struct LocalAttentionGrads {
  const void* dout;  // (B, H, Lq, Dv)
  const void* dlse;  // (B, H, Lq) or null
  void* dq;          // (B, H, Lq, D)
  void* dk;          // (B, H, Lk, D)
  void* dv;          // (B, H, Lk, Dv)
  void* dbias;       // (H, W) or null
};

template <typename T>
PYVREL_HD T local_attention_exp(T x) {
  using std::exp;
  return exp(x);
}
template <typename T>
PYVREL_HD T local_attention_log(T x) {
  using std::log;
  return log(x);
}

// Dot product of two rows of length n, accumulated in Acc.
template <typename Acc, typename T>
PYVREL_HD Acc local_attention_dot(const T* a, const T* b, int64_t n) {
  Acc s = 0;
  PYVREL_SIMD_SUM(s)
  for (int64_t d = 0; d < n; ++d) s += static_cast<Acc>(a[d]) * static_cast<Acc>(b[d]);
  return s;
}

// Scores of slots [lo, hi] of a window starting at `start`: r[o * rs] = scale * <q, key row of
// slot o> (+ bias[o]). Four slots at a time, so four independent accumulations share each load
// of q (the host compiler vectorises the channel loop).
template <typename Acc, typename T>
PYVREL_HD void local_attention_window_scores(const T* q, const T* k, int64_t D, int64_t start,
                                             int64_t dil, int64_t lo, int64_t hi, Acc scale,
                                             const T* bias, Acc* r, int64_t rs) {
  int64_t o = lo;
  for (; o + 3 <= hi; o += 4) {
    const T* k0 = k + (start + dil * o) * D;
    const T* k1 = k0 + dil * D;
    const T* k2 = k1 + dil * D;
    const T* k3 = k2 + dil * D;
    Acc s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    PYVREL_SIMD_SUM4(s0, s1, s2, s3)
    for (int64_t d = 0; d < D; ++d) {
      const Acc qd = static_cast<Acc>(q[d]);
      s0 += qd * static_cast<Acc>(k0[d]);
      s1 += qd * static_cast<Acc>(k1[d]);
      s2 += qd * static_cast<Acc>(k2[d]);
      s3 += qd * static_cast<Acc>(k3[d]);
    }
    r[o * rs] = scale * s0;
    r[(o + 1) * rs] = scale * s1;
    r[(o + 2) * rs] = scale * s2;
    r[(o + 3) * rs] = scale * s3;
  }
  for (; o <= hi; ++o)
    r[o * rs] = scale * local_attention_dot<Acc>(q, k + (start + dil * o) * D, D);
  if (bias)
    for (o = lo; o <= hi; ++o) r[o * rs] += static_cast<Acc>(bias[o]);
}

// out (n,) = c * sum_{o in [lo, hi]} weight[o * ws] * rows[o * step .. o * step + n): the
// weighted sum of the window's value (or key) rows that the forward (output) and backward (dq)
// rows share.
template <typename T, typename Acc>
PYVREL_HD void local_attention_window_combine(const Acc* weight, int64_t ws, Acc c, const T* rows,
                                              int64_t step, int64_t lo, int64_t hi, int64_t n,
                                              T* out) {
#ifdef __CUDA_ARCH__
  // one thread per row: accumulate each channel in Acc, write once
  for (int64_t d = 0; d < n; ++d) {
    Acc acc = 0;
    for (int64_t o = lo; o <= hi; ++o) acc += weight[o * ws] * static_cast<Acc>(rows[o * step + d]);
    out[d] = static_cast<T>(c * acc);
  }
#else
  // host (T == Acc): contiguous axpys over the channels, which vectorise
  for (int64_t d = 0; d < n; ++d) out[d] = T(0);
  for (int64_t o = lo; o <= hi; ++o) {
    const T g = static_cast<T>(c * weight[o * ws]);
    const T* r = rows + o * step;
    PYVREL_SIMD
    for (int64_t d = 0; d < n; ++d) out[d] += g * r[d];
  }
#endif
}

// Forward of one query row over its valid slots [lo, hi] (non-empty); a row whose slots all score
// -inf (masked by rel_bias) outputs 0 with log-sum-exp -inf.
// q (D,), k (Lk, D) and v (Lk, Dv) of this (batch, head); bias (W,) or null.
// score[o * ss] is scratch for W scores. Writes out (Dv,) and returns the log-sum-exp.
template <typename T, typename Acc>
PYVREL_HD Acc local_attention_forward_row(const LocalWindow& w, const T* q, const T* k, const T* v,
                                          const T* bias, int64_t D, int64_t Dv, Acc scale,
                                          int64_t start, int64_t lo, int64_t hi, Acc* score,
                                          int64_t ss, T* out) {
  const int64_t dil = w.dilation;
  local_attention_window_scores(q, k, D, start, dil, lo, hi, scale, bias, score, ss);
  Acc m = -INFINITY;
  for (int64_t o = lo; o <= hi; ++o) m = max_(m, score[o * ss]);
  if (m == -INFINITY) {  // every valid slot masked by a -inf bias: no key, like an empty window
    for (int64_t d = 0; d < Dv; ++d) out[d] = static_cast<T>(0.0f);
    return m;
  }
  Acc sum = 0;
  for (int64_t o = lo; o <= hi; ++o) {
    const Acc p = local_attention_exp(score[o * ss] - m);
    score[o * ss] = p;
    sum += p;
  }
  local_attention_window_combine(score, ss, Acc(1) / sum, v + start * Dv, dil * Dv, lo, hi, Dv,
                                 out);
  return m + local_attention_log(sum);
}

// Backward of one query row over its valid slots [lo, hi] (non-empty), recomputing the
// probabilities from the saved log-sum-exp. delta = <dO_i, O_i> - dLSE_i.
// Writes p[o * ss] (probabilities), ds[o * ss] (score gradients p * (dp - delta), before
// `scale`) and dq (D,) = scale * sum_o ds_o k_o. The caller scatters dk, dv and dbias.
template <typename T, typename Acc>
PYVREL_HD void local_attention_backward_row(const LocalWindow& w, const T* q, const T* k,
                                            const T* v, const T* bias, const T* dout, int64_t D,
                                            int64_t Dv, Acc scale, Acc lse, Acc delta,
                                            int64_t start, int64_t lo, int64_t hi, Acc* p, Acc* ds,
                                            int64_t ss, T* dq) {
  const int64_t dil = w.dilation;
  if (lse == -INFINITY) {  // a fully masked row (see the forward): zero gradient
    for (int64_t o = lo; o <= hi; ++o) p[o * ss] = ds[o * ss] = Acc(0);
    for (int64_t d = 0; d < D; ++d) dq[d] = static_cast<T>(0.0f);
    return;
  }
  local_attention_window_scores(q, k, D, start, dil, lo, hi, scale, bias, p, ss);
  local_attention_window_scores(dout, v, Dv, start, dil, lo, hi, Acc(1),
                                static_cast<const T*>(nullptr), ds, ss);
  for (int64_t o = lo; o <= hi; ++o) {
    const Acc prob = local_attention_exp(p[o * ss] - lse);
    p[o * ss] = prob;
    ds[o * ss] = prob * (ds[o * ss] - delta);
  }
  local_attention_window_combine(ds, ss, scale, k + start * D, dil * D, lo, hi, D, dq);
}

}  // namespace pyvrel
