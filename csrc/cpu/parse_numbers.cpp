// Parsing of comma-separated decimal numbers (the trajectories of prediction JSON files) into
// float64, with std::from_chars: correctly rounded, so each value equals Python's float(text).
#include <charconv>
#include <cstdint>
#include <system_error>

#include "kernels.h"

namespace pyvrel::cpu {

int64_t parse_numbers(const char* text, int64_t length, double* out, int64_t capacity) {
  const char* p = text;
  const char* end = text + length;
  int64_t n = 0;
  while (p < end) {
    if (n >= capacity) return -(p - text) - 1;
    const char* q = p;
    if (*q == '+') ++q;  // JSON has no leading '+', but Python's float() accepts it
    auto res = std::from_chars(q, end, out[n], std::chars_format::general);
    if (res.ec != std::errc() || (res.ptr < end && *res.ptr != ',')) return -(p - text) - 1;
    ++n;
    p = res.ptr + (res.ptr < end ? 1 : 0);
  }
  return n;
}

}  // namespace pyvrel::cpu
