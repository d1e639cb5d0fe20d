// Seq-NMS as one thread block per video: the algorithm of the CUDA kernel, written once against a
// small `Block` interface so that the C++ extension runs the very same code with a one-thread
// block (pyvrel._C.seq_nms_block_forward, exercised by tests/test_seq_nms_block.py).
//
// Data-parallel formulation (docs/architecture.md, "Seq-NMS and Viterbi"; the roofline is in
// benchmarks/README.md). Links are dense bit rows: bit b of word w of box i of frame t says that
// box i links to box 32 w + b of frame t + 1. Per selected sequence:
//   root   every box scans in parallel (valid, no live incoming link or cut, g > min_score), then
//          a block arg-max reduction (ties: lowest frame-major index);
//   walk   the leader thread follows `nxt` from the root;
//   supp.  (path frame, box) pairs in parallel: rescore, suppress; a newly cut box decrements the
//          live-incoming count of its successors (atomically);
//   DP     frames from the path's last frame downwards, all boxes of a frame in parallel, the
//          successor values of frame t + 1 staged in block memory; frames below the path's first
//          frame stop as soon as a frame's values did not change (nothing below can change).
// Every value is computed by the per-element functions of pyvrel/seq_nms.h in the order of the
// CPU kernel, so results are bitwise those of csrc/cpu/seq_nms.cpp and the Python reference.
//
// The Block interface (CUDA: csrc/cuda/seq_nms.cu; serial: csrc/cpu/seq_nms.cpp):
//   tid(), size(), leader()     thread index, block size, whether this is thread 0
//   sync()                      barrier (makes global and block memory writes visible)
//   sync_or(p)                  barrier returning whether p was true in any thread
//   best(v, i)                  block arg-max by seq_nms_root_better, result in every thread
//   dec(p)                      atomic --*p
//   stage_g, stage_live         block memory: 2 x N successor values and "live" flags
//   sh                          block memory: the SeqNmsShared scalars
#pragma once
#include "pyvrel/seq_nms.h"

#if defined(__CUDACC__)
#define PYVREL_HD_ALGO __host__ __device__
#else
#define PYVREL_HD_ALGO inline
#endif

namespace pyvrel {

PYVREL_HD int64_t seq_nms_words(int64_t N) { return (N + 31) / 32; }

// Successor words a DP thread loads at once (one memory round trip per batch instead of per word);
// the loops over a batch are unrolled on the GPU so that the words stay in registers.
constexpr int kSeqNmsWordBatch = 8;
// Boxes a thread tests at once in the root scan, for the same reason.
constexpr int kSeqNmsScanBatch = 4;
#if defined(__CUDA_ARCH__)
#define PYVREL_UNROLL _Pragma("unroll")
#else
#define PYVREL_UNROLL
#endif

// Index of the lowest set bit of a non-zero word.
PYVREL_HD int lowest_bit(uint32_t x) {
#if defined(__CUDA_ARCH__)
  return __ffs(static_cast<int>(x)) - 1;
#else
  return __builtin_ctz(x);
#endif
}

// Word w of the successor bits of box i of a frame (boxes/valid/labels point at the frame; the
// next frame follows at + N).
template <typename T>
PYVREL_HD uint32_t seq_nms_link_word(const T* boxes, const uint8_t* valid, const int64_t* labels,
                                     int64_t N, int64_t i, int64_t w, T off, T thr, bool strict) {
  uint32_t bits = 0;
  if (!valid[i]) return 0;
  for (int64_t b = 0; b < 32 && 32 * w + b < N; ++b) {
    const int64_t j = N + 32 * w + b;
    if (valid[j] && seq_nms_link(boxes + 4 * i, boxes + 4 * j, labels != nullptr ? labels + i : nullptr,
                                 labels != nullptr ? labels + j : nullptr, off, thr, strict))
      bits |= uint32_t(1) << b;
  }
  return bits;
}

// Links into box j of frame t + 1 from the bit rows (N, W) of frame t.
PYVREL_HD int32_t seq_nms_in_count(const uint32_t* rows, int64_t N, int64_t W, int64_t j) {
  int32_t n = 0;
  for (int64_t i = 0; i < N; ++i) n += (rows[i * W + j / 32] >> (j % 32)) & 1u;
  return n;
}

// Block arg-max order of root candidates (index -1: none): larger value, then lower index.
PYVREL_HD bool seq_nms_root_better(acc_t v, int64_t i, acc_t best_v, int64_t best_i) {
  return i >= 0 && (best_i < 0 || v > best_v || (v == best_v && i < best_i));
}

// Per-video workspace (global memory), carved from seq_nms_block_bytes(T, N) bytes.
struct SeqNmsBlockWork {
  acc_t* s;         // (T, N) working scores
  acc_t* g;         // (T, N) best path sum starting at each box
  uint32_t* link;   // (T - 1, N, W) successor bits
  int32_t* nxt;     // (T, N) successor on that path, -1 none
  int32_t* in_cnt;  // (T, N) links from boxes not cut (counted at build, decremented on cuts)
  int32_t* path;    // (T,) the selected path
  uint8_t* cut;     // (T, N) "remove": the box lost all its links
};

PYVREL_HD int64_t seq_nms_align8(int64_t n) { return (n + 7) / 8 * 8; }

PYVREL_HD int64_t seq_nms_block_bytes(int64_t T, int64_t N) {
  const int64_t TN = T * N, links = T > 1 ? (T - 1) * N * seq_nms_words(N) : 0;
  return 2 * TN * int64_t(sizeof(acc_t)) + seq_nms_align8(4 * links) + 2 * seq_nms_align8(4 * TN) +
         seq_nms_align8(4 * T) + seq_nms_align8(TN);
}

PYVREL_HD SeqNmsBlockWork seq_nms_block_carve(uint8_t* base, int64_t T, int64_t N) {
  const int64_t TN = T * N, links = T > 1 ? (T - 1) * N * seq_nms_words(N) : 0;
  SeqNmsBlockWork w;
  w.s = reinterpret_cast<acc_t*>(base);
  w.g = w.s + TN;
  base += 2 * TN * int64_t(sizeof(acc_t));
  w.link = reinterpret_cast<uint32_t*>(base);
  base += seq_nms_align8(4 * links);
  w.nxt = reinterpret_cast<int32_t*>(base);
  base += seq_nms_align8(4 * TN);
  w.in_cnt = reinterpret_cast<int32_t*>(base);
  base += seq_nms_align8(4 * TN);
  w.path = reinterpret_cast<int32_t*>(base);
  base += seq_nms_align8(4 * T);
  w.cut = base;
  return w;
}

// Block memory of the DP stage: 2 N successor values and 2 N flags.
PYVREL_HD int64_t seq_nms_stage_bytes(int64_t N) { return 2 * N * (int64_t(sizeof(acc_t)) + 1); }

// Scalars the block shares (block memory).
struct SeqNmsShared {
  int64_t root, len, K, needed;
  acc_t best_value, new_score;
};

// One video's inputs, options and outputs (global memory; work.link and work.in_cnt are built).
template <typename T>
struct SeqNmsBlockVideo {
  const T* boxes;        // (T, N, 4)
  const T* scores;       // (T, N)
  const uint8_t* valid;  // (T, N)
  int64_t Tn, N;
  T off, supp_thr;
  bool strict;
  int rescore, suppress;
  int64_t max_sequences, Kcap, node_cap;
  double min_score;
  SeqNmsBlockWork work;
  T* scores_out;  // (T, N)
  int64_t *seq_id, *seq_count, *seq_start, *seq_len, *nodes, *nodes_needed;
  double* seq_score;
};

// Video b of a call, with its workspace w.
template <typename T>
PYVREL_HD SeqNmsBlockVideo<T> seq_nms_block_video_of(const SeqNmsArgs& a, int64_t b, const SeqNmsBlockWork& w) {
  const int64_t TN = a.Tn * a.N;
  return {static_cast<const T*>(a.boxes) + 4 * b * TN, static_cast<const T*>(a.scores) + b * TN,
          a.valid + b * TN, a.Tn, a.N, static_cast<T>(a.pixel_offset), static_cast<T>(a.suppress_threshold),
          a.strict, a.rescore, a.suppress, a.max_sequences, a.Kcap, a.node_cap, a.min_score, w,
          static_cast<T*>(a.scores_out) + b * TN, a.seq_id + b * TN, a.seq_count + b, a.seq_start + b * a.Kcap,
          a.seq_len + b * a.Kcap, a.nodes + b * a.node_cap, a.nodes_needed + b, a.seq_score + b * a.Kcap};
}

// Backward DP of frames t_top, t_top - 1, ...: frames >= t_force always, lower ones only while
// the frame above changed a value (their inputs are otherwise unchanged).
template <typename T, typename Block>
PYVREL_HD_ALGO void seq_nms_block_dp(Block& blk, const SeqNmsBlockVideo<T>& v, int64_t t_top,
                                     int64_t t_force) {
  const int64_t N = v.N, W = seq_nms_words(N), Tn = v.Tn;
  const SeqNmsBlockWork& w = v.work;
  if (t_top + 1 < Tn) {
    const int64_t nb = (t_top + 1) & 1, k0 = (t_top + 1) * N;
    for (int64_t j = blk.tid(); j < N; j += blk.size()) {
      blk.stage_g[nb * N + j] = w.g[k0 + j];
      blk.stage_live[nb * N + j] = v.valid[k0 + j] && !w.cut[k0 + j];
    }
  }
  blk.sync();
  for (int64_t t = t_top; t >= 0; --t) {
    const acc_t* next_g = blk.stage_g + ((t + 1) & 1) * N;
    const uint8_t* next_live = blk.stage_live + ((t + 1) & 1) * N;
    bool changed = false;
    for (int64_t i = blk.tid(); i < N; i += blk.size()) {
      const int64_t k = t * N + i;
      if (v.valid[k]) {
        acc_t best = 0;
        int32_t arg = -1;
        if (t + 1 < Tn && !w.cut[k]) {
          const uint32_t* row = w.link + k * W;
          for (int64_t w0 = 0; w0 < W; w0 += kSeqNmsWordBatch) {
            uint32_t words[kSeqNmsWordBatch];  // independent loads, in flight together on a GPU
            PYVREL_UNROLL
            for (int u = 0; u < kSeqNmsWordBatch; ++u) words[u] = w0 + u < W ? row[w0 + u] : 0u;
            PYVREL_UNROLL
            for (int u = 0; u < kSeqNmsWordBatch; ++u)
              for (uint32_t bits = words[u]; bits != 0; bits &= bits - 1) {
                const int64_t j = 32 * (w0 + u) + lowest_bit(bits);  // ascending j: the tie rule
                if (next_live[j] && dp_improves(next_g[j], best, arg >= 0)) {
                  best = next_g[j];
                  arg = static_cast<int32_t>(j);
                }
              }
          }
        }
        const acc_t value = arg >= 0 ? w.s[k] + best : w.s[k];
        changed = changed || value != w.g[k];
        w.g[k] = value;
        w.nxt[k] = arg;
      }
      blk.stage_g[(t & 1) * N + i] = w.g[k];
      blk.stage_live[(t & 1) * N + i] = v.valid[k] && !w.cut[k];
    }
    if (!blk.sync_or(changed) && t < t_force) break;
  }
}

// Seq-NMS of one video by one block (all threads call it).
template <typename T, typename Block>
PYVREL_HD_ALGO void seq_nms_block_video(Block& blk, const SeqNmsBlockVideo<T>& v) {
  const int64_t N = v.N, W = seq_nms_words(N), Tn = v.Tn, TN = Tn * N;
  const SeqNmsBlockWork& w = v.work;
  SeqNmsShared& sh = *blk.sh;
  for (int64_t k = blk.tid(); k < TN; k += blk.size()) {
    w.s[k] = v.valid[k] ? static_cast<acc_t>(v.scores[k]) : acc_t(0);
    w.g[k] = 0;
    w.nxt[k] = -1;
    w.cut[k] = 0;
    v.seq_id[k] = -1;
  }
  if (blk.leader()) sh.K = sh.needed = 0;
  blk.sync();
  seq_nms_block_dp(blk, v, Tn - 1, 0);
  while ((v.max_sequences <= 0 || sh.K < v.max_sequences) && sh.K < v.Kcap) {
    acc_t best_v = v.min_score;
    int64_t best_i = -1;
    // Each thread scans k = tid, tid + size, ... in ascending order (strict >: its first maximum),
    // loading kSeqNmsScanBatch boxes at once (their loads in flight together on a GPU).
    for (int64_t k0 = blk.tid(); k0 < TN; k0 += kSeqNmsScanBatch * blk.size()) {
      acc_t value[kSeqNmsScanBatch];
      bool root[kSeqNmsScanBatch];
      PYVREL_UNROLL
      for (int u = 0; u < kSeqNmsScanBatch; ++u) {
        const int64_t k = k0 + u * blk.size();
        root[u] = k < TN && ((v.valid[k] != 0) & ((w.cut[k] != 0) | (w.in_cnt[k] == 0)));
        value[u] = k < TN ? w.g[k] : acc_t(0);
      }
      PYVREL_UNROLL
      for (int u = 0; u < kSeqNmsScanBatch; ++u)
        if (root[u] && value[u] > best_v) {
          best_v = value[u];
          best_i = k0 + u * blk.size();
        }
    }
    blk.best(best_v, best_i);
    if (best_i < 0) break;
    const int64_t t0 = best_i / N;
    if (blk.leader()) {
      const int64_t K = sh.K;
      int64_t len = 0;
      acc_t max_score = w.s[best_i];
      for (int32_t p = static_cast<int32_t>(best_i % N); p >= 0; p = w.nxt[(t0 + len++) * N + p]) {
        w.path[len] = p;
        max_score = max_(max_score, w.s[(t0 + len) * N + p]);
      }
      sh.len = len;
      if (len > 1) {
        v.seq_start[K] = t0;
        v.seq_len[K] = len;
        v.seq_score[K] = best_v;
        if (sh.needed + len <= v.node_cap)  // else the caller retries with room for `needed`
          for (int64_t d = 0; d < len; ++d) v.nodes[sh.needed + d] = w.path[d];
        sh.needed += len;
        sh.new_score = seq_nms_rescored(v.rescore, best_v, max_score, len);
        for (int64_t d = 0; d < len; ++d)
          if (v.seq_id[(t0 + d) * N + w.path[d]] < 0) v.seq_id[(t0 + d) * N + w.path[d]] = K;
      }
    }
    blk.sync();
    const int64_t len = sh.len;
    if (len <= 1) break;  // the best path is a single box
    for (int64_t x = blk.tid(); x < len * N; x += blk.size()) {
      const int64_t d = x / N, q = x % N, t = t0 + d, p = w.path[d], k = t * N + q;
      if (!v.valid[k]) continue;
      if (q == p && v.rescore != static_cast<int>(SeqNmsRescore::None)) w.s[k] = sh.new_score;
      if (!seq_nms_suppressed(v.boxes + 4 * (t * N + p), v.boxes + 4 * k, q == p, v.off,
                              v.supp_thr, v.strict))
        continue;
      if (v.suppress == static_cast<int>(SeqNmsSuppress::Zero)) {
        w.s[k] = 0;
      } else if (!w.cut[k]) {
        w.cut[k] = 1;
        if (t + 1 < Tn)
          for (int64_t word = 0; word < W; ++word)
            for (uint32_t bits = w.link[k * W + word]; bits != 0; bits &= bits - 1)
              blk.dec(w.in_cnt + (t + 1) * N + 32 * word + lowest_bit(bits));
      }
    }
    blk.sync();
    if (blk.leader()) ++sh.K;
    seq_nms_block_dp(blk, v, t0 + len - 1, t0);  // starts with a barrier: K is visible after it
  }
  for (int64_t k = blk.tid(); k < TN; k += blk.size())
    if (v.valid[k]) v.scores_out[k] = static_cast<T>(w.s[k]);
  if (blk.leader()) {
    *v.seq_count = sh.K;
    *v.nodes_needed = sh.needed;
  }
}

}  // namespace pyvrel
