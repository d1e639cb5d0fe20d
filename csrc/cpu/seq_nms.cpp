// Seq-NMS on the CPU: exact select-rescore-suppress iterations per video, OpenMP across videos.
//
// Links are built once per frame pair (in parallel over (video, frame)) as compressed successor
// lists. Suppression in "remove" mode deletes every link of a box, so one `cut` flag per box and
// a count of live incoming links replace edits of the graph. After each iteration the suffix DP
// is updated incrementally: only suppressed/rescored boxes and, transitively, the predecessors of
// boxes whose value changed are recomputed (frames after the path never change).
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels.h"
#include "parallel.h"
#include "pyvrel/seq_nms.h"
#include "pyvrel/seq_nms_block.h"

namespace pyvrel::cpu {

namespace {

// Successors of the boxes of one frame: box i links to adj[off[i] .. off[i + 1]). Offsets are
// 64-bit: N^2 links of a frame pair exceed 2^31 from N = 46 341 boxes.
struct FrameLinks {
  std::vector<int64_t> off;
  std::vector<int32_t> adj;
};

// Links of frame t to frame t + 1 (boxes/valid/labels point at frame t; frame t + 1 follows at
// + N). When the threshold requires a positive IoU, candidates are pruned exactly: boxes of frame
// t + 1 sorted by x1 give, per box, a prefix that can overlap it in x (x_overlap_possible, a
// necessary condition under the kernel's own rounding) and a conservative lower end (x1 of a
// box overlapping it is above its x1 minus the widest box, with slack far above rounding).
template <typename T>
void build_links(const T* boxes, const uint8_t* valid, const int64_t* labels, int64_t N, T off,
                 T thr, bool strict, std::vector<int32_t>& order, FrameLinks& out) {
  const T* next = boxes + 4 * N;
  out.off.assign(N + 1, 0);
  out.adj.clear();
  auto link = [&](int64_t i, int64_t j) {
    return seq_nms_link(boxes + 4 * i, next + 4 * j, labels != nullptr ? labels + i : nullptr,
                        labels != nullptr ? labels + N + j : nullptr, off, thr, strict);
  };
  const bool prune = strict || thr > T(0);  // else IoU 0 links too: test every pair
  T widest = 0;
  order.clear();
  for (int64_t j = 0; j < N; ++j)
    if (valid[N + j]) {
      order.push_back(static_cast<int32_t>(j));
      widest = max_(widest, next[4 * j + 2] - next[4 * j]);
    }
  std::sort(order.begin(), order.end(),
            [&](int32_t a, int32_t b) { return next[4 * a] < next[4 * b]; });
  for (int64_t i = 0; i < N; ++i) {
    const size_t first = out.adj.size();
    if (valid[i] && !prune) {
      for (const int32_t j : order)
        if (link(i, j)) out.adj.push_back(j);
    } else if (valid[i]) {
      const T x1 = boxes[4 * i], x2 = boxes[4 * i + 2];
      const T slack = (std::abs(x1) + widest + off + T(1)) * T(1e-3);
      const T low = x1 - off - widest - slack;
      auto lo = std::lower_bound(order.begin(), order.end(), low,
                                 [&](int32_t j, T v) { return next[4 * j] < v; });
      auto hi = std::partition_point(lo, order.end(), [&](int32_t j) {
        return x_overlap_possible(x2, next[4 * j], off);
      });
      for (auto it = lo; it != hi; ++it)
        if (x_overlap_possible(next[4 * *it + 2], x1, off) && link(i, *it)) out.adj.push_back(*it);
    }
    std::sort(out.adj.begin() + first, out.adj.end());  // ascending j: the DP's tie rule
    out.off[i + 1] = static_cast<int64_t>(out.adj.size());
  }
}

struct VideoOut {
  int64_t* seq_id;      // (T, N)
  int64_t* seq_count;   // scalar
  int64_t* seq_start;   // (Kcap,)
  int64_t* seq_len;     // (Kcap,)
  double* seq_score;    // (Kcap,)
  int64_t* nodes;       // (node_cap,)
  int64_t* nodes_needed;
};

template <typename T>
void seq_nms_video(const T* boxes, const T* scores, const uint8_t* valid, const FrameLinks* links,
                   int64_t Tn, int64_t N, T off, T supp_thr, bool strict, int rescore, int suppress,
                   int64_t max_sequences, double min_score, T* scores_out, int64_t Kcap,
                   int64_t node_cap, const VideoOut& out) {
  const int64_t TN = Tn * N;
  std::vector<acc_t> s(TN), g(TN, 0);
  std::vector<int32_t> nxt(TN, -1), in_cnt(TN, 0);
  std::vector<uint8_t> cut(TN, 0), dirty(TN, 0);
  std::vector<std::vector<int32_t>> dirty_list(Tn);
  for (int64_t k = 0; k < TN; ++k) {
    s[k] = valid[k] ? static_cast<acc_t>(scores[k]) : acc_t(0);
    out.seq_id[k] = -1;
  }
  // Predecessors: box j of frame t + 1 is linked from pred_adj[pred_off[(t+1)*N + j] ...).
  std::vector<int64_t> pred_off(TN + 1, 0);
  std::vector<int32_t> pred_adj;
  for (int64_t t = 0; t + 1 < Tn; ++t)
    for (int64_t e = 0; e < links[t].off[N]; ++e) ++in_cnt[(t + 1) * N + links[t].adj[e]];
  for (int64_t k = 0; k < TN; ++k) pred_off[k + 1] = pred_off[k] + in_cnt[k];
  pred_adj.resize(pred_off[TN]);
  {
    std::vector<int64_t> fill(pred_off.begin(), pred_off.end() - 1);
    for (int64_t t = 0; t + 1 < Tn; ++t)
      for (int64_t i = 0; i < N; ++i)
        for (int64_t e = links[t].off[i]; e < links[t].off[i + 1]; ++e)
          pred_adj[fill[(t + 1) * N + links[t].adj[e]]++] = static_cast<int32_t>(i);
  }

  // Recomputes g and nxt of box i of frame t; returns whether either changed.
  auto dp_node = [&](int64_t t, int64_t i) {
    const int64_t k = t * N + i;
    acc_t best = 0;
    int32_t arg = -1;
    if (t + 1 < Tn && !cut[k]) {
      const FrameLinks& fl = links[t];
      for (int64_t e = fl.off[i]; e < fl.off[i + 1]; ++e) {
        const int64_t j = (t + 1) * N + fl.adj[e];
        if (!cut[j] && dp_improves(g[j], best, arg >= 0)) {
          best = g[j];
          arg = fl.adj[e];
        }
      }
    }
    const acc_t value = arg >= 0 ? s[k] + best : s[k];
    const bool changed = value != g[k] || arg != nxt[k];
    g[k] = value;
    nxt[k] = arg;
    return changed;
  };
  auto mark = [&](int64_t t, int64_t i) {
    if (!dirty[t * N + i]) {
      dirty[t * N + i] = 1;
      dirty_list[t].push_back(static_cast<int32_t>(i));
    }
  };
  auto mark_preds = [&](int64_t t, int64_t i) {  // the predecessors (frame t - 1) of box (t, i)
    for (int64_t e = pred_off[t * N + i]; e < pred_off[t * N + i + 1]; ++e) mark(t - 1, pred_adj[e]);
  };
  for (int64_t t = Tn - 1; t >= 0; --t)
    for (int64_t i = 0; i < N; ++i)
      if (valid[t * N + i]) dp_node(t, i);

  int64_t K = 0, needed = 0;
  std::vector<int32_t> path;
  while ((max_sequences <= 0 || K < max_sequences) && K < Kcap) {
    acc_t best_value = min_score;
    int64_t root = -1;
    for (int64_t k = 0; k < TN; ++k)
      if (valid[k] && (cut[k] || in_cnt[k] == 0) && g[k] > best_value) {
        best_value = g[k];
        root = k;
      }
    if (root < 0) break;
    const int64_t t0 = root / N;
    path.assign(1, static_cast<int32_t>(root % N));
    while (nxt[(t0 + path.size() - 1) * N + path.back()] >= 0)
      path.push_back(nxt[(t0 + path.size() - 1) * N + path.back()]);
    const int64_t len = static_cast<int64_t>(path.size());
    if (len <= 1) break;
    out.seq_start[K] = t0;
    out.seq_len[K] = len;
    out.seq_score[K] = best_value;
    if (needed + len <= node_cap)  // else the caller retries with room for `needed` nodes
      for (int64_t d = 0; d < len; ++d) out.nodes[needed + d] = path[d];
    needed += len;
    acc_t max_score = s[t0 * N + path[0]];
    for (int64_t d = 1; d < len; ++d) max_score = max_(max_score, s[(t0 + d) * N + path[d]]);
    const acc_t new_score = seq_nms_rescored(rescore, best_value, max_score, len);
    for (int64_t d = 0; d < len; ++d) {
      const int64_t t = t0 + d, p = path[d];
      if (out.seq_id[t * N + p] < 0) out.seq_id[t * N + p] = K;
      if (rescore != static_cast<int>(SeqNmsRescore::None)) s[t * N + p] = new_score;
      mark(t, p);
      const T* pbox = boxes + 4 * (t * N + p);
      for (int64_t q = 0; q < N; ++q) {
        const int64_t k = t * N + q;
        if (!valid[k] || !seq_nms_suppressed(pbox, boxes + 4 * k, q == p, off, supp_thr, strict))
          continue;
        if (suppress == static_cast<int>(SeqNmsSuppress::Zero)) {
          s[k] = 0;
          mark(t, q);
        } else if (!cut[k]) {
          cut[k] = 1;
          mark(t, q);
          if (t > 0) mark_preds(t, q);  // they lose a successor
          if (t + 1 < Tn) {
            const FrameLinks& fl = links[t];
            for (int64_t e = fl.off[q]; e < fl.off[q + 1]; ++e) --in_cnt[(t + 1) * N + fl.adj[e]];
          }
        }
      }
    }
    ++K;
    // Incremental suffix DP: only boxes whose score, cut state or successors changed are
    // recomputed, frame by frame downwards; a changed value dirties its predecessors.
    for (int64_t t = t0 + len - 1; t >= 0; --t) {
      for (const int32_t i : dirty_list[t]) {
        dirty[t * N + i] = 0;
        if (dp_node(t, i) && t > 0) mark_preds(t, i);
      }
      dirty_list[t].clear();
    }
  }
  for (int64_t k = 0; k < TN; ++k)
    if (valid[k]) scores_out[k] = static_cast<T>(s[k]);
  *out.seq_count = K;
  *out.nodes_needed = needed;
}

template <typename T>
void seq_nms_forward_impl(const SeqNmsArgs& a, int num_threads) {
  const int64_t B = a.B, Tn = a.Tn, N = a.N, Kcap = a.Kcap;
  const auto* boxes = static_cast<const T*>(a.boxes);
  const auto* scores = static_cast<const T*>(a.scores);
  auto* scores_out = static_cast<T*>(a.scores_out);
  const T off = static_cast<T>(a.pixel_offset);
  const T link_thr = static_cast<T>(a.link_threshold);
  const T supp_thr = static_cast<T>(a.suppress_threshold);
  const int64_t pairs = Tn > 1 ? Tn - 1 : 0;
  std::vector<FrameLinks> links(B * (pairs > 0 ? pairs : 1));
  // No more threads than videos, in both phases: the select loop of a video is serial, and team
  // members left idle after a parallel link phase spin-wait, which slows the one working thread
  // on a busy machine far more than the parallel links gain (measured on 2 cores).
  const int team = static_cast<int>(B < num_threads ? (B > 0 ? B : 1) : num_threads);
  // Links and the per-video state grow with the data: their allocations may fail inside the
  // regions, where ParallelErrors catches them (rethrown below, as MemoryError in Python).
  ParallelErrors errors;
#pragma omp parallel num_threads(team)
  {
    std::vector<int32_t> order;
#pragma omp for schedule(dynamic)
    for (int64_t bt = 0; bt < B * pairs; ++bt) {
      const int64_t b = bt / pairs, t = bt % pairs;
      const int64_t frame = (b * Tn + t) * N;
      errors.run([&] {
        build_links(boxes + 4 * frame, a.valid + frame, a.labels != nullptr ? a.labels + frame : nullptr,
                    N, off, link_thr, a.strict, order, links[b * pairs + t]);
      });
    }
  }
  errors.rethrow();
#pragma omp parallel num_threads(team)
  {
#pragma omp for schedule(dynamic)
    for (int64_t b = 0; b < B; ++b) errors.run([&] {
      const int64_t v = b * Tn * N;
      const VideoOut out{a.seq_id + v,          a.seq_count + b,         a.seq_start + b * Kcap,
                         a.seq_len + b * Kcap,  a.seq_score + b * Kcap,  a.nodes + b * a.node_cap,
                         a.nodes_needed + b};
      seq_nms_video(boxes + 4 * v, scores + v, a.valid + v, links.data() + b * pairs, Tn, N, off,
                    supp_thr, a.strict, a.rescore, a.suppress, a.max_sequences, a.min_score,
                    scores_out + v, Kcap, a.node_cap, out);
    });
  }
  errors.rethrow();
}

// The CUDA kernel's block algorithm (pyvrel/seq_nms_block.h) run by a one-thread block: its
// barriers are no-ops, its reductions and atomics plain operations.
struct SerialBlock {
  acc_t* stage_g;
  uint8_t* stage_live;
  SeqNmsShared* sh;
  int64_t tid() const { return 0; }
  int64_t size() const { return 1; }
  bool leader() const { return true; }
  void sync() const {}
  bool sync_or(bool p) const { return p; }
  void best(acc_t&, int64_t&) const {}
  void dec(int32_t* p) const { --*p; }
};

template <typename T>
void seq_nms_block_forward_impl(const SeqNmsArgs& a, int num_threads) {
  const int64_t B = a.B, Tn = a.Tn, N = a.N, W = seq_nms_words(N), TN = Tn * N;
  const int team = static_cast<int>(B < num_threads ? (B > 0 ? B : 1) : num_threads);
  ParallelErrors errors;
#pragma omp parallel for num_threads(team) schedule(dynamic)
  for (int64_t b = 0; b < B; ++b) errors.run([&] {
    std::vector<acc_t> bytes(seq_nms_block_bytes(Tn, N) / sizeof(acc_t) + 1), stage_g(2 * N);
    std::vector<uint8_t> stage_live(2 * N);
    const SeqNmsBlockWork w = seq_nms_block_carve(reinterpret_cast<uint8_t*>(bytes.data()), Tn, N);
    const T* bx = static_cast<const T*>(a.boxes) + 4 * b * TN;
    const uint8_t* ok = a.valid + b * TN;
    const int64_t* lab = a.labels != nullptr ? a.labels + b * TN : nullptr;
    for (int64_t t = 0; t + 1 < Tn; ++t)
      for (int64_t i = 0; i < N; ++i)
        for (int64_t word = 0; word < W; ++word)
          w.link[(t * N + i) * W + word] = seq_nms_link_word(
              bx + 4 * t * N, ok + t * N, lab != nullptr ? lab + t * N : nullptr, N, i, word,
              static_cast<T>(a.pixel_offset), static_cast<T>(a.link_threshold), a.strict);
    for (int64_t k = 0; k < TN; ++k)
      w.in_cnt[k] = k < N ? 0 : seq_nms_in_count(w.link + (k / N - 1) * N * W, N, W, k % N);
    SeqNmsShared sh{};
    SerialBlock blk{stage_g.data(), stage_live.data(), &sh};
    seq_nms_block_video(blk, seq_nms_block_video_of<T>(a, b, w));
  });
  errors.rethrow();
}

}  // namespace

void seq_nms_forward(const SeqNmsArgs& args, int dtype, int num_threads) {
  PYVREL_DISPATCH_FLOAT(dtype, "seq_nms", seq_nms_forward_impl, args, num_threads);
}

void seq_nms_block_forward(const SeqNmsArgs& args, int dtype, int num_threads) {
  PYVREL_DISPATCH_FLOAT(dtype, "seq_nms_block", seq_nms_block_forward_impl, args, num_threads);
}

}  // namespace pyvrel::cpu
