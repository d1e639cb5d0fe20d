// pybind11 module pyvrel._cuda: the CUDA kernels. Buffers are passed as integer addresses of
// contiguous CUDA tensors allocated by pyvrel.ops and `stream` as the integer value of a
// cudaStream_t (torch.cuda.current_stream().cuda_stream); see csrc/cuda/kernels.h for shapes.
// Compiled by the host C++ compiler: only the CUDA runtime API header is used here.
#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

#include "bind_common.h"
#include "cuda/kernels.h"
#include "pyvrel/codes.h"

namespace {

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

  using Extra = ptr;  // the last argument of the shared bindings: the stream
#include "bind_shared.inc"
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
  m.def("local_attention_workspace_bytes", &local_attention_workspace_bytes,
        R"pbdoc(Bytes of the local_attention_backward workspace for (B, H, Lq, Lk, D, Dv, W,
dtype).)pbdoc");
  def_local_attention_backward<ptr, int, ptr>(
      m,
      [](const auto& a, const auto& g, ptr workspace, int dtype, ptr stream) {
        local_attention_backward(a, g, as<void>(workspace), dtype, stream);
      },
      R"pbdoc(Local attention backward: as the CPU one, plus a workspace of
local_attention_workspace_bytes bytes before the dtype code. Deterministic.)pbdoc");
  m.def("seq_nms_workspace_bytes", &seq_nms_workspace_bytes,
        R"pbdoc(Bytes of the seq_nms_forward workspace for B videos of T frames x N boxes.)pbdoc");
  def_seq_nms_forward<int, ptr, ptr>(
      m, "seq_nms_forward",
      [](const auto& a, int dtype, ptr workspace, ptr stream) { seq_nms_forward(a, dtype, as<void>(workspace), stream); },
      R"pbdoc(Seq-NMS of B videos on the device (one block per video); see pyvrel._C.seq_nms_forward.
workspace: seq_nms_workspace_bytes(B, T, N) bytes.)pbdoc");
  m.def("viterbi_workspace_bytes", &viterbi_workspace_bytes,
        R"pbdoc(Bytes of the viterbi_forward workspace for B problems of T frames x N boxes.)pbdoc");
  m.attr("VITERBI_MAX_BOXES") = kViterbiMaxBoxes;
  m.def(
      "viterbi_forward",
      [](ptr boxes, ptr unary, ptr frames, ptr lengths, ptr valid, int64_t B, int64_t T, int64_t N,
         int64_t k, double w, bool gap_scaling, bool legacy, double off, ptr paths, ptr scores,
         int dtype, ptr workspace, ptr stream) {
        viterbi_forward(as<const void>(boxes), as<const void>(unary), as<const int64_t>(frames),
                        as<const int64_t>(lengths), as<const uint8_t>(valid), B, T, N, k, w,
                        gap_scaling, legacy, off, as<int64_t>(paths), as<double>(scores), dtype,
                        as<void>(workspace), stream);
      },
      nogil,
      R"pbdoc(Viterbi linking on the device (one block per problem); see pyvrel._C.viterbi_forward.
workspace: viterbi_workspace_bytes(B, T, N) bytes; N <= VITERBI_MAX_BOXES.)pbdoc");
  m.def("soft_viterbi_workspace_bytes", &soft_viterbi_workspace_bytes,
        R"pbdoc(Bytes of the soft_viterbi_forward workspace for B problems of T frames x N boxes.)pbdoc");
  m.def(
      "soft_viterbi_forward",
      [](ptr boxes, ptr unary, ptr frames, ptr lengths, ptr valid, ptr w, int64_t B, int64_t T,
         int64_t N, double tau, bool gap_scaling, bool legacy, double off, ptr marginals,
         ptr log_z, ptr grad_w, int dtype, ptr workspace, ptr stream) {
        soft_viterbi_forward(as<const void>(boxes), as<const void>(unary),
                             as<const int64_t>(frames), as<const int64_t>(lengths),
                             as<const uint8_t>(valid), as<const double>(w), B, T, N, tau,
                             gap_scaling, legacy, off, as<double>(marginals), as<double>(log_z),
                             as<double>(grad_w), dtype, as<void>(workspace), stream);
      },
      nogil,
      R"pbdoc(Smoothed Viterbi on the device (one block per problem); see
pyvrel._C.soft_viterbi_forward. workspace: soft_viterbi_workspace_bytes(B, T, N) bytes.)pbdoc");
}
