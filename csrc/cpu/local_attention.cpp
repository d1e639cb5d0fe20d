// Windowed local attention on the CPU: fused banded forward (each query reads exactly its window,
// softmax saved as log-sum-exp) and backward (recomputes the probabilities from the log-sum-exp).
// The window and per-row math is in pyvrel/local_attention.h, shared with the CUDA kernels.
#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels.h"
#include "parallel.h"
#include "pyvrel/local_attention.h"

namespace pyvrel::cpu {

namespace {

constexpr int64_t kQueryTile = 64;  // queries per OpenMP work item of the forward

template <typename scalar_t>
void forward_impl(const LocalAttentionArgs& a, int num_threads) {
  const auto* q = static_cast<const scalar_t*>(a.q);
  const auto* k = static_cast<const scalar_t*>(a.k);
  const auto* v = static_cast<const scalar_t*>(a.v);
  const auto* bias = static_cast<const scalar_t*>(a.bias);
  auto* out = static_cast<scalar_t*>(a.out);
  auto* lse = static_cast<scalar_t*>(a.lse);
  const LocalWindow w{a.left, a.right, a.dilation, a.shift, a.causal};
  const int64_t W = w.slots(), tiles = (a.Lq + kQueryTile - 1) / kQueryTile;
  const auto scale = static_cast<scalar_t>(a.scale);
  ThreadBuffers<scalar_t> scores(num_threads, static_cast<size_t>(W));
#pragma omp parallel num_threads(num_threads)
  {
    scalar_t* score = scores.mine();
#pragma omp for schedule(dynamic, 4)
    for (int64_t item = 0; item < a.B * a.H * tiles; ++item) {
      const int64_t bh = item / tiles, tile = item % tiles, b = bh / a.H, h = bh % a.H;
      const scalar_t* kb = k + bh * a.Lk * a.D;
      const scalar_t* vb = v + bh * a.Lk * a.Dv;
      const scalar_t* bias_h = bias ? bias + h * W : nullptr;
      const int64_t* centers_row = a.centers ? a.centers + b * a.Lq : nullptr;
      const int64_t i1 = std::min(a.Lq, (tile + 1) * kQueryTile);
      for (int64_t i = tile * kQueryTile; i < i1; ++i) {
        const int64_t row = bh * a.Lq + i;
        int64_t start = 0, lo = 0, hi = -1;
        if (!local_attention_query_window(w, i, a.Lq, a.Lk, a.q_len[b], a.kv_len[b], centers_row,
                                          &start, &lo, &hi)) {
          std::fill(out + row * a.Dv, out + (row + 1) * a.Dv, scalar_t(0));
          lse[row] = -INFINITY;
          continue;
        }
        lse[row] = local_attention_forward_row<scalar_t, scalar_t>(
            w, q + row * a.D, kb, vb, bias_h, a.D, a.Dv, scale, start, lo, hi, score, 1,
            out + row * a.Dv);
      }
    }
  }
}

// One (batch, head) per work item: its dk, dv rows and its dbias partial are written by that item
// only, in query order, so the result does not depend on the thread count.
template <typename scalar_t>
void backward_impl(const LocalAttentionArgs& a, const LocalAttentionGrads& g, int num_threads) {
  const auto* q = static_cast<const scalar_t*>(a.q);
  const auto* k = static_cast<const scalar_t*>(a.k);
  const auto* v = static_cast<const scalar_t*>(a.v);
  const auto* bias = static_cast<const scalar_t*>(a.bias);
  const auto* out = static_cast<const scalar_t*>(a.out);
  const auto* lse = static_cast<const scalar_t*>(a.lse);
  const auto* dout = static_cast<const scalar_t*>(g.dout);
  const auto* dlse = static_cast<const scalar_t*>(g.dlse);
  auto* dq = static_cast<scalar_t*>(g.dq);
  auto* dk = static_cast<scalar_t*>(g.dk);
  auto* dv = static_cast<scalar_t*>(g.dv);
  auto* dbias = static_cast<scalar_t*>(g.dbias);
  const LocalWindow w{a.left, a.right, a.dilation, a.shift, a.causal};
  const int64_t W = w.slots(), BH = a.B * a.H;
  const auto scale = static_cast<scalar_t>(a.scale);
  std::vector<scalar_t> dbias_part(dbias ? static_cast<size_t>(BH * W) : 0, scalar_t(0));
  ThreadBuffers<scalar_t> scratch(num_threads, 2 * static_cast<size_t>(W));
#pragma omp parallel num_threads(num_threads)
  {
    scalar_t* p = scratch.mine();
    scalar_t* ds = p + W;
#pragma omp for schedule(dynamic, 1)
    for (int64_t bh = 0; bh < BH; ++bh) {
      const int64_t b = bh / a.H, h = bh % a.H;
      const scalar_t* kb = k + bh * a.Lk * a.D;
      const scalar_t* vb = v + bh * a.Lk * a.Dv;
      scalar_t* dkb = dk + bh * a.Lk * a.D;
      scalar_t* dvb = dv + bh * a.Lk * a.Dv;
      std::fill(dkb, dkb + a.Lk * a.D, scalar_t(0));
      std::fill(dvb, dvb + a.Lk * a.Dv, scalar_t(0));
      const scalar_t* bias_h = bias ? bias + h * W : nullptr;
      const int64_t* centers_row = a.centers ? a.centers + b * a.Lq : nullptr;
      for (int64_t i = 0; i < a.Lq; ++i) {
        const int64_t row = bh * a.Lq + i;
        scalar_t* dqi = dq + row * a.D;
        int64_t start = 0, lo = 0, hi = -1;
        if (!local_attention_query_window(w, i, a.Lq, a.Lk, a.q_len[b], a.kv_len[b], centers_row,
                                          &start, &lo, &hi)) {
          std::fill(dqi, dqi + a.D, scalar_t(0));
          continue;
        }
        const scalar_t* qi = q + row * a.D;
        const scalar_t* doi = dout + row * a.Dv;
        scalar_t delta = local_attention_dot<scalar_t>(doi, out + row * a.Dv, a.Dv);
        if (dlse) delta -= dlse[row];
        local_attention_backward_row<scalar_t, scalar_t>(w, qi, kb, vb, bias_h, doi, a.D, a.Dv,
                                                         scale, lse[row], delta, start, lo, hi,
                                                         p, ds, 1, dqi);
        for (int64_t o = lo; o <= hi; ++o) {
          const int64_t j = start + a.dilation * o;
          const scalar_t gk = scale * ds[o], gv = p[o];
          scalar_t* dkj = dkb + j * a.D;
          scalar_t* dvj = dvb + j * a.Dv;
          PYVREL_SIMD
          for (int64_t d = 0; d < a.D; ++d) dkj[d] += gk * qi[d];
          PYVREL_SIMD
          for (int64_t d = 0; d < a.Dv; ++d) dvj[d] += gv * doi[d];
          if (dbias) dbias_part[bh * W + o] += ds[o];
        }
      }
    }
  }
  if (dbias) {  // sum the (batch, head) partials over the batch, in batch order
    for (int64_t h = 0; h < a.H; ++h)
      for (int64_t o = 0; o < W; ++o) {
        scalar_t s = 0;
        for (int64_t b = 0; b < a.B; ++b) s += dbias_part[(b * a.H + h) * W + o];
        dbias[h * W + o] = s;
      }
  }
}

}  // namespace

void local_attention_forward(const LocalAttentionArgs& args, int dtype, int num_threads) {
  PYVREL_DISPATCH_FLOAT(dtype, "local_attention_forward", forward_impl, args, num_threads);
}

void local_attention_backward(const LocalAttentionArgs& args, const LocalAttentionGrads& grads,
                              int dtype, int num_threads) {
  PYVREL_DISPATCH_FLOAT(dtype, "local_attention_backward", backward_impl, args, grads, num_threads);
}

}  // namespace pyvrel::cpu
