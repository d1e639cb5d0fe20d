// Fast path for reading prediction JSON files: trajectories cut out of the text, their numbers
// parsed with std::from_chars (correctly rounded, so each value equals Python's float(text)).
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <system_error>

#include "prediction_json.h"

namespace pyvrel::cpu {

namespace {

inline bool is_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

inline const char* skip(const char* p, const char* end) {
  while (p < end && is_space(*p)) ++p;
  return p;
}

// Exact powers of ten (every 10^k with k <= 22 is a double).
constexpr double kPow10[16] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                               1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};

// One JSON number (digits required after an optional '-'); sets *is_float when it has a
// fraction or exponent. Returns nullptr if there is no valid number at p.
// Fast path (Clinger): a decimal without exponent and with at most 15 digits is m / 10^f with m
// and 10^f exact doubles, so the one IEEE division is correctly rounded, as from_chars is.
const char* number(const char* p, const char* end, double* value, bool* is_float) {
  const char* q = p;
  const bool neg = q < end && *q == '-';
  if (neg) ++q;
  if (q >= end || *q < '0' || *q > '9') return nullptr;
  uint64_t m = 0;
  int digits = 0, frac = 0;
  for (; q < end && *q >= '0' && *q <= '9'; ++q, ++digits) m = 10 * m + static_cast<uint64_t>(*q - '0');
  if (q < end && *q == '.') {
    for (++q; q < end && *q >= '0' && *q <= '9'; ++q, ++digits, ++frac) m = 10 * m + static_cast<uint64_t>(*q - '0');
  }
  const bool exponent = q < end && (*q == 'e' || *q == 'E');
  if (digits <= 15 && frac > 0 && !exponent) {  // "1." (frac == 0 after a dot) goes to from_chars
    const double v = static_cast<double>(m) / kPow10[frac];
    *value = neg ? -v : v;
    *is_float = true;
    return q;
  }
  if (digits <= 15 && !exponent && q[-1] != '.') {
    const double v = static_cast<double>(m);
    *value = neg ? -v : v;
    return q;
  }
  auto res = std::from_chars(p, end, *value, std::chars_format::general);
  if (res.ec != std::errc()) return nullptr;
  for (const char* c = p; c < res.ptr; ++c)
    if (*c == '.' || *c == 'e' || *c == 'E') *is_float = true;
  return res.ptr;
}

// A list of [a, b, c, d] boxes starting at p (just after the opening '['). Returns the position
// after the closing ']', or nullptr. Boxes go to out (4 numbers each, at most capacity numbers).
const char* box_list(const char* p, const char* end, double* out, int64_t capacity, int64_t* boxes,
                     bool* is_float) {
  *boxes = 0;
  p = skip(p, end);
  if (p < end && *p == ']') return p + 1;
  while (true) {
    if (p >= end || *p != '[' || 4 * (*boxes + 1) > capacity) return nullptr;
    ++p;
    for (int k = 0; k < 4; ++k) {
      p = skip(p, end);
      p = number(p, end, out + 4 * *boxes + k, is_float);
      if (p == nullptr) return nullptr;
      p = skip(p, end);
      if (p >= end || *p != (k < 3 ? ',' : ']')) return nullptr;
      ++p;
    }
    ++*boxes;
    p = skip(p, end);
    if (p < end && *p == ']') return p + 1;
    if (p >= end || *p != ',') return nullptr;
    p = skip(p + 1, end);
  }
}

}  // namespace

int64_t cut_trajectories(const char* text, int64_t length, char* skeleton, int64_t skeleton_capacity,
                         int64_t* skeleton_length, double* numbers, int64_t numbers_capacity,
                         int64_t* box_counts, uint8_t* is_float, int64_t max_trajectories) {
  static const char* keys[2] = {"\"sub_traj\"", "\"obj_traj\""};
  const int64_t key_len = 10;
  const char* end = text + length;
  const char* copied = text;  // text before this is already in the skeleton
  char* s = skeleton;
  int64_t n_traj = 0, n_numbers = 0;
  auto emit = [&](const char* from, const char* to) -> bool {
    if (s + (to - from) > skeleton + skeleton_capacity) return false;
    std::memcpy(s, from, to - from);
    s += to - from;
    return true;
  };
  for (const char* p = text; p + key_len <= end;) {
    const char* q = static_cast<const char*>(std::memchr(p, '"', end - p));
    if (q == nullptr || q + key_len > end) break;
    if (std::memcmp(q, keys[0], key_len) != 0 && std::memcmp(q, keys[1], key_len) != 0) {
      p = q + 1;
      continue;
    }
    const char* v = skip(q + key_len, end);
    if (v >= end || *v != ':') { p = q + 1; continue; }
    v = skip(v + 1, end);
    if (v >= end || *v != '[' || n_traj >= max_trajectories) { p = q + 1; continue; }
    int64_t boxes = 0;
    bool flt = false;
    const char* after = box_list(v + 1, end, numbers + n_numbers, numbers_capacity - n_numbers, &boxes, &flt);
    if (after == nullptr) { p = q + 1; continue; }  // not a plain box list: left to the JSON parser
    char marker[40];
    int m = std::snprintf(marker, sizeof marker, "\"\\u0000pv%lld\"", static_cast<long long>(n_traj));
    if (!emit(copied, v) || !emit(marker, marker + m)) return -1;
    copied = after;
    box_counts[n_traj] = boxes;
    is_float[n_traj] = flt ? 1 : 0;
    n_numbers += 4 * boxes;
    ++n_traj;
    p = after;
  }
  if (!emit(copied, end)) return -1;
  *skeleton_length = s - skeleton;
  return n_traj;
}

}  // namespace pyvrel::cpu
