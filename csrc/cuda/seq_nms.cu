// Seq-NMS on CUDA: a grid-wide kernel builds the successor bit rows of every (video, frame, box)
// in parallel, a second one counts the links into each box, then one block per video runs the
// data-parallel select-rescore-suppress loop of pyvrel/seq_nms_block.h (the same code the CPU
// extension runs with a one-thread block in the tests). This file only supplies the block
// primitives: barriers, the arg-max reduction, atomics and the block memory.
#include "kernels.h"
#include "pyvrel/seq_nms_block.h"
#include "utils.cuh"

namespace pyvrel::cuda {

namespace {

constexpr int kSeqThreads = 512;  // one block per video; a multiple of the warp size
constexpr int kSeqWarps = kSeqThreads / 32;

// The Block of pyvrel/seq_nms_block.h for a CUDA thread block.
struct CudaBlock {
  acc_t* stage_g;
  uint8_t* stage_live;
  SeqNmsShared* sh;
  acc_t* red_value;    // (kSeqWarps,)
  int64_t* red_index;  // (kSeqWarps,)
  __device__ int64_t tid() const { return threadIdx.x; }
  __device__ int64_t size() const { return blockDim.x; }
  __device__ bool leader() const { return threadIdx.x == 0; }
  __device__ void sync() const { __syncthreads(); }
  __device__ bool sync_or(bool p) const { return __syncthreads_or(p) != 0; }
  __device__ void dec(int32_t* p) const { atomicSub(p, 1); }
  // Warp shuffles, then the first warp reduces the warp results; everyone reads the winner.
  __device__ void best(acc_t& v, int64_t& i) const {
    auto warp_best = [](acc_t& wv, int64_t& wi) {
      for (int o = 16; o > 0; o /= 2) {
        const acc_t ov = __shfl_down_sync(0xffffffffu, wv, o);
        const int64_t oi = __shfl_down_sync(0xffffffffu, static_cast<long long>(wi), o);
        if (seq_nms_root_better(ov, oi, wv, wi)) {
          wv = ov;
          wi = oi;
        }
      }
    };
    warp_best(v, i);
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    if (lane == 0) {
      red_value[warp] = v;
      red_index[warp] = i;
    }
    __syncthreads();
    if (warp == 0) {
      v = lane < kSeqWarps ? red_value[lane] : acc_t(0);
      i = lane < kSeqWarps ? red_index[lane] : -1;
      warp_best(v, i);
      if (lane == 0) {
        red_value[0] = v;
        red_index[0] = i;
      }
    }
    __syncthreads();
    v = red_value[0];
    i = red_index[0];
    __syncthreads();  // the scratch may be reused right after
  }
};

template <typename T>
__global__ void seq_nms_link_kernel(const T* boxes, const uint8_t* valid, const int64_t* labels,
                                    int64_t B, int64_t Tn, int64_t N, T off, T thr, bool strict,
                                    uint8_t* workspace) {
  const int64_t W = seq_nms_words(N), pairs = Tn - 1, total = B * pairs * N * W;
  PYVREL_CUDA_LOOP(idx, total) {
    const int64_t word = idx % W, i = (idx / W) % N, t = (idx / (W * N)) % pairs,
                  b = idx / (W * N * pairs), frame = (b * Tn + t) * N;
    const SeqNmsBlockWork w = seq_nms_block_carve(workspace + b * seq_nms_block_bytes(Tn, N), Tn, N);
    w.link[(t * N + i) * W + word] =
        seq_nms_link_word(boxes + 4 * frame, valid + frame, labels != nullptr ? labels + frame : nullptr,
                          N, i, word, off, thr, strict);
  }
}

__global__ void seq_nms_in_count_kernel(int64_t B, int64_t Tn, int64_t N, uint8_t* workspace) {
  const int64_t W = seq_nms_words(N), TN = Tn * N;
  PYVREL_CUDA_LOOP(idx, B * TN) {
    const int64_t b = idx / TN, k = idx % TN;
    const SeqNmsBlockWork w = seq_nms_block_carve(workspace + b * seq_nms_block_bytes(Tn, N), Tn, N);
    w.in_cnt[k] = k < N ? 0 : seq_nms_in_count(w.link + (k / N - 1) * N * W, N, W, k % N);
  }
}

template <typename T>
__global__ void __launch_bounds__(kSeqThreads) seq_nms_video_kernel(const SeqNmsArgs a, uint8_t* workspace) {
  extern __shared__ __align__(8) unsigned char stage[];  // 2 N values, then 2 N flags
  __shared__ SeqNmsShared sh;
  __shared__ acc_t red_value[kSeqWarps];
  __shared__ int64_t red_index[kSeqWarps];
  const int64_t b = blockIdx.x;
  CudaBlock blk{reinterpret_cast<acc_t*>(stage), stage + 2 * a.N * sizeof(acc_t), &sh, red_value,
                red_index};
  seq_nms_block_video(
      blk, seq_nms_block_video_of<T>(a, b, seq_nms_block_carve(workspace + b * seq_nms_block_bytes(a.Tn, a.N),
                                                                a.Tn, a.N)));
}

template <typename T>
void seq_nms_forward_impl(const SeqNmsArgs& a, void* workspace, std::uintptr_t stream) {
  const int64_t B = a.B, Tn = a.Tn, N = a.N;
  if (B == 0 || Tn == 0 || N == 0) return;
  const int64_t smem = seq_nms_stage_bytes(N);
  auto kernel = seq_nms_video_kernel<T>;
  if (smem > 48 * 1024 &&
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                           static_cast<int>(smem)) != cudaSuccess) {
    cudaGetLastError();  // clear it: the error below says what to do
    throw std::invalid_argument("seq_nms: " + std::to_string(N) +
                                " boxes per frame need more block memory than this GPU has "
                                "(about 18 bytes per box); use backend='cpp'");
  }
  auto* ws = static_cast<uint8_t*>(workspace);
  if (Tn > 1) {
    const int64_t total = B * (Tn - 1) * N * seq_nms_words(N);
    seq_nms_link_kernel<T><<<grid_size(total), kThreads, 0, as_stream(stream)>>>(
        static_cast<const T*>(a.boxes), a.valid, a.labels, B, Tn, N, static_cast<T>(a.pixel_offset),
        static_cast<T>(a.link_threshold), a.strict, ws);
    check_launch("seq_nms_forward (links)");
  }
  seq_nms_in_count_kernel<<<grid_size(B * Tn * N), kThreads, 0, as_stream(stream)>>>(B, Tn, N, ws);
  check_launch("seq_nms_forward (link counts)");
  kernel<<<static_cast<unsigned int>(B), kSeqThreads, smem, as_stream(stream)>>>(a, ws);
  check_launch("seq_nms_forward (videos)");
}

}  // namespace

int64_t seq_nms_workspace_bytes(int64_t B, int64_t T, int64_t N) {
  return B * seq_nms_block_bytes(T, N);
}

void seq_nms_forward(const SeqNmsArgs& args, int dtype, void* workspace, std::uintptr_t stream) {
  PYVREL_DISPATCH_FLOAT(dtype, "seq_nms", seq_nms_forward_impl, args, workspace, stream);
}

}  // namespace pyvrel::cuda
