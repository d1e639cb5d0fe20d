// pybind11 module pyvrel._C: the CPU kernels. Buffers are passed as integer addresses of
// contiguous tensors allocated by pyvrel.ops; see csrc/cpu/kernels.h for shapes.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "cpu/kernels.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace py = pybind11;
using ptr = std::uintptr_t;

namespace {

template <typename T>
T* as(ptr p) {
  return reinterpret_cast<T*>(p);
}

py::dict build_info() {
  py::dict d;
  d["version"] = PYVREL_VERSION;
  d["compiler"] = PYVREL_COMPILER;
  d["openmp"] = PYVREL_OPENMP;
#ifdef _OPENMP
  d["openmp_max_threads"] = omp_get_max_threads();
#else
  d["openmp_max_threads"] = 1;
#endif
  d["cxx_standard"] = static_cast<long>(__cplusplus);
  return d;
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "pyvrel CPU kernels (C++17, OpenMP). Called by pyvrel.ops with raw buffer addresses.";
  using namespace pyvrel::cpu;
  const auto nogil = py::call_guard<py::gil_scoped_release>();

  m.def("build_info", &build_info, "Compiler, OpenMP and version of this build.");

  m.def(
      "box_iou_forward",
      [](ptr a, ptr b, ptr out, int64_t B, int64_t N, int64_t M, int dtype, double off, int nt) {
        box_iou_forward(as<const void>(a), as<const void>(b), as<void>(out), B, N, M, dtype, off,
                        nt);
      },
      nogil, R"pbdoc(Pairwise IoU: a (B, N, 4), b (B, M, 4) -> out (B, N, M).)pbdoc");
  m.def(
      "box_iou_backward",
      [](ptr a, ptr b, ptr g, ptr ga, ptr gb, int64_t B, int64_t N, int64_t M, int dtype,
         double off, int nt) {
        box_iou_backward(as<const void>(a), as<const void>(b), as<const void>(g), as<void>(ga),
                         as<void>(gb), B, N, M, dtype, off, nt);
      },
      nogil,
      R"pbdoc(Gradient of box_iou: grad (B, N, M) -> grad_a (B, N, 4), grad_b (B, M, 4).)pbdoc");
  m.def(
      "box_iou_aligned_forward",
      [](ptr a, ptr b, ptr out, int64_t K, int dtype, double off, int nt) {
        box_iou_aligned_forward(as<const void>(a), as<const void>(b), as<void>(out), K, dtype, off,
                                nt);
      },
      nogil, R"pbdoc(Aligned IoU: a (K, 4), b (K, 4) -> out (K,).)pbdoc");
  m.def(
      "box_iou_aligned_backward",
      [](ptr a, ptr b, ptr g, ptr ga, ptr gb, int64_t K, int dtype, double off, int nt) {
        box_iou_aligned_backward(as<const void>(a), as<const void>(b), as<const void>(g),
                                 as<void>(ga), as<void>(gb), K, dtype, off, nt);
      },
      nogil,
      R"pbdoc(Gradient of box_iou_aligned: grad (K,) -> grad_a (K, 4), grad_b (K, 4).)pbdoc");
  m.def(
      "nms_forward",
      [](ptr boxes, ptr order, ptr idxs, ptr keep, int64_t N, int dtype, double thr, double off) {
        nms_forward(as<const void>(boxes), as<const int64_t>(order), as<const int64_t>(idxs),
                    as<uint8_t>(keep), N, dtype, thr, off);
      },
      nogil,
      R"pbdoc(Greedy NMS: boxes (N, 4) visited in order (N,); idxs (N,) or 0 for none -> keep (N,) uint8.
Suppresses IoU > threshold.)pbdoc");
  m.def(
      "tube_iou_forward",
      [](ptr a, ptr as_, ptr al, int64_t N, int64_t Ta, ptr b, ptr bs, ptr bl, int64_t M,
         int64_t Tb, ptr out, int dtype, int mode, double off, int nt) {
        tube_iou_forward(as<const void>(a), as<const int64_t>(as_), as<const int64_t>(al), N, Ta,
                         as<const void>(b), as<const int64_t>(bs), as<const int64_t>(bl), M, Tb,
                         as<void>(out), dtype, mode, off, nt);
      },
      nogil,
      R"pbdoc(Pairwise tube IoU: tubes (N, Ta, 4) x (M, Tb, 4) with start/length -> out (N, M).)pbdoc");
  m.def(
      "tube_iou_aligned_forward",
      [](ptr a, ptr as_, ptr al, int64_t Ta, ptr b, ptr bs, ptr bl, int64_t Tb, int64_t N, ptr out,
         int dtype, int mode, double off, int nt) {
        tube_iou_aligned_forward(as<const void>(a), as<const int64_t>(as_), as<const int64_t>(al),
                                 Ta, as<const void>(b), as<const int64_t>(bs),
                                 as<const int64_t>(bl), Tb, N, as<void>(out), dtype, mode, off, nt);
      },
      nogil, R"pbdoc(Aligned tube IoU: tubes (N, Ta, 4) and (N, Tb, 4) -> out (N,).)pbdoc");
  m.def(
      "tube_iou_aligned_backward",
      [](ptr a, ptr as_, ptr al, int64_t Ta, ptr b, ptr bs, ptr bl, int64_t Tb, int64_t N, ptr g,
         ptr ga, ptr gb, int dtype, int mode, double off, int nt) {
        tube_iou_aligned_backward(as<const void>(a), as<const int64_t>(as_), as<const int64_t>(al),
                                  Ta, as<const void>(b), as<const int64_t>(bs),
                                  as<const int64_t>(bl), Tb, N, as<const void>(g), as<void>(ga),
                                  as<void>(gb), dtype, mode, off, nt);
      },
      nogil,
      R"pbdoc(Gradient of aligned tube IoU: grad (N,) -> grad_a (N, Ta, 4), grad_b (N, Tb, 4).)pbdoc");
  m.def(
      "interpolate_boxes_forward",
      [](ptr frames, ptr boxes, ptr counts, int64_t N, int64_t K, ptr out, int64_t L, int dtype,
         int nt) {
        interpolate_boxes_forward(as<const int64_t>(frames), as<const void>(boxes),
                                  as<const int64_t>(counts), N, K, as<void>(out), L, dtype, nt);
      },
      nogil,
      R"pbdoc(Linear interpolation: frames (N, K), boxes (N, K, 4), counts (N,) -> out (N, L, 4).)pbdoc");
  m.def(
      "interpolate_boxes_backward",
      [](ptr frames, ptr counts, int64_t N, int64_t K, ptr g, int64_t L, ptr gb, int dtype,
         int nt) {
        interpolate_boxes_backward(as<const int64_t>(frames), as<const int64_t>(counts), N, K,
                                   as<const void>(g), L, as<void>(gb), dtype, nt);
      },
      nogil, R"pbdoc(Gradient of interpolate_boxes: grad (N, L, 4) -> grad_boxes (N, K, 4).)pbdoc");
  m.def(
      "cut_trajectories",
      [](ptr text, int64_t length, ptr skeleton, int64_t skeleton_capacity, ptr skeleton_length,
         ptr numbers, int64_t numbers_capacity, ptr box_counts, ptr is_float, int64_t max_trajectories) -> int64_t {
        return cut_trajectories(as<const char>(text), length, as<char>(skeleton), skeleton_capacity,
                                as<int64_t>(skeleton_length), as<double>(numbers), numbers_capacity,
                                as<int64_t>(box_counts), as<uint8_t>(is_float), max_trajectories);
      },
      nogil,
      R"pbdoc(Cut sub_traj/obj_traj box lists out of JSON text into float64 numbers; returns how many (see kernels.h).)pbdoc");
  m.def(
      "local_attn_forward",
      [](ptr q, ptr k, ptr v, ptr bias, ptr q_len, ptr kv_len, ptr centers, ptr out, ptr lse,
         int64_t B, int64_t H, int64_t Lq, int64_t Lk, int64_t D, int64_t Dv, int64_t left,
         int64_t right, int64_t dilation, bool shift, bool causal, double scale, int dtype,
         int nt) {
        const pyvrel::LocalAttnArgs a{as<const void>(q), as<const void>(k), as<const void>(v),
                                      as<const void>(bias), as<const int64_t>(q_len),
                                      as<const int64_t>(kv_len), as<const int64_t>(centers),
                                      as<void>(out), as<void>(lse), B, H, Lq, Lk, D, Dv, left,
                                      right, dilation, shift, causal, scale};
        local_attn_forward(a, dtype, nt);
      },
      nogil,
      R"pbdoc(Local attention forward: q (B, H, Lq, D), k (B, H, Lk, D), v (B, H, Lk, Dv), bias (H, W) or 0,
q_len/kv_len (B,) int64, centers (B, Lq) int64 or 0 -> out (B, H, Lq, Dv), lse (B, H, Lq).)pbdoc");
  m.def(
      "local_attn_backward",
      [](ptr q, ptr k, ptr v, ptr bias, ptr q_len, ptr kv_len, ptr centers, ptr out, ptr lse,
         ptr dout, ptr dlse, ptr dq, ptr dk, ptr dv, ptr dbias, int64_t B, int64_t H, int64_t Lq,
         int64_t Lk, int64_t D, int64_t Dv, int64_t left, int64_t right, int64_t dilation,
         bool shift, bool causal, double scale, int dtype, int nt) {
        const pyvrel::LocalAttnArgs a{as<const void>(q), as<const void>(k), as<const void>(v),
                                      as<const void>(bias), as<const int64_t>(q_len),
                                      as<const int64_t>(kv_len), as<const int64_t>(centers),
                                      as<void>(out), as<void>(lse), B, H, Lq, Lk, D, Dv, left,
                                      right, dilation, shift, causal, scale};
        const pyvrel::LocalAttnGrads g{as<const void>(dout), as<const void>(dlse), as<void>(dq),
                                       as<void>(dk), as<void>(dv), as<void>(dbias)};
        local_attn_backward(a, g, dtype, nt);
      },
      nogil,
      R"pbdoc(Local attention backward: the forward's arguments plus dout (B, H, Lq, Dv), dlse (B, H, Lq) or 0
-> dq, dk, dv and dbias (H, W) or 0 (all overwritten).)pbdoc");
}
