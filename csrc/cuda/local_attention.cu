// Windowed local attention on CUDA: forward (one thread per query row) and a deterministic
// backward in three kernels (per-row dq and score gradients; dk/dv accumulated per (batch, head,
// channel) in query order; rel_bias gradient per (head, slot) in batch/query order). The window
// and per-row math is pyvrel/local_attention.h, shared with the CPU kernels.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "kernels.h"
#include "pyvrel/local_attention.h"
#include "utils.cuh"

namespace pyvrel::cuda {

namespace {

// Accumulation type: float for float16/bfloat16/float32, double for float64.
template <typename T>
struct AccOf {
  using type = float;
};
template <>
struct AccOf<double> {
  using type = double;
};

constexpr int kMaxRowThreads = 128;
constexpr int64_t kSharedBytes = 48 * 1024;

// Threads per block of the row kernels: W scores per thread live in shared memory.
template <typename Acc>
int row_threads(int64_t W) {
  const int64_t fit = kSharedBytes / (W * static_cast<int64_t>(sizeof(Acc)));
  const int64_t threads = min_(int64_t(kMaxRowThreads), (fit / 32) * 32);
  if (threads < 32)
    throw std::invalid_argument("local_attention (CUDA): window of " + std::to_string(W) +
                                " slots is too large (at most " +
                                std::to_string(kSharedBytes / (32 * sizeof(Acc))) + ")");
  return static_cast<int>(threads);
}

struct Geometry {
  LocalWindow w;
  int64_t B, H, Lq, Lk, D, Dv;
  const int64_t* q_len;
  const int64_t* kv_len;
  const int64_t* centers;
};

__device__ __forceinline__ bool row_window(const Geometry& g, int64_t b, int64_t i, int64_t* start,
                                           int64_t* lo, int64_t* hi) {
  return local_attention_query_window(g.w, i, g.Lq, g.Lk, g.q_len[b], g.kv_len[b],
                                      g.centers ? g.centers + b * g.Lq : nullptr, start, lo, hi);
}

template <typename T, typename Acc>
__global__ void forward_kernel(Geometry g, const T* q, const T* k, const T* v, const T* bias,
                               T* out, Acc* lse, Acc scale) {
  extern __shared__ unsigned char smem[];
  Acc* score = reinterpret_cast<Acc*>(smem) + threadIdx.x;
  const int64_t W = g.w.slots();
  PYVREL_CUDA_LOOP(row, g.B * g.H * g.Lq) {
    const int64_t bh = row / g.Lq, i = row % g.Lq, b = bh / g.H, h = bh % g.H;
    int64_t start = 0, lo = 0, hi = -1;
    T* o = out + row * g.Dv;
    if (!row_window(g, b, i, &start, &lo, &hi)) {
      for (int64_t d = 0; d < g.Dv; ++d) o[d] = static_cast<T>(0.0f);
      lse[row] = -INFINITY;
      continue;
    }
    lse[row] = local_attention_forward_row<T, Acc>(
        g.w, q + row * g.D, k + bh * g.Lk * g.D, v + bh * g.Lk * g.Dv,
        bias ? bias + h * W : nullptr, g.D, g.Dv, scale, start, lo, hi, score, blockDim.x, o);
  }
}

// dq per row; probabilities and score gradients to p_ws, ds_ws (B, H, Lq, W), zero where invalid.
template <typename T, typename Acc>
__global__ void backward_rows_kernel(Geometry g, const T* q, const T* k, const T* v,
                                     const T* bias, const T* out, const Acc* lse, const T* dout,
                                     const Acc* dlse, T* dq, Acc* p_ws, Acc* ds_ws, Acc scale) {
  const int64_t W = g.w.slots();
  PYVREL_CUDA_LOOP(row, g.B * g.H * g.Lq) {
    const int64_t bh = row / g.Lq, i = row % g.Lq, b = bh / g.H, h = bh % g.H;
    Acc* p = p_ws + row * W;
    Acc* ds = ds_ws + row * W;
    for (int64_t o = 0; o < W; ++o) p[o] = ds[o] = Acc(0);
    int64_t start = 0, lo = 0, hi = -1;
    T* dqi = dq + row * g.D;
    if (!row_window(g, b, i, &start, &lo, &hi)) {
      for (int64_t d = 0; d < g.D; ++d) dqi[d] = static_cast<T>(0.0f);
      continue;
    }
    const T* doi = dout + row * g.Dv;
    Acc delta = local_attention_dot<Acc>(doi, out + row * g.Dv, g.Dv);
    if (dlse) delta -= dlse[row];
    local_attention_backward_row<T, Acc>(g.w, q + row * g.D, k + bh * g.Lk * g.D,
                                         v + bh * g.Lk * g.Dv, bias ? bias + h * W : nullptr, doi,
                                         g.D, g.Dv, scale, lse[row], delta, start, lo, hi, p, ds, 1,
                                         dqi);
  }
}

// One thread per (batch, head, channel c < max(D, Dv)): accumulates column c of dk and dv over
// the queries in order (no atomics), in Acc, then writes them.
template <typename T, typename Acc>
__global__ void backward_kv_kernel(Geometry g, const T* q, const T* dout, const Acc* p_ws,
                                   const Acc* ds_ws, Acc* dk_acc, Acc* dv_acc, T* dk, T* dv,
                                   Acc scale) {
  const int64_t W = g.w.slots(), C = max_(g.D, g.Dv);
  PYVREL_CUDA_LOOP(idx, g.B * g.H * C) {
    const int64_t bh = idx / C, c = idx % C, b = bh / g.H;
    const bool has_k = c < g.D, has_v = c < g.Dv;
    Acc* ak = dk_acc + bh * g.Lk * g.D + c;
    Acc* av = dv_acc + bh * g.Lk * g.Dv + c;
    for (int64_t j = 0; j < g.Lk; ++j) {
      if (has_k) ak[j * g.D] = Acc(0);
      if (has_v) av[j * g.Dv] = Acc(0);
    }
    for (int64_t i = 0; i < g.Lq; ++i) {
      int64_t start = 0, lo = 0, hi = -1;
      if (!row_window(g, b, i, &start, &lo, &hi)) continue;
      const int64_t row = bh * g.Lq + i;
      const Acc qc = has_k ? static_cast<Acc>(q[row * g.D + c]) : Acc(0);
      const Acc gc = has_v ? static_cast<Acc>(dout[row * g.Dv + c]) : Acc(0);
      for (int64_t o = lo; o <= hi; ++o) {
        const int64_t j = start + g.w.dilation * o;
        if (has_k) ak[j * g.D] += scale * ds_ws[row * W + o] * qc;
        if (has_v) av[j * g.Dv] += p_ws[row * W + o] * gc;
      }
    }
    for (int64_t j = 0; j < g.Lk; ++j) {
      if (has_k) dk[(bh * g.Lk + j) * g.D + c] = static_cast<T>(ak[j * g.D]);
      if (has_v) dv[(bh * g.Lk + j) * g.Dv + c] = static_cast<T>(av[j * g.Dv]);
    }
  }
}

// One thread per (head, slot): the rel_bias gradient summed over batch and queries in order.
template <typename T, typename Acc>
__global__ void backward_bias_kernel(Geometry g, const Acc* ds_ws, T* dbias) {
  const int64_t W = g.w.slots();
  PYVREL_CUDA_LOOP(idx, g.H * W) {
    const int64_t h = idx / W, o = idx % W;
    Acc s = 0;
    for (int64_t b = 0; b < g.B; ++b)
      for (int64_t i = 0; i < g.Lq; ++i) s += ds_ws[((b * g.H + h) * g.Lq + i) * W + o];
    dbias[idx] = static_cast<T>(s);
  }
}

Geometry geometry(const LocalAttentionArgs& a) {
  return Geometry{LocalWindow{a.left, a.right, a.dilation, a.shift, a.causal},
                  a.B, a.H, a.Lq, a.Lk, a.D, a.Dv, a.q_len, a.kv_len, a.centers};
}

template <typename T>
void forward_impl(const LocalAttentionArgs& a, std::uintptr_t stream) {
  using Acc = typename AccOf<T>::type;
  const Geometry g = geometry(a);
  const int64_t rows = a.B * a.H * a.Lq;
  if (rows == 0) return;
  const int threads = row_threads<Acc>(g.w.slots());
  const size_t shared = static_cast<size_t>(threads * g.w.slots()) * sizeof(Acc);
  forward_kernel<T, Acc><<<grid_size(rows, threads), threads, shared, as_stream(stream)>>>(
      g, static_cast<const T*>(a.q), static_cast<const T*>(a.k), static_cast<const T*>(a.v),
      static_cast<const T*>(a.bias), static_cast<T*>(a.out), static_cast<Acc*>(a.lse),
      static_cast<Acc>(a.scale));
  check_launch("local_attention_forward");
}

template <typename T>
void backward_impl(const LocalAttentionArgs& a, const LocalAttentionGrads& gr, void* workspace,
                   std::uintptr_t stream) {
  using Acc = typename AccOf<T>::type;
  const Geometry g = geometry(a);
  const int64_t W = g.w.slots(), rows = a.B * a.H * a.Lq;
  Acc* p_ws = static_cast<Acc*>(workspace);
  Acc* ds_ws = p_ws + rows * W;
  Acc* dk_acc = ds_ws + rows * W;
  Acc* dv_acc = dk_acc + a.B * a.H * a.Lk * a.D;
  const Acc scale = static_cast<Acc>(a.scale);
  const cudaStream_t s = as_stream(stream);
  if (rows) {
    backward_rows_kernel<T, Acc><<<grid_size(rows), kThreads, 0, s>>>(
        g, static_cast<const T*>(a.q), static_cast<const T*>(a.k), static_cast<const T*>(a.v),
        static_cast<const T*>(a.bias), static_cast<const T*>(a.out),
        static_cast<const Acc*>(a.lse), static_cast<const T*>(gr.dout),
        static_cast<const Acc*>(gr.dlse), static_cast<T*>(gr.dq), p_ws, ds_ws, scale);
    check_launch("local_attention_backward (rows)");
  }
  const int64_t cols = a.B * a.H * max_(a.D, a.Dv);
  if (cols && a.Lk) {
    backward_kv_kernel<T, Acc><<<grid_size(cols), kThreads, 0, s>>>(
        g, static_cast<const T*>(a.q), static_cast<const T*>(gr.dout), p_ws, ds_ws, dk_acc,
        dv_acc, static_cast<T*>(gr.dk), static_cast<T*>(gr.dv), scale);
    check_launch("local_attention_backward (dk, dv)");
  }
  if (gr.dbias && a.H) {
    backward_bias_kernel<T, Acc><<<grid_size(a.H * W), kThreads, 0, s>>>(g, ds_ws,
                                                                         static_cast<T*>(gr.dbias));
    check_launch("local_attention_backward (rel_bias)");
  }
}

size_t acc_size(int dtype) {
  return static_cast<DType>(dtype) == DType::Float64 ? sizeof(double) : sizeof(float);
}

}  // namespace

// All four DType codes (pyvrel/codes.h); the other kernels take Float32/Float64 only.
#define PYVREL_LOCAL_ATTENTION_DISPATCH(dtype, NAME, FN, ...)                      \
  switch (static_cast<DType>(dtype)) {                                             \
    case DType::Float32:                                                           \
      return FN<float>(__VA_ARGS__);                                               \
    case DType::Float64:                                                           \
      return FN<double>(__VA_ARGS__);                                              \
    case DType::Float16:                                                           \
      return FN<__half>(__VA_ARGS__);                                              \
    case DType::BFloat16:                                                          \
      return FN<__nv_bfloat16>(__VA_ARGS__);                                       \
    default:                                                                       \
      throw std::invalid_argument(std::string(NAME) + ": unsupported dtype code"); \
  }

int64_t local_attention_workspace_bytes(int64_t B, int64_t H, int64_t Lq, int64_t Lk, int64_t D,
                                        int64_t Dv, int64_t W, int dtype) {
  return (2 * B * H * Lq * W + B * H * Lk * (D + Dv)) * static_cast<int64_t>(acc_size(dtype));
}

void local_attention_forward(const LocalAttentionArgs& args, int dtype, std::uintptr_t stream) {
  PYVREL_LOCAL_ATTENTION_DISPATCH(dtype, "local_attention_forward", forward_impl, args, stream);
}

void local_attention_backward(const LocalAttentionArgs& args, const LocalAttentionGrads& grads,
                              void* workspace, int dtype, std::uintptr_t stream) {
  PYVREL_LOCAL_ATTENTION_DISPATCH(dtype, "local_attention_backward", backward_impl, args, grads,
                                  workspace, stream);
}

}  // namespace pyvrel::cuda
