// pybind11 module pyvrel._cuda: the CUDA kernels. Buffers are passed as integer addresses of
// contiguous CUDA tensors allocated by pyvrel.ops and `stream` as the integer value of a
// cudaStream_t (torch.cuda.current_stream().cuda_stream); see csrc/cuda/kernels.h for shapes.
// Compiled by the host C++ compiler: only the CUDA runtime API header is used here.
#include <cuda_runtime_api.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "cuda/kernels.h"

namespace py = pybind11;
using ptr = std::uintptr_t;

namespace {

template <typename T>
T* as(ptr p) {
  return reinterpret_cast<T*>(p);
}

// Runtime and driver versions as CUDA encodes them (1000 * major + 10 * minor); 0 when the query
// fails (no driver installed), so this never throws on a machine without a GPU.
int runtime_version() {
  int v = 0;
  return cudaRuntimeGetVersion(&v) == cudaSuccess ? v : 0;
}
int driver_version() {
  int v = 0;
  return cudaDriverGetVersion(&v) == cudaSuccess ? v : 0;
}

py::dict build_info() {
  py::dict d;
  d["version"] = PYVREL_VERSION;
  d["cuda_version"] = PYVREL_CUDA_VERSION;
  d["architectures"] = PYVREL_CUDA_ARCHS;
  d["runtime_version"] = runtime_version();
  d["driver_version"] = driver_version();
  return d;
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() =
      "pyvrel CUDA kernels. Called by pyvrel.ops with raw device buffer addresses and a "
      "cudaStream_t as an integer (last argument); launches are asynchronous on that stream.";
  using namespace pyvrel::cuda;
  const auto nogil = py::call_guard<py::gil_scoped_release>();

  m.def("build_info", &build_info,
        "Version, CUDA toolkit, architectures and CUDA runtime/driver versions (0: none) of this "
        "build.");

  m.def(
      "box_iou_forward",
      [](ptr a, ptr b, ptr out, int64_t B, int64_t N, int64_t M, int dtype, double off,
         ptr stream) {
        box_iou_forward(as<const void>(a), as<const void>(b), as<void>(out), B, N, M, dtype, off,
                        stream);
      },
      nogil, R"pbdoc(Pairwise IoU: a (B, N, 4), b (B, M, 4) -> out (B, N, M).)pbdoc");
  m.def(
      "box_iou_backward",
      [](ptr a, ptr b, ptr g, ptr ga, ptr gb, int64_t B, int64_t N, int64_t M, int dtype,
         double off, ptr stream) {
        box_iou_backward(as<const void>(a), as<const void>(b), as<const void>(g), as<void>(ga),
                         as<void>(gb), B, N, M, dtype, off, stream);
      },
      nogil,
      R"pbdoc(Gradient of box_iou: grad (B, N, M) -> grad_a (B, N, 4), grad_b (B, M, 4).)pbdoc");
  m.def(
      "box_iou_aligned_forward",
      [](ptr a, ptr b, ptr out, int64_t K, int dtype, double off, ptr stream) {
        box_iou_aligned_forward(as<const void>(a), as<const void>(b), as<void>(out), K, dtype, off,
                                stream);
      },
      nogil, R"pbdoc(Aligned IoU: a (K, 4), b (K, 4) -> out (K,).)pbdoc");
  m.def(
      "box_iou_aligned_backward",
      [](ptr a, ptr b, ptr g, ptr ga, ptr gb, int64_t K, int dtype, double off, ptr stream) {
        box_iou_aligned_backward(as<const void>(a), as<const void>(b), as<const void>(g),
                                 as<void>(ga), as<void>(gb), K, dtype, off, stream);
      },
      nogil,
      R"pbdoc(Gradient of box_iou_aligned: grad (K,) -> grad_a (K, 4), grad_b (K, 4).)pbdoc");
  m.def("nms_workspace_bytes", &nms_workspace_bytes,
        R"pbdoc(Bytes of the nms_forward workspace for N boxes: N * ceil(N / 64) * 8.)pbdoc");
  m.attr("NMS_MAX_BOXES") = kNmsMaxBoxes;
  m.def(
      "nms_forward",
      [](ptr boxes, ptr order, ptr idxs, ptr keep, int64_t N, int dtype, double thr, double off,
         ptr workspace, ptr stream) {
        nms_forward(as<const void>(boxes), as<const int64_t>(order), as<const int64_t>(idxs),
                    as<uint8_t>(keep), N, dtype, thr, off, as<void>(workspace), stream);
      },
      nogil,
      R"pbdoc(Greedy NMS: boxes (N, 4) visited in order (N,); idxs (N,) or 0 for none -> keep (N,) uint8.
Suppresses IoU > threshold. workspace: nms_workspace_bytes(N) bytes; N <= NMS_MAX_BOXES.)pbdoc");
  m.def(
      "tube_iou_forward",
      [](ptr a, ptr as_, ptr al, int64_t N, int64_t Ta, ptr b, ptr bs, ptr bl, int64_t M,
         int64_t Tb, ptr out, int dtype, int mode, double off, ptr stream) {
        tube_iou_forward(as<const void>(a), as<const int64_t>(as_), as<const int64_t>(al), N, Ta,
                         as<const void>(b), as<const int64_t>(bs), as<const int64_t>(bl), M, Tb,
                         as<void>(out), dtype, mode, off, stream);
      },
      nogil,
      R"pbdoc(Pairwise tube IoU: tubes (N, Ta, 4) x (M, Tb, 4) with start/length -> out (N, M).)pbdoc");
  m.def(
      "tube_iou_aligned_forward",
      [](ptr a, ptr as_, ptr al, int64_t Ta, ptr b, ptr bs, ptr bl, int64_t Tb, int64_t N, ptr out,
         int dtype, int mode, double off, ptr stream) {
        tube_iou_aligned_forward(as<const void>(a), as<const int64_t>(as_), as<const int64_t>(al),
                                 Ta, as<const void>(b), as<const int64_t>(bs),
                                 as<const int64_t>(bl), Tb, N, as<void>(out), dtype, mode, off,
                                 stream);
      },
      nogil, R"pbdoc(Aligned tube IoU: tubes (N, Ta, 4) and (N, Tb, 4) -> out (N,).)pbdoc");
  m.def(
      "tube_iou_aligned_backward",
      [](ptr a, ptr as_, ptr al, int64_t Ta, ptr b, ptr bs, ptr bl, int64_t Tb, int64_t N, ptr g,
         ptr ga, ptr gb, int dtype, int mode, double off, ptr stream) {
        tube_iou_aligned_backward(as<const void>(a), as<const int64_t>(as_), as<const int64_t>(al),
                                  Ta, as<const void>(b), as<const int64_t>(bs),
                                  as<const int64_t>(bl), Tb, N, as<const void>(g), as<void>(ga),
                                  as<void>(gb), dtype, mode, off, stream);
      },
      nogil,
      R"pbdoc(Gradient of aligned tube IoU: grad (N,) -> grad_a (N, Ta, 4), grad_b (N, Tb, 4).)pbdoc");
  m.def(
      "interpolate_boxes_forward",
      [](ptr frames, ptr boxes, ptr counts, int64_t N, int64_t K, ptr out, int64_t L, int dtype,
         ptr stream) {
        interpolate_boxes_forward(as<const int64_t>(frames), as<const void>(boxes),
                                  as<const int64_t>(counts), N, K, as<void>(out), L, dtype, stream);
      },
      nogil,
      R"pbdoc(Linear interpolation: frames (N, K), boxes (N, K, 4), counts (N,) -> out (N, L, 4).)pbdoc");
  m.def(
      "interpolate_boxes_backward",
      [](ptr frames, ptr counts, int64_t N, int64_t K, ptr g, int64_t L, ptr gb, int dtype,
         ptr stream) {
        interpolate_boxes_backward(as<const int64_t>(frames), as<const int64_t>(counts), N, K,
                                   as<const void>(g), L, as<void>(gb), dtype, stream);
      },
      nogil, R"pbdoc(Gradient of interpolate_boxes: grad (N, L, 4) -> grad_boxes (N, K, 4).)pbdoc");
  m.def("local_attn_workspace_bytes", &local_attn_workspace_bytes,
        R"pbdoc(Bytes of the local_attn_backward workspace for (B, H, Lq, Lk, D, Dv, W, dtype).)pbdoc");
  m.def(
      "local_attn_forward",
      [](ptr q, ptr k, ptr v, ptr bias, ptr q_len, ptr kv_len, ptr centers, ptr out, ptr lse,
         int64_t B, int64_t H, int64_t Lq, int64_t Lk, int64_t D, int64_t Dv, int64_t left,
         int64_t right, int64_t dilation, bool shift, bool causal, double scale, int dtype,
         ptr stream) {
        const pyvrel::LocalAttnArgs a{as<const void>(q), as<const void>(k), as<const void>(v),
                                      as<const void>(bias), as<const int64_t>(q_len),
                                      as<const int64_t>(kv_len), as<const int64_t>(centers),
                                      as<void>(out), as<void>(lse), B, H, Lq, Lk, D, Dv, left,
                                      right, dilation, shift, causal, scale};
        local_attn_forward(a, dtype, stream);
      },
      nogil,
      R"pbdoc(Local attention forward: q (B, H, Lq, D), k (B, H, Lk, D), v (B, H, Lk, Dv), bias (H, W) or 0,
q_len/kv_len (B,) int64, centers (B, Lq) int64 or 0 -> out (B, H, Lq, Dv), lse (B, H, Lq).)pbdoc");
  m.def(
      "local_attn_backward",
      [](ptr q, ptr k, ptr v, ptr bias, ptr q_len, ptr kv_len, ptr centers, ptr out, ptr lse,
         ptr dout, ptr dlse, ptr dq, ptr dk, ptr dv, ptr dbias, int64_t B, int64_t H, int64_t Lq,
         int64_t Lk, int64_t D, int64_t Dv, int64_t left, int64_t right, int64_t dilation,
         bool shift, bool causal, double scale, ptr workspace, int dtype, ptr stream) {
        const pyvrel::LocalAttnArgs a{as<const void>(q), as<const void>(k), as<const void>(v),
                                      as<const void>(bias), as<const int64_t>(q_len),
                                      as<const int64_t>(kv_len), as<const int64_t>(centers),
                                      as<void>(out), as<void>(lse), B, H, Lq, Lk, D, Dv, left,
                                      right, dilation, shift, causal, scale};
        const pyvrel::LocalAttnGrads g{as<const void>(dout), as<const void>(dlse), as<void>(dq),
                                       as<void>(dk), as<void>(dv), as<void>(dbias)};
        local_attn_backward(a, g, as<void>(workspace), dtype, stream);
      },
      nogil,
      R"pbdoc(Local attention backward: as the CPU one, plus a workspace of local_attn_workspace_bytes bytes
before the dtype code. Deterministic.)pbdoc");
}
