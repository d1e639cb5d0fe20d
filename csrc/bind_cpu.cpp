// pybind11 module pyvrel._C: the CPU kernels. Buffers are passed as integer addresses of
// contiguous tensors allocated by pyvrel.ops; see csrc/cpu/kernels.h for shapes.
#include <cstdint>
#include <cstring>
#include <string>

#include "bind_common.h"
#include "cpu/association.h"
#include "cpu/kernels.h"
#include "cpu/prediction_json.h"
#include "cpu/relation_viou.h"
#include "pyvrel/codes.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

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

  using Extra = int;  // the last argument of the shared bindings: the OpenMP thread count
#include "bind_shared.inc"
  m.def(
      "nms_forward",
      [](ptr boxes, ptr order, ptr idxs, ptr keep, int64_t N, int dtype, double thr, double off) {
        nms_forward(as<const void>(boxes), as<const int64_t>(order), as<const int64_t>(idxs),
                    as<uint8_t>(keep), N, dtype, thr, off);
      },
      nogil,
      R"pbdoc(Greedy NMS: boxes (N, 4) visited in order (N,); idxs (N,) or 0 for none -> keep (N,) uint8.
Suppresses IoU > threshold.)pbdoc");
  // Not op kernels: the evaluation's pair vIoU (pyvrel/eval/_viou_pairs.py), the association
  // (pyvrel/eval/_association.py) and the prediction reader's cut (pyvrel/data/_json.py), each
  // called from that one module.
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
      "associate_video",
      [](ptr seg_count, int64_t S, ptr pred, ptr score, ptr boxes, bool vidvrd2, double threshold,
         int64_t tolerance, double off, bool later_confs_one, ptr rel, ptr rel_score, ptr out_boxes,
         int64_t box_capacity, ptr sizes) {
        associate_video(as<const int64_t>(seg_count), S, as<const int64_t>(pred), as<const double>(score),
                        as<const double>(boxes), vidvrd2, threshold, tolerance, off, later_confs_one,
                        as<int64_t>(rel), as<double>(rel_score), as<double>(out_boxes),
                        box_capacity, as<int64_t>(sizes));
      },
      nogil,
      R"pbdoc(Greedy association of one video's segment predictions into relations (see association.h).)pbdoc");
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
      "parse_prediction_file",
      [](ptr text, int64_t length, ptr video_span, ptr video_count, ptr triplet_id, ptr score, ptr duration,
         ptr traj, ptr boxes, ptr triplet_strings, ptr string_span, ptr sizes) -> int64_t {
        int64_t* n = as<int64_t>(sizes);  // in: 5 capacities; out: 5 counts, version, duplicate spans
        PredictionColumns c{as<int64_t>(video_span), as<int64_t>(video_count), as<int64_t>(triplet_id),
                            as<double>(score), as<int64_t>(duration), as<int64_t>(traj), as<double>(boxes),
                            as<int64_t>(triplet_strings), as<int64_t>(string_span), n[0], n[1], n[2], n[3], n[4]};
        const int64_t status = parse_prediction_file(as<const char>(text), length, c);
        const int64_t result[9] = {c.n_videos, c.n_relations, c.n_boxes, c.n_triplets, c.n_strings,
                                   c.version[0], c.version[1], c.duplicate[0], c.duplicate[1]};
        std::memcpy(n, result, sizeof result);
        return status;
      },
      nogil,
      R"pbdoc(A plain prediction file into columns; sizes: 5 capacities in, 9 counts/spans out (see kernels.h).)pbdoc");
  m.def(
      "parse_annotations",
      [](ptr text, ptr offsets, int64_t n_texts, bool mapping, ptr video, ptr size, ptr relation, ptr boxes,
         ptr triplet_strings, ptr string_span, ptr sizes) -> int64_t {
        int64_t* n = as<int64_t>(sizes);  // in: 5 capacities; out: 5 counts
        AnnotationColumns c{as<int64_t>(video), as<double>(size), as<int64_t>(relation), as<double>(boxes),
                            as<int64_t>(triplet_strings), as<int64_t>(string_span), n[0], n[1], n[2], n[3], n[4]};
        const int64_t status = parse_annotations(as<const char>(text), as<const int64_t>(offsets), n_texts, mapping, c);
        const int64_t result[5] = {c.n_videos, c.n_relations, c.n_boxes, c.n_triplets, c.n_strings};
        std::memcpy(n, result, sizeof result);
        return status;
      },
      nogil,
      R"pbdoc(Plain annotation files into relation columns; sizes: 5 capacities in, 5 counts out (see prediction_json.h).)pbdoc");
  m.def(
      "first_duplicate_key",
      [](ptr text, int64_t length, ptr key_start, ptr key_length) -> int64_t {
        return first_duplicate_key(as<const char>(text), length, as<int64_t>(key_start), as<int64_t>(key_length));
      },
      nogil,
      R"pbdoc(1 when some JSON object repeats a key, with its position (see kernels.h).)pbdoc");
  def_local_attention_backward<int, int>(
      m, [](const auto& a, const auto& g, int dtype, int nt) { local_attention_backward(a, g, dtype, nt); },
      R"pbdoc(Local attention backward: the forward's arguments plus dout (B, H, Lq, Dv), dlse (B, H, Lq) or 0
-> dq, dk, dv and dbias (H, W) or 0 (all overwritten).)pbdoc");
  // The C++ kernel and the CUDA kernel's block algorithm (run serially) take the same arguments.
  def_seq_nms_forward<int, int>(
      m, "seq_nms_forward", [](const auto& a, int dtype, int nt) { seq_nms_forward(a, dtype, nt); },
      R"pbdoc(Seq-NMS of B videos: boxes (B, T, N, 4), scores/valid/labels (B, T, N) -> rescored
scores, sequence ids (B, T, N) and sequences (start, length, score sum, box indices).)pbdoc");
  def_seq_nms_forward<int, int>(
      m, "seq_nms_block_forward", [](const auto& a, int dtype, int nt) { seq_nms_block_forward(a, dtype, nt); },
      R"pbdoc(seq_nms_forward by the CUDA kernel's block algorithm with a one-thread block (for tests).)pbdoc");
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
