// What pyvrel._C (bind_cpu.cpp) and pyvrel._cuda (bind_cuda.cpp) both define before their module
// bodies: buffers arrive as integer addresses (`ptr`, turned back into pointers by `as<T>`), and the
// argument blocks of the local attention and Seq-NMS bindings.
#pragma once
#include <pybind11/pybind11.h>

#include <cstdint>

#include "pyvrel/local_attention.h"
#include "pyvrel/seq_nms.h"

namespace py = pybind11;
using ptr = std::uintptr_t;

template <typename T>
T* as(ptr p) {
  return reinterpret_cast<T*>(p);
}

// The arguments of local_attention_forward/backward from the addresses the bindings take.
inline pyvrel::LocalAttentionArgs local_attention_args(ptr q, ptr k, ptr v, ptr bias, ptr q_len, ptr kv_len,
                                                       ptr centers, ptr out, ptr lse, int64_t B, int64_t H,
                                                       int64_t Lq, int64_t Lk, int64_t D, int64_t Dv,
                                                       int64_t left, int64_t right, int64_t dilation, bool shift,
                                                       bool causal, double scale) {
  return {as<const void>(q), as<const void>(k), as<const void>(v), as<const void>(bias),
          as<const int64_t>(q_len), as<const int64_t>(kv_len), as<const int64_t>(centers),
          as<void>(out), as<void>(lse), B, H, Lq, Lk, D, Dv, left, right, dilation, shift,
          causal, scale};
}

// Binds local_attention_backward in `m`: the forward's arguments, the gradient buffers, then the
// kernel's own last arguments `Tail...` (CPU: dtype, threads; CUDA: workspace, dtype, stream),
// calling kernel(args, grads, tail...) without the GIL.
template <typename... Tail, typename Kernel>
void def_local_attention_backward(py::module_& m, Kernel kernel, const char* doc) {
  m.def(
      "local_attention_backward",
      [kernel](ptr q, ptr k, ptr v, ptr bias, ptr q_len, ptr kv_len, ptr centers, ptr out, ptr lse,
               ptr dout, ptr dlse, ptr dq, ptr dk, ptr dv, ptr dbias, int64_t B, int64_t H, int64_t Lq,
               int64_t Lk, int64_t D, int64_t Dv, int64_t left, int64_t right, int64_t dilation,
               bool shift, bool causal, double scale, Tail... tail) {
        const pyvrel::LocalAttentionGrads g{as<const void>(dout), as<const void>(dlse), as<void>(dq),
                                            as<void>(dk), as<void>(dv), as<void>(dbias)};
        kernel(local_attention_args(q, k, v, bias, q_len, kv_len, centers, out, lse, B, H, Lq, Lk, D, Dv,
                                    left, right, dilation, shift, causal, scale),
               g, tail...);
      },
      py::call_guard<py::gil_scoped_release>(), doc);
}

// Binds a Seq-NMS kernel as `name` in `m`: the addresses and values of pyvrel::SeqNmsArgs in its
// order, then the kernel's own last arguments `Tail...` (CPU: dtype, threads; CUDA: dtype,
// workspace, stream), calling kernel(args, tail...) without the GIL.
template <typename... Tail, typename Kernel>
void def_seq_nms_forward(py::module_& m, const char* name, Kernel kernel, const char* doc) {
  m.def(
      name,
      [kernel](ptr boxes, ptr scores, ptr valid, ptr labels, int64_t B, int64_t T, int64_t N, double link_thr,
               double supp_thr, bool strict, int rescore, int suppress, int64_t max_seq, double min_score,
               double off, ptr scores_out, ptr seq_id, ptr seq_count, ptr seq_start, ptr seq_len, ptr seq_score,
               int64_t Kcap, ptr nodes, int64_t node_cap, ptr needed, Tail... tail) {
        const pyvrel::SeqNmsArgs args{as<const void>(boxes), as<const void>(scores), as<const uint8_t>(valid),
                                      as<const int64_t>(labels), B, T, N, link_thr, supp_thr, strict, rescore,
                                      suppress, max_seq, min_score, off, as<void>(scores_out), as<int64_t>(seq_id),
                                      as<int64_t>(seq_count), as<int64_t>(seq_start), as<int64_t>(seq_len),
                                      as<double>(seq_score), Kcap, as<int64_t>(nodes), node_cap,
                                      as<int64_t>(needed)};
        kernel(args, tail...);
      },
      py::call_guard<py::gil_scoped_release>(), doc);
}
