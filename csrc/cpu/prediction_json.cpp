// Fast paths for reading prediction and annotation JSON files: trajectories cut out of the text,
// their numbers parsed exactly as strictly as JSON and correctly rounded (each value equals
// Python's float(text)); and a check that no object repeats a key (which JSON parsers resolve by
// silently keeping the last value).
#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <unordered_set>
#include <vector>

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

// One JSON number, exactly as JSON (RFC 8259) writes it: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
// (so no "007", "1.", ".5", "+1", "1e", "inf"); sets *is_float when it has a fraction or exponent.
// Returns the position after it, or nullptr if there is no valid number at p.
// Fast path (Clinger): a decimal without exponent and with at most 15 digits is m / 10^f with m
// and 10^f exact doubles, so the one IEEE division is correctly rounded, as from_chars is.
const char* number(const char* p, const char* end, double* value, bool* is_float) {
  const char* q = p;
  const bool neg = q < end && *q == '-';
  if (neg) ++q;
  if (q >= end || *q < '0' || *q > '9') return nullptr;
  uint64_t m = 0;
  int digits = 0, frac = 0;
  const bool leading_zero = *q == '0';
  for (; q < end && *q >= '0' && *q <= '9'; ++q, ++digits) m = 10 * m + static_cast<uint64_t>(*q - '0');
  if (leading_zero && digits > 1) return nullptr;
  if (q < end && *q == '.') {
    for (++q; q < end && *q >= '0' && *q <= '9'; ++q, ++digits, ++frac) m = 10 * m + static_cast<uint64_t>(*q - '0');
    if (frac == 0) return nullptr;
  }
  bool exponent = false;
  if (q < end && (*q == 'e' || *q == 'E')) {
    exponent = true;
    ++q;
    if (q < end && (*q == '+' || *q == '-')) ++q;
    const char* first = q;
    while (q < end && *q >= '0' && *q <= '9') ++q;
    if (q == first) return nullptr;
  }
  *is_float = *is_float || frac > 0 || exponent;
  if (digits <= 15 && !exponent) {
    const double v = static_cast<double>(m) / kPow10[frac];
    *value = neg ? -v : v;
    return q;
  }
  auto res = std::from_chars(p, q, *value, std::chars_format::general);
  if (res.ec != std::errc() || res.ptr != q) return nullptr;
  return q;
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

// A JSON string without escapes at p (the opening '"'); returns the position after the closing
// '"' and its contents in [*from, *to), or nullptr.
const char* plain_string(const char* p, const char* end, const char** from, const char** to) {
  if (p >= end || *p != '"') return nullptr;
  const char* q = p + 1;
  while (q < end && *q != '"' && *q != '\\') ++q;
  if (q >= end || *q != '"') return nullptr;
  *from = p + 1;
  *to = q;
  return q + 1;
}

inline bool equals(const char* from, const char* to, const char* word) {
  const size_t n = std::strlen(word);
  return static_cast<size_t>(to - from) == n && std::memcmp(from, word, n) == 0;
}

// {"xmin": N, "ymin": N, "xmax": N, "ymax": N} at p, keys in any order, each once.
const char* bbox_object(const char* p, const char* end, double* box) {
  static const char* names[4] = {"xmin", "ymin", "xmax", "ymax"};
  if (p >= end || *p != '{') return nullptr;
  int seen = 0;
  for (int n = 0; n < 4; ++n) {
    const char *from, *to;
    p = plain_string(skip(p + 1, end), end, &from, &to);
    if (p == nullptr) return nullptr;
    int k = 0;
    while (k < 4 && !equals(from, to, names[k])) ++k;
    if (k == 4 || (seen & (1 << k))) return nullptr;
    seen |= 1 << k;
    p = skip(p, end);
    if (p >= end || *p != ':') return nullptr;
    bool flt = false;
    p = number(skip(p + 1, end), end, box + k, &flt);
    if (p == nullptr) return nullptr;
    p = skip(p, end);
    if (p >= end || *p != (n < 3 ? ',' : '}')) return nullptr;
  }
  return p + 1;
}

// {"tid": INT, "bbox": {...}} at p, the two keys in any order, each once; tid a JSON integer of
// at most 15 digits.
const char* frame_box(const char* p, const char* end, int64_t* tid, double* box) {
  if (p >= end || *p != '{') return nullptr;
  bool have_tid = false, have_bbox = false;
  for (int n = 0; n < 2; ++n) {
    const char *from, *to;
    p = plain_string(skip(p + 1, end), end, &from, &to);
    if (p == nullptr) return nullptr;
    p = skip(p, end);
    if (p >= end || *p != ':') return nullptr;
    p = skip(p + 1, end);
    if (equals(from, to, "tid") && !have_tid) {
      double v;
      bool flt = false;
      const char* q = number(p, end, &v, &flt);
      if (q == nullptr || flt || q - p > 15) return nullptr;
      *tid = static_cast<int64_t>(v);
      have_tid = true;
      p = q;
    } else if (equals(from, to, "bbox") && !have_bbox) {
      p = bbox_object(p, end, box);
      if (p == nullptr) return nullptr;
      have_bbox = true;
    } else {
      return nullptr;
    }
    p = skip(p, end);
    if (p >= end || *p != (n < 1 ? ',' : '}')) return nullptr;
  }
  return p + 1;
}

// Lists of frames, each a list of frame_box objects, parsed into columns: box i is boxes[4i:4i+4]
// of object tid[i] in frame frame_of[i] (at most capacity boxes in all).
struct FrameBoxes {
  double* boxes;
  int64_t* tid;
  int64_t* frame_of;
  int64_t capacity;
  int64_t used = 0;

  // The list of frames at p (its '['); returns the position after it and its frame count, or
  // nullptr (and forgets its boxes) when it is not of that form.
  const char* parse(const char* p, const char* end, int64_t* frames) {
    const int64_t start = used;
    *frames = 0;
    p = skip(p + 1, end);
    if (p < end && *p == ']') return p + 1;
    while (p != nullptr) {
      p = frame(p, end, *frames);
      if (p == nullptr) break;
      ++*frames;
      p = skip(p, end);
      if (p < end && *p == ']') return p + 1;
      p = (p < end && *p == ',') ? skip(p + 1, end) : nullptr;
    }
    used = start;
    return nullptr;
  }

  // One frame's list of boxes at p; the position after it, or nullptr.
  const char* frame(const char* p, const char* end, int64_t f) {
    if (p >= end || *p != '[') return nullptr;
    p = skip(p + 1, end);
    if (p < end && *p == ']') return p + 1;
    while (true) {
      if (used >= capacity) return nullptr;
      p = frame_box(p, end, tid + used, boxes + 4 * used);
      if (p == nullptr) return nullptr;
      frame_of[used++] = f;
      p = skip(p, end);
      if (p < end && *p == ']') return p + 1;
      if (p >= end || *p != ',') return nullptr;
      p = skip(p + 1, end);
    }
  }
};

// Copy text to the skeleton, replacing each value of one of `keys` that cut(value, end, k) parses
// (returning the position after it) by the string "\u0000pv<k>", k = 0, 1, ... Returns the number
// of values cut, or -1 when the skeleton capacity is too small.
template <class Cut>
int64_t cut_values(const char* text, int64_t length, const char* const* keys, int n_keys, char* skeleton,
                   int64_t skeleton_capacity, int64_t* skeleton_length, int64_t max_values, Cut cut) {
  const char* end = text + length;
  const char* copied = text;  // text before this is already in the skeleton
  char* s = skeleton;
  int64_t n = 0;
  auto emit = [&](const char* from, const char* to) -> bool {
    if (s + (to - from) > skeleton + skeleton_capacity) return false;
    std::memcpy(s, from, to - from);
    s += to - from;
    return true;
  };
  for (const char* p = text; p < end;) {
    const char* q = static_cast<const char*>(std::memchr(p, '"', end - p));
    if (q == nullptr) break;
    int key = 0;
    size_t key_len = 0;
    for (; key < n_keys; ++key) {
      key_len = std::strlen(keys[key]);
      if (q + key_len <= end && std::memcmp(q, keys[key], key_len) == 0) break;
    }
    if (key == n_keys) {
      p = q + 1;
      continue;
    }
    const char* v = skip(q + key_len, end);
    if (v >= end || *v != ':') { p = q + 1; continue; }
    v = skip(v + 1, end);
    if (v >= end || *v != '[' || n >= max_values) { p = q + 1; continue; }
    const char* after = cut(v, end, n);
    if (after == nullptr) { p = q + 1; continue; }  // not of the expected form: left to the JSON parser
    char marker[40];
    int m = std::snprintf(marker, sizeof marker, "\"\\u0000pv%lld\"", static_cast<long long>(n));
    if (!emit(copied, v) || !emit(marker, marker + m)) return -1;
    copied = after;
    ++n;
    p = after;
  }
  if (!emit(copied, end)) return -1;
  *skeleton_length = s - skeleton;
  return n;
}

// Skip a JSON string at p (the opening '"'); returns the position after it, or nullptr.
const char* skip_string(const char* p, const char* end) {
  for (++p; p < end; ++p) {
    if (*p == '\\') { ++p; continue; }
    if (*p == '"') return p + 1;
  }
  return nullptr;
}

// ---- the whole prediction file into columns ----------------------------------------------------

// Why a parse stops: the file is not of the plain form (the caller then parses it generally), a
// video id repeats, or a buffer is too small.
enum ParseStatus : int64_t { kParsed = 0, kNotPlain = 1, kDuplicateVideo = 2, kNoRoom = -1 };

// A JSON string of printable ASCII without escapes at p; [*from, *to) its contents. Anything else
// (escapes, control characters, non-ASCII bytes) returns nullptr: the general parser decides.
const char* ascii_string(const char* p, const char* end, const char** from, const char** to) {
  if (p >= end || *p != '"') return nullptr;
  const char* q = p + 1;
  while (q < end && *q != '"' && *q != '\\' && static_cast<unsigned char>(*q) >= 0x20 &&
         static_cast<unsigned char>(*q) < 0x80)
    ++q;
  if (q >= end || *q != '"') return nullptr;
  *from = p + 1;
  *to = q;
  return q + 1;
}

// A JSON integer (no fraction or exponent, at most 15 digits) at p.
const char* integer(const char* p, const char* end, int64_t* value) {
  double v;
  bool flt = false;
  const char* q = number(p, end, &v, &flt);
  if (q == nullptr || flt || q - p > 15) return nullptr;
  *value = static_cast<int64_t>(v);
  return q;
}

// Any JSON value at p, validated as strictly as JSON (strings: printable ASCII and escapes only);
// returns the position after it, or nullptr.
const char* any_value(const char* p, const char* end, int depth) {
  if (p >= end || depth > 64) return nullptr;
  const char c = *p;
  if (c == '"') {
    for (++p; p < end; ++p) {
      const unsigned char u = static_cast<unsigned char>(*p);
      if (*p == '"') return p + 1;
      if (u < 0x20 || u >= 0x80) return nullptr;
      if (*p == '\\') {
        ++p;
        if (p >= end) return nullptr;
        if (*p == 'u') {
          for (int k = 0; k < 4; ++k)
            if (++p >= end || !std::isxdigit(static_cast<unsigned char>(*p))) return nullptr;
        } else if (!std::strchr("\"\\/bfnrt", *p)) {
          return nullptr;
        }
      }
    }
    return nullptr;
  }
  if (c == '{' || c == '[') {
    const char close = c == '{' ? '}' : ']';
    p = skip(p + 1, end);
    if (p < end && *p == close) return p + 1;
    while (true) {
      if (c == '{') {
        p = any_value(p, end, depth + 1);  // the key
        if (p == nullptr || p[-1] != '"') return nullptr;
        p = skip(p, end);
        if (p >= end || *p != ':') return nullptr;
        p = skip(p + 1, end);
      }
      p = any_value(p, end, depth + 1);
      if (p == nullptr) return nullptr;
      p = skip(p, end);
      if (p < end && *p == close) return p + 1;
      if (p >= end || *p != ',') return nullptr;
      p = skip(p + 1, end);
    }
  }
  for (const char* word : {"true", "false", "null"}) {
    const size_t n = std::strlen(word);
    if (static_cast<size_t>(end - p) >= n && std::memcmp(p, word, n) == 0) return p + n;
  }
  double v;
  bool flt = false;
  return number(p, end, &v, &flt);
}

struct TripletKey {
  int64_t a, b, c;
  bool operator==(const TripletKey& o) const { return a == o.a && b == o.b && c == o.c; }
};
struct TripletHash {
  size_t operator()(const TripletKey& t) const {
    return std::hash<int64_t>()(t.a) ^ (std::hash<int64_t>()(t.b) * 31) ^ (std::hash<int64_t>()(t.c) * 1009);
  }
};

struct PredictionParser {
  const char* text;
  const char* end;
  PredictionColumns& out;
  std::unordered_map<std::string_view, int64_t> strings;
  std::unordered_map<TripletKey, int64_t, TripletHash> triplets;
  std::unordered_set<std::string_view> videos;
  int64_t status = kParsed;

  const char* fail(int64_t why) {
    if (status == kParsed) status = why;
    return nullptr;
  }

  int64_t intern(const char* from, const char* to) {
    auto [it, added] = strings.try_emplace(std::string_view(from, to - from), out.n_strings);
    if (added) {
      if (out.n_strings >= out.max_strings) return -1;
      out.string_span[2 * out.n_strings] = from - text;
      out.string_span[2 * out.n_strings + 1] = to - from;
      ++out.n_strings;
    }
    return it->second;
  }

  // One relation object at p.
  const char* relation(const char* p) {
    if (p >= end || *p != '{') return fail(kNotPlain);
    if (out.n_relations >= out.max_relations) return fail(kNoRoom);
    const int64_t r = out.n_relations;
    int seen = 0;  // bits: triplet, score, duration, sub_traj, obj_traj, subject_tid, object_tid
    int64_t ids[3] = {0, 0, 0};
    p = skip(p + 1, end);
    if (p < end && *p == '}') return fail(kNotPlain);
    while (true) {
      const char *from, *to;
      p = ascii_string(p, end, &from, &to);
      if (p == nullptr) return fail(kNotPlain);
      p = skip(p, end);
      if (p >= end || *p != ':') return fail(kNotPlain);
      p = skip(p + 1, end);
      int bit;
      if (equals(from, to, "triplet")) {
        bit = 0;
        if (p >= end || *p != '[') return fail(kNotPlain);
        for (int k = 0; k < 3; ++k) {
          const char *s0, *s1;
          p = ascii_string(skip(p + 1, end), end, &s0, &s1);
          if (p == nullptr) return fail(kNotPlain);
          ids[k] = intern(s0, s1);
          if (ids[k] < 0) return fail(kNoRoom);
          p = skip(p, end);
          if (p >= end || *p != (k < 2 ? ',' : ']')) return fail(kNotPlain);
        }
        ++p;
      } else if (equals(from, to, "score")) {
        bit = 1;
        bool flt = false;
        p = number(p, end, out.score + r, &flt);
      } else if (equals(from, to, "duration")) {
        bit = 2;
        if (p >= end || *p != '[') return fail(kNotPlain);
        p = integer(skip(p + 1, end), end, out.duration + 2 * r);
        if (p == nullptr) return fail(kNotPlain);
        p = skip(p, end);
        if (p >= end || *p != ',') return fail(kNotPlain);
        p = integer(skip(p + 1, end), end, out.duration + 2 * r + 1);
        if (p == nullptr) return fail(kNotPlain);
        p = skip(p, end);
        if (p >= end || *p != ']') return fail(kNotPlain);
        ++p;
      } else if (equals(from, to, "sub_traj") || equals(from, to, "obj_traj")) {
        bit = from[0] == 's' ? 3 : 4;
        if (p >= end || *p != '[') return fail(kNotPlain);
        int64_t boxes = 0;
        bool flt = false;
        p = box_list(p + 1, end, out.boxes + 4 * out.n_boxes, 4 * (out.max_boxes - out.n_boxes), &boxes, &flt);
        if (p == nullptr) return fail(kNotPlain);  // also when out of room: the general path reads it
        out.traj[4 * r + 2 * (bit - 3)] = out.n_boxes;
        out.traj[4 * r + 2 * (bit - 3) + 1] = boxes;
        out.n_boxes += boxes;
      } else if (equals(from, to, "subject_tid") || equals(from, to, "object_tid")) {
        bit = from[0] == 's' ? 5 : 6;
        int64_t tid;
        if (end - p >= 4 && std::memcmp(p, "null", 4) == 0) {
          p += 4;
        } else {
          p = integer(p, end, &tid);
        }
      } else {
        return fail(kNotPlain);  // other keys are kept by the general path
      }
      if (p == nullptr || (seen & (1 << bit))) return fail(kNotPlain);
      seen |= 1 << bit;
      p = skip(p, end);
      if (p < end && *p == '}') break;
      if (p >= end || *p != ',') return fail(kNotPlain);
      p = skip(p + 1, end);
    }
    const int64_t begin = out.duration[2 * r], stop = out.duration[2 * r + 1];
    if ((seen & 31) != 31 || begin < 0 || begin >= stop || out.traj[4 * r + 1] < stop - begin ||
        out.traj[4 * r + 3] < stop - begin)
      return fail(kNotPlain);  // missing fields or a short trajectory: the general path names it
    auto [it, added] = triplets.try_emplace(TripletKey{ids[0], ids[1], ids[2]}, out.n_triplets);
    if (added) {
      if (out.n_triplets >= out.max_triplets) return fail(kNoRoom);
      std::memcpy(out.triplet_strings + 3 * out.n_triplets, ids, sizeof ids);
      ++out.n_triplets;
    }
    out.triplet_id[r] = it->second;
    ++out.n_relations;
    return p + 1;
  }

  // The "results" object at p.
  const char* results(const char* p) {
    if (p >= end || *p != '{') return fail(kNotPlain);
    p = skip(p + 1, end);
    if (p < end && *p == '}') return p + 1;
    while (true) {
      const char *from, *to;
      p = ascii_string(p, end, &from, &to);
      if (p == nullptr) return fail(kNotPlain);
      if (!videos.insert(std::string_view(from, to - from)).second) {
        out.duplicate[0] = from - text;
        out.duplicate[1] = to - from;
        return fail(kDuplicateVideo);
      }
      if (out.n_videos >= out.max_videos) return fail(kNoRoom);
      const int64_t v = out.n_videos++;
      out.video_span[2 * v] = from - text;
      out.video_span[2 * v + 1] = to - from;
      const int64_t first = out.n_relations;
      p = skip(p, end);
      if (p >= end || *p != ':') return fail(kNotPlain);
      p = skip(p + 1, end);
      if (p >= end || *p != '[') return fail(kNotPlain);
      p = skip(p + 1, end);
      if (p < end && *p == ']') {
        ++p;
      } else {
        while (true) {
          p = relation(p);
          if (p == nullptr) return nullptr;
          p = skip(p, end);
          if (p < end && *p == ']') { ++p; break; }
          if (p >= end || *p != ',') return fail(kNotPlain);
          p = skip(p + 1, end);
        }
      }
      out.video_count[v] = out.n_relations - first;
      p = skip(p, end);
      if (p < end && *p == '}') return p + 1;
      if (p >= end || *p != ',') return fail(kNotPlain);
      p = skip(p + 1, end);
    }
  }

  int64_t file() {
    const char* p = skip(text, end);
    if (p >= end || *p != '{') return kNotPlain;
    bool have_results = false, have_version = false;
    p = skip(p + 1, end);
    while (p != nullptr) {
      const char *from, *to;
      p = ascii_string(p, end, &from, &to);
      if (p == nullptr) return kNotPlain;
      p = skip(p, end);
      if (p >= end || *p != ':') return kNotPlain;
      p = skip(p + 1, end);
      if (equals(from, to, "results") && !have_results) {
        have_results = true;
        p = results(p);
        if (p == nullptr) return status == kParsed ? kNotPlain : status;
      } else if (equals(from, to, "version") && !have_version) {
        have_version = true;
        const char *v0, *v1;
        p = ascii_string(p, end, &v0, &v1);  // a version that is not a plain string: the general path
        if (p == nullptr) return kNotPlain;
        out.version[0] = v0 - text;
        out.version[1] = v1 - v0;
      } else if (equals(from, to, "results") || equals(from, to, "version")) {
        return kNotPlain;
      } else {
        p = any_value(p, end, 0);  // e.g. external_data, validated but not kept
        if (p == nullptr) return kNotPlain;
      }
      p = skip(p, end);
      if (p < end && *p == '}') break;
      if (p >= end || *p != ',') return kNotPlain;
      p = skip(p + 1, end);
    }
    if (!have_results || skip(p + 1, end) != end) return kNotPlain;
    return kParsed;
  }
};

}  // namespace

int64_t cut_trajectories(const char* text, int64_t length, char* skeleton, int64_t skeleton_capacity,
                         int64_t* skeleton_length, double* numbers, int64_t numbers_capacity,
                         int64_t* box_counts, uint8_t* is_float, int64_t max_trajectories) {
  static const char* keys[2] = {"\"sub_traj\"", "\"obj_traj\""};
  int64_t n_numbers = 0;
  return cut_values(text, length, keys, 2, skeleton, skeleton_capacity, skeleton_length, max_trajectories,
                    [&](const char* v, const char* end, int64_t k) -> const char* {
                      int64_t boxes = 0;
                      bool flt = false;
                      const char* after = box_list(v + 1, end, numbers + n_numbers, numbers_capacity - n_numbers,
                                                   &boxes, &flt);
                      if (after == nullptr) return nullptr;
                      box_counts[k] = boxes;
                      is_float[k] = flt ? 1 : 0;
                      n_numbers += 4 * boxes;
                      return after;
                    });
}

int64_t cut_frame_boxes(const char* text, int64_t length, char* skeleton, int64_t skeleton_capacity,
                        int64_t* skeleton_length, double* boxes, int64_t* box_tid, int64_t* box_frame,
                        int64_t box_capacity, int64_t* frame_counts, int64_t* box_counts, int64_t max_values) {
  static const char* keys[1] = {"\"trajectories\""};
  FrameBoxes out{boxes, box_tid, box_frame, box_capacity};
  return cut_values(text, length, keys, 1, skeleton, skeleton_capacity, skeleton_length, max_values,
                    [&](const char* v, const char* end, int64_t k) -> const char* {
                      const int64_t before = out.used;
                      const char* after = out.parse(v, end, frame_counts + k);
                      if (after != nullptr) box_counts[k] = out.used - before;
                      return after;
                    });
}

int64_t first_duplicate_key(const char* text, int64_t length, int64_t* key_start, int64_t* key_length) {
  const char* end = text + length;
  // one entry per open object or array; objects keep their keys so far
  std::vector<std::vector<std::string_view>> objects;
  std::vector<std::unordered_set<std::string_view>> large;  // an object's keys once it has many
  std::vector<bool> is_object;
  for (const char* p = text; p < end;) {
    const char c = *p;
    if (c == '"') {
      const char* after = skip_string(p, end);
      if (after == nullptr) return 0;
      const char* q = skip(after, end);
      if (!is_object.empty() && is_object.back() && q < end && *q == ':') {
        std::string_view key(p + 1, after - p - 2);
        auto& keys = objects.back();
        auto& set = large.back();
        bool dup;
        if (keys.size() < 16) {
          dup = std::find(keys.begin(), keys.end(), key) != keys.end();
        } else {
          if (set.empty()) set.insert(keys.begin(), keys.end());
          dup = !set.insert(key).second;
        }
        if (dup) {
          *key_start = p + 1 - text;
          *key_length = static_cast<int64_t>(key.size());
          return 1;
        }
        keys.push_back(key);
      }
      p = after;
    } else if (c == '{' || c == '[') {
      is_object.push_back(c == '{');
      if (c == '{') {
        objects.emplace_back();
        large.emplace_back();
      }
      ++p;
    } else if (c == '}' || c == ']') {
      if (is_object.empty()) return 0;
      if (is_object.back()) {
        objects.pop_back();
        large.pop_back();
      }
      is_object.pop_back();
      ++p;
    } else {
      ++p;
    }
  }
  return 0;
}

int64_t parse_prediction_file(const char* text, int64_t length, PredictionColumns& out) {
  PredictionParser parser{text, text + length, out};
  out.version[0] = -1;
  out.version[1] = 0;
  return parser.file();
}

}  // namespace pyvrel::cpu
