// OpenMP helpers of the CPU kernels. An exception that leaves an OpenMP region calls
// std::terminate and kills the Python process, so kernels allocate their per-thread buffers
// before a region (ThreadBuffers) and run bodies that may still throw (growing containers)
// through ParallelErrors, which rethrows the first exception after the region: pybind11 turns
// std::bad_alloc into MemoryError, std::invalid_argument/std::length_error into ValueError.
#pragma once
#include <cstddef>
#include <exception>
#include <mutex>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace pyvrel::cpu {

// Index of the calling thread in the current OpenMP team (0 outside a region or without OpenMP).
inline int thread_index() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// `threads` scratch buffers of `size` elements each, allocated up front (outside any region).
template <typename T>
class ThreadBuffers {
 public:
  ThreadBuffers(int threads, std::size_t size)
      : size_(size), data_(static_cast<std::size_t>(threads > 0 ? threads : 1) * size) {}
  // This thread's buffer.
  T* mine() { return data_.data() + static_cast<std::size_t>(thread_index()) * size_; }

 private:
  std::size_t size_;
  std::vector<T> data_;
};

// Keeps the first exception thrown by run() in any thread; rethrow() after the region.
class ParallelErrors {
 public:
  template <typename F>
  void run(F&& body) noexcept {
    try {
      body();
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!first_) first_ = std::current_exception();
    }
  }
  void rethrow() const {
    if (first_) std::rethrow_exception(first_);
  }

 private:
  std::mutex mutex_;
  std::exception_ptr first_;
};

}  // namespace pyvrel::cpu
