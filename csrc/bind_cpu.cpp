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
      "relation_viou_pairs",
      [](ptr a_boxes, ptr a_sub, ptr a_obj, ptr a_start, ptr a_len, ptr ia, ptr b_boxes, ptr b_sub,
         ptr b_obj, ptr b_start, ptr b_len, ptr ib, int64_t P, double off, ptr out, int nt) {
        relation_viou_pairs(as<const double>(a_boxes), as<const int64_t>(a_sub), as<const int64_t>(a_obj),
                            as<const int64_t>(a_start), as<const int64_t>(a_len), as<const int64_t>(ia),
                            as<const double>(b_boxes), as<const int64_t>(b_sub), as<const int64_t>(b_obj),
                            as<const int64_t>(b_start), as<const int64_t>(b_len), as<const int64_t>(ib), P,
                            off, as<double>(out), nt);
      },
      nogil,
      R"pbdoc(min(vIoU_sub, vIoU_obj) of relation pairs whose boxes are rows of two flat arrays (see kernels.h).)pbdoc");
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
  m.def(
      "seq_nms_forward",
      [](ptr boxes, ptr scores, ptr valid, ptr labels, int64_t B, int64_t T, int64_t N,
         double link_thr, double supp_thr, bool strict, int rescore, int suppress, int64_t max_seq,
         double min_score, double off, ptr scores_out, ptr seq_id, ptr seq_count, ptr seq_start,
         ptr seq_len, ptr seq_score, int64_t Kcap, ptr nodes, int64_t node_cap, ptr needed,
         int dtype, int nt) {
        seq_nms_forward(as<const void>(boxes), as<const void>(scores), as<const uint8_t>(valid),
                        as<const int64_t>(labels), B, T, N, link_thr, supp_thr, strict, rescore,
                        suppress, max_seq, min_score, off, as<void>(scores_out), as<int64_t>(seq_id),
                        as<int64_t>(seq_count), as<int64_t>(seq_start), as<int64_t>(seq_len),
                        as<double>(seq_score), Kcap, as<int64_t>(nodes), node_cap,
                        as<int64_t>(needed), dtype, nt);
      },
      nogil,
      R"pbdoc(Seq-NMS of B videos: boxes (B, T, N, 4), scores/valid/labels (B, T, N) -> rescored
scores, sequence ids (B, T, N) and sequences (start, length, score sum, box indices).)pbdoc");
  m.def(
      "viterbi_forward",
      [](ptr boxes, ptr unary, ptr frames, ptr lengths, ptr valid, int64_t B, int64_t T, int64_t N,
         int64_t k, double w, bool gap_scaling, bool legacy, double off, ptr paths, ptr scores,
         int dtype, int nt) {
        viterbi_forward(as<const void>(boxes), as<const void>(unary), as<const int64_t>(frames),
                        as<const int64_t>(lengths), as<const uint8_t>(valid), B, T, N, k, w,
                        gap_scaling, legacy, off, as<int64_t>(paths), as<double>(scores), dtype, nt);
      },
      nogil,
      R"pbdoc(Viterbi linking: boxes (B, T, N, 4), unary (B, T, N), frames (B, T), lengths (B,),
valid (B, T, N) -> paths (B, k, T), scores (B, k) of the k best disjoint paths.)pbdoc");
  m.def(
      "soft_viterbi_forward",
      [](ptr boxes, ptr unary, ptr frames, ptr lengths, ptr valid, ptr w, int64_t B, int64_t T,
         int64_t N, double tau, bool gap_scaling, bool legacy, double off, ptr marginals,
         ptr log_z, ptr grad_w, int dtype, int nt) {
        soft_viterbi_forward(as<const void>(boxes), as<const void>(unary),
                             as<const int64_t>(frames), as<const int64_t>(lengths),
                             as<const uint8_t>(valid), as<const double>(w), B, T, N, tau,
                             gap_scaling, legacy, off, as<double>(marginals), as<double>(log_z),
                             as<double>(grad_w), dtype, nt);
      },
      nogil,
      R"pbdoc(Smoothed Viterbi: -> marginals (B, T, N), log_partition (B,) and d log_partition /
d pairwise_weight (B,), float64.)pbdoc");
}
