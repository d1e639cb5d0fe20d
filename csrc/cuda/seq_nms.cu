// Seq-NMS on CUDA: the whole select-rescore-suppress loop stays on the device. A first kernel
// builds the dense link masks of every video in parallel; then one block per video iterates:
// dense backward DP (threads over the boxes of a frame, frames in sequence), root selection by a
// block reduction, path walk, and suppression (threads over the path's boxes x frame boxes).
// The arithmetic and the visiting orders are those of csrc/cpu/seq_nms.cpp, so the results are
// identical to the CPU kernel's.
#include "kernels.h"
#include "pyvrel/seq_nms.h"
#include "utils.cuh"

namespace pyvrel::cuda {

namespace {

constexpr int kSeqThreads = 256;

// Per-video workspace layout (bytes), shared with seq_nms_workspace_bytes().
struct SeqNmsWorkspace {
  uint8_t* link;  // (T-1, N, N): box i of frame t links to box j of frame t+1
  acc_t* s;       // (T, N) working scores
  acc_t* g;       // (T, N) best path sum from each box
  int32_t* nxt;   // (T, N) successor on that path, -1 none
  int32_t* path;  // (T,) the selected path
  uint8_t* cut;   // (T, N) "remove": the box lost all its links
};

PYVREL_HD int64_t align8(int64_t n) { return (n + 7) / 8 * 8; }

PYVREL_HD int64_t video_bytes(int64_t T, int64_t N) {
  return align8(T * N * N) + 2 * T * N * int64_t(sizeof(acc_t)) + align8(T * N * 4) +
         align8(T * 4) + align8(T * N);
}

__device__ SeqNmsWorkspace carve(uint8_t* base, int64_t T, int64_t N) {
  SeqNmsWorkspace w;
  w.link = base;
  base += align8(T * N * N);
  w.s = reinterpret_cast<acc_t*>(base);
  base += T * N * sizeof(acc_t);
  w.g = reinterpret_cast<acc_t*>(base);
  base += T * N * sizeof(acc_t);
  w.nxt = reinterpret_cast<int32_t*>(base);
  base += align8(T * N * 4);
  w.path = reinterpret_cast<int32_t*>(base);
  base += align8(T * 4);
  w.cut = base;
  return w;
}

template <typename T>
__global__ void seq_nms_link_kernel(const T* boxes, const uint8_t* valid, const int64_t* labels,
                                    int64_t B, int64_t Tn, int64_t N, T off, T thr, bool strict,
                                    uint8_t* workspace) {
  const int64_t pairs = Tn - 1, total = B * pairs * N * N;
  PYVREL_CUDA_LOOP(idx, total) {
    const int64_t j = idx % N, i = (idx / N) % N, t = (idx / (N * N)) % pairs,
                  b = idx / (N * N * pairs);
    const int64_t a = (b * Tn + t) * N + i, c = (b * Tn + t + 1) * N + j;
    const SeqNmsWorkspace w = carve(workspace + b * video_bytes(Tn, N), Tn, N);
    w.link[(t * N + i) * N + j] =
        valid[a] && valid[c] &&
        seq_nms_link(boxes + 4 * a, boxes + 4 * c, labels != nullptr ? labels + a : nullptr,
                     labels != nullptr ? labels + c : nullptr, off, thr, strict);
  }
}

// Whether the live link (t, i) -> (t + 1, j) exists.
__device__ bool alive(const SeqNmsWorkspace& w, int64_t N, int64_t t, int64_t i, int64_t j) {
  return w.link[(t * N + i) * N + j] && !w.cut[t * N + i] && !w.cut[(t + 1) * N + j];
}

template <typename T>
__global__ void __launch_bounds__(kSeqThreads)
    seq_nms_video_kernel(const T* boxes_all, const T* scores_all, const uint8_t* valid_all,
                         int64_t Tn, int64_t N, T off, T supp_thr, bool strict, int rescore,
                         int suppress, int64_t max_sequences, double min_score, T* scores_out_all,
                         int64_t* seq_id_all, int64_t* seq_count, int64_t* seq_start_all,
                         int64_t* seq_len_all, double* seq_score_all, int64_t Kcap,
                         int64_t* nodes_all, int64_t node_cap, int64_t* nodes_needed,
                         uint8_t* workspace) {
  const int64_t b = blockIdx.x, TN = Tn * N, tid = threadIdx.x, nt = blockDim.x;
  const T* boxes = boxes_all + 4 * b * TN;
  const uint8_t* valid = valid_all + b * TN;
  int64_t* seq_id = seq_id_all + b * TN;
  const SeqNmsWorkspace w = carve(workspace + b * video_bytes(Tn, N), Tn, N);
  __shared__ acc_t red_value[kSeqThreads];
  __shared__ int64_t red_index[kSeqThreads];
  __shared__ int64_t root, len, K, needed;
  __shared__ acc_t best_value, new_score;

  for (int64_t k = tid; k < TN; k += nt) {
    w.s[k] = valid[k] ? static_cast<acc_t>(scores_all[b * TN + k]) : acc_t(0);
    w.cut[k] = 0;
    seq_id[k] = -1;
  }
  if (tid == 0) K = needed = 0;
  __syncthreads();
  while ((max_sequences <= 0 || K < max_sequences) && K < Kcap) {
    // Backward DP, frame by frame (the CPU kernel's incremental update gives the same values).
    for (int64_t t = Tn - 1; t >= 0; --t) {
      for (int64_t i = tid; i < N; i += nt) {
        const int64_t k = t * N + i;
        if (!valid[k]) continue;
        acc_t best = 0;
        int32_t arg = -1;
        if (t + 1 < Tn && !w.cut[k])
          for (int64_t j = 0; j < N; ++j)
            if (alive(w, N, t, i, j) && dp_improves(w.g[(t + 1) * N + j], best, arg >= 0)) {
              best = w.g[(t + 1) * N + j];
              arg = static_cast<int32_t>(j);
            }
        w.g[k] = arg >= 0 ? w.s[k] + best : w.s[k];
        w.nxt[k] = arg;
      }
      __syncthreads();
    }
    // Best root: the first box (frame-major) with no live incoming link and the largest g.
    acc_t my_value = min_score;
    int64_t my_index = -1;
    for (int64_t k = tid; k < TN; k += nt) {
      if (!valid[k] || !(w.g[k] > my_value)) continue;
      const int64_t t = k / N, j = k % N;
      bool has_in = false;
      if (t > 0 && !w.cut[k])
        for (int64_t i = 0; i < N && !has_in; ++i) has_in = alive(w, N, t - 1, i, j);
      if (!has_in) {
        my_value = w.g[k];
        my_index = k;
      }
    }
    red_value[tid] = my_value;
    red_index[tid] = my_index;
    __syncthreads();
    for (int stride = nt / 2; stride > 0; stride /= 2) {
      if (tid < stride) {
        const int64_t oi = red_index[tid + stride], mi = red_index[tid];
        const acc_t ov = red_value[tid + stride], mv = red_value[tid];
        if (oi >= 0 && (mi < 0 || ov > mv || (ov == mv && oi < mi))) {
          red_value[tid] = ov;
          red_index[tid] = oi;
        }
      }
      __syncthreads();
    }
    if (tid == 0) {
      root = red_index[0];
      best_value = red_value[0];
      len = 0;
      if (root >= 0) {
        const int64_t t0 = root / N;
        int32_t p = static_cast<int32_t>(root % N);
        acc_t max_score = w.s[root];
        while (p >= 0) {
          w.path[len] = p;
          max_score = max_(max_score, w.s[(t0 + len) * N + p]);
          p = w.nxt[(t0 + len) * N + p];
          ++len;
        }
        if (len > 1) {
          seq_start_all[b * Kcap + K] = t0;
          seq_len_all[b * Kcap + K] = len;
          seq_score_all[b * Kcap + K] = best_value;
          if (needed + len <= node_cap)
            for (int64_t d = 0; d < len; ++d) nodes_all[b * node_cap + needed + d] = w.path[d];
          needed += len;
          new_score = seq_nms_rescored(rescore, best_value, max_score, len);
          for (int64_t d = 0; d < len; ++d)
            if (seq_id[(t0 + d) * N + w.path[d]] < 0) seq_id[(t0 + d) * N + w.path[d]] = K;
        }
      }
    }
    __syncthreads();
    if (root < 0 || len <= 1) break;
    const int64_t t0 = root / N;
    // Suppression: (path frame, box) pairs in parallel; the path boxes are rescored first by
    // the same thread that may zero them, so the order matches the CPU kernel.
    for (int64_t x = tid; x < len * N; x += nt) {
      const int64_t d = x / N, q = x % N, t = t0 + d, p = w.path[d], k = t * N + q;
      if (!valid[k]) continue;
      if (q == p && rescore != static_cast<int>(SeqNmsRescore::None)) w.s[k] = new_score;
      if (!seq_nms_suppressed(boxes + 4 * (t * N + p), boxes + 4 * k, q == p, off, supp_thr,
                              strict))
        continue;
      if (suppress == static_cast<int>(SeqNmsSuppress::Zero))
        w.s[k] = 0;
      else
        w.cut[k] = 1;
    }
    __syncthreads();
    if (tid == 0) ++K;
    __syncthreads();
  }
  for (int64_t k = tid; k < TN; k += nt)
    if (valid[k]) scores_out_all[b * TN + k] = static_cast<T>(w.s[k]);
  if (tid == 0) {
    seq_count[b] = K;
    nodes_needed[b] = needed;
  }
}

template <typename T>
void seq_nms_forward_impl(const void* boxes, const void* scores, const uint8_t* valid,
                          const int64_t* labels, int64_t B, int64_t Tn, int64_t N,
                          double link_threshold, double suppress_threshold, bool strict,
                          int rescore, int suppress, int64_t max_sequences, double min_score,
                          double pixel_offset, void* scores_out, int64_t* seq_id,
                          int64_t* seq_count, int64_t* seq_start, int64_t* seq_len,
                          double* seq_score, int64_t Kcap, int64_t* nodes, int64_t node_cap,
                          int64_t* nodes_needed, void* workspace, std::uintptr_t stream) {
  if (B == 0 || Tn == 0 || N == 0) return;
  auto* ws = static_cast<uint8_t*>(workspace);
  const auto off = static_cast<T>(pixel_offset);
  if (Tn > 1) {
    const int64_t total = B * (Tn - 1) * N * N;
    seq_nms_link_kernel<T><<<grid_size(total), kThreads, 0, as_stream(stream)>>>(
        static_cast<const T*>(boxes), valid, labels, B, Tn, N, off,
        static_cast<T>(link_threshold), strict, ws);
    check_launch("seq_nms_forward (links)");
  }
  seq_nms_video_kernel<T><<<static_cast<unsigned int>(B), kSeqThreads, 0, as_stream(stream)>>>(
      static_cast<const T*>(boxes), static_cast<const T*>(scores), valid, Tn, N, off,
      static_cast<T>(suppress_threshold), strict, rescore, suppress, max_sequences, min_score,
      static_cast<T*>(scores_out), seq_id, seq_count, seq_start, seq_len, seq_score, Kcap, nodes,
      node_cap, nodes_needed, ws);
  check_launch("seq_nms_forward (videos)");
}

}  // namespace

int64_t seq_nms_workspace_bytes(int64_t B, int64_t T, int64_t N) { return B * video_bytes(T, N); }

void seq_nms_forward(const void* boxes, const void* scores, const uint8_t* valid,
                     const int64_t* labels, int64_t B, int64_t T, int64_t N, double link_threshold,
                     double suppress_threshold, bool strict, int rescore, int suppress,
                     int64_t max_sequences, double min_score, double pixel_offset, void* scores_out,
                     int64_t* seq_id, int64_t* seq_count, int64_t* seq_start, int64_t* seq_len,
                     double* seq_score, int64_t Kcap, int64_t* nodes, int64_t node_cap,
                     int64_t* nodes_needed, int dtype, void* workspace, std::uintptr_t stream) {
  PYVREL_DISPATCH_FLOAT(dtype, "seq_nms", seq_nms_forward_impl, boxes, scores, valid, labels, B, T,
                        N, link_threshold, suppress_threshold, strict, rescore, suppress,
                        max_sequences, min_score, pixel_offset, scores_out, seq_id, seq_count,
                        seq_start, seq_len, seq_score, Kcap, nodes, node_cap, nodes_needed,
                        workspace, stream);
}

}  // namespace pyvrel::cuda
