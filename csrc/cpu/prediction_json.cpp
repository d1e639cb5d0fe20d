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

// Strings (by content) and triplets (of string ids) numbered in order of first appearance; the
// string ids are text spans (offset, length), the triplets their three ids. -1: a table is full.
struct Interner {
  const char* text;
  int64_t* string_span;
  int64_t max_strings;
  int64_t& n_strings;
  int64_t* triplet_strings;
  int64_t max_triplets;
  int64_t& n_triplets;
  std::unordered_map<std::string_view, int64_t> strings{};
  std::unordered_map<TripletKey, int64_t, TripletHash> triplets{};

  int64_t string(const char* from, const char* to) {
    auto [it, added] = strings.try_emplace(std::string_view(from, to - from), n_strings);
    if (added) {
      if (n_strings >= max_strings) return -1;
      string_span[2 * n_strings] = from - text;
      string_span[2 * n_strings + 1] = to - from;
      ++n_strings;
    }
    return it->second;
  }

  int64_t triplet(const int64_t ids[3]) {
    auto [it, added] = triplets.try_emplace(TripletKey{ids[0], ids[1], ids[2]}, n_triplets);
    if (added) {
      if (n_triplets >= max_triplets) return -1;
      std::memcpy(triplet_strings + 3 * n_triplets, ids, 3 * sizeof(int64_t));
      ++n_triplets;
    }
    return it->second;
  }
};

struct PredictionParser {
  const char* text;
  const char* end;
  PredictionColumns& out;
  Interner names{text, out.string_span, out.max_strings, out.n_strings,
                 out.triplet_strings, out.max_triplets, out.n_triplets};
  std::unordered_set<std::string_view> videos{};
  int64_t status = kParsed;

  const char* fail(int64_t why) {
    if (status == kParsed) status = why;
    return nullptr;
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
          ids[k] = names.string(s0, s1);
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
    out.triplet_id[r] = names.triplet(ids);
    if (out.triplet_id[r] < 0) return fail(kNoRoom);
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


// ---- annotation files into columns ---------------------------------------------------------------

struct AnnotationParser {
  const char* text;
  AnnotationColumns& out;
  Interner names{text, out.string_span, out.max_strings, out.n_strings,
                 out.triplet_strings, out.max_triplets, out.n_triplets};
  bool no_room = false;
  // one video's objects (sorted by tid at the checks), boxes and relations, reused across videos
  std::vector<std::pair<int64_t, int64_t>> objects;  // tid, category string id
  std::vector<int64_t> tids, box_tid, box_frame, box_object, first, slot, frame_sorted;
  std::vector<double> box_xyxy;
  struct Relation {
    int64_t subject, object, predicate, begin, end;
  };
  std::vector<Relation> relations;

  // A list at p (its '['), each item parsed by item(p) (returning the position after it, or nullptr).
  template <class Item>
  static const char* list(const char* p, const char* end, Item item) {
    if (p >= end || *p != '[') return nullptr;
    p = skip(p + 1, end);
    if (p < end && *p == ']') return p + 1;
    while (true) {
      p = item(p);
      if (p == nullptr) return nullptr;
      p = skip(p, end);
      if (p < end && *p == ']') return p + 1;
      if (p >= end || *p != ',') return nullptr;
      p = skip(p + 1, end);
    }
  }

  // An object at p whose keys are all among `keys` (each at most once), each value parsed by
  // value(p, key index); returns the position after it and the keys seen (bits), or nullptr.
  template <class Value>
  static const char* object(const char* p, const char* end, const char* const* keys, int n_keys, int* seen,
                            Value value) {
    if (p >= end || *p != '{') return nullptr;
    *seen = 0;
    p = skip(p + 1, end);
    if (p < end && *p == '}') return p + 1;
    while (true) {
      const char *from, *to;
      p = ascii_string(p, end, &from, &to);
      if (p == nullptr) return nullptr;
      int k = 0;
      while (k < n_keys && !equals(from, to, keys[k])) ++k;
      if (k == n_keys || (*seen & (1 << k))) return nullptr;
      *seen |= 1 << k;
      p = skip(p, end);
      if (p >= end || *p != ':') return nullptr;
      p = value(skip(p + 1, end), k);
      if (p == nullptr) return nullptr;
      p = skip(p, end);
      if (p < end && *p == '}') return p + 1;
      if (p >= end || *p != ',') return nullptr;
      p = skip(p + 1, end);
    }
  }

  // The string at p, interned; its id in *id.
  const char* interned(const char* p, const char* end, int64_t* id) {
    const char *from, *to;
    p = ascii_string(p, end, &from, &to);
    if (p == nullptr) return nullptr;
    *id = names.string(from, to);
    if (*id < 0) no_room = true;
    return *id < 0 ? nullptr : p;
  }

  // Video v: the annotation object at p, or nullptr when it is not of the plain form or fails a
  // check (the caller then marks it for the full validation). key: the mapping key it must equal.
  const char* annotation(const char* p, const char* end, int64_t v, std::string_view key) {
    static const char* top[8] = {"video_id", "frame_count", "fps", "width", "height", "subject/objects",
                                 "trajectories", "relation_instances"};
    objects.clear();
    box_tid.clear();
    box_frame.clear();
    box_xyxy.clear();
    relations.clear();
    const char *vid0 = nullptr, *vid1 = nullptr;
    int64_t frame_count = -1, frames = 0;
    double size[3];  // fps, width, height
    int seen = 0, top_seen = 0;
    if (p >= end || *p != '{') return nullptr;
    p = skip(p + 1, end);
    while (true) {
      const char *from, *to;
      p = ascii_string(p, end, &from, &to);
      if (p == nullptr) return nullptr;
      int k = 0;
      while (k < 8 && !equals(from, to, top[k])) ++k;
      if (k < 8 && (top_seen & (1 << k))) return nullptr;  // a repeated key: the JSON parser's rules apply
      p = skip(p, end);
      if (p >= end || *p != ':') return nullptr;
      p = skip(p + 1, end);
      bool flt = false;
      switch (k) {
        case 0: p = ascii_string(p, end, &vid0, &vid1); break;
        case 1: p = integer(p, end, &frame_count); break;
        case 2: case 3: case 4: p = number(p, end, size + k - 2, &flt); break;
        case 5: {
          static const char* keys[2] = {"tid", "category"};
          p = list(p, end, [&](const char* q) {
            std::pair<int64_t, int64_t> o;
            q = object(q, end, keys, 2, &seen, [&](const char* r, int key) {
              return key == 0 ? integer(r, end, &o.first) : interned(r, end, &o.second);
            });
            if (q == nullptr || seen != 3) return static_cast<const char*>(nullptr);
            objects.push_back(o);
            return q;
          });
          break;
        }
        case 6:
          p = list(p, end, [&](const char* q) {
            q = list(q, end, [&](const char* r) {
              int64_t tid;
              double box[4];
              r = frame_box(r, end, &tid, box);
              if (r == nullptr) return r;
              box_tid.push_back(tid);
              box_frame.push_back(frames);
              box_xyxy.insert(box_xyxy.end(), box, box + 4);
              return r;
            });
            ++frames;
            return q;
          });
          break;
        case 7: {
          static const char* keys[5] = {"subject_tid", "object_tid", "predicate", "begin_fid", "end_fid"};
          p = list(p, end, [&](const char* q) {
            Relation r;
            int64_t* fields[5] = {&r.subject, &r.object, &r.predicate, &r.begin, &r.end};
            q = object(q, end, keys, 5, &seen, [&](const char* s, int key) {
              return key == 2 ? interned(s, end, fields[key]) : integer(s, end, fields[key]);
            });
            if (q == nullptr || seen != 31) return static_cast<const char*>(nullptr);
            relations.push_back(r);
            return q;
          });
          break;
        }
        default: p = any_value(p, end, 0);  // e.g. VidOR's "version", validated but not kept
      }
      if (p == nullptr) return nullptr;
      if (k < 8) top_seen |= 1 << k;
      p = skip(p, end);
      if (p < end && *p == '}') break;
      if (p >= end || *p != ',') return nullptr;
      p = skip(p + 1, end);
    }
    if (top_seen != 255 || frame_count < 0 || frames > frame_count) return nullptr;
    if (!key.empty() && key != std::string_view(vid0, vid1 - vid0)) return nullptr;
    return checked(v, frame_count, size[1], size[2], key.empty() ? std::string_view(vid0, vid1 - vid0) : key) ? p + 1
                                                                                                             : nullptr;
  }

  // The checks of VideoAnnotation.from_json on the parsed video (distinct tids, known tids, one box
  // per tid and frame, relation spans within frame_count whose every frame has both boxes); when
  // they pass, its columns are appended: boxes sorted by (tid, frame), a relation's boxes a slice.
  bool checked(int64_t v, int64_t frame_count, double width, double height, std::string_view id) {
    std::sort(objects.begin(), objects.end());
    const size_t n_objects = objects.size(), n_boxes = box_tid.size();
    tids.resize(n_objects);
    for (size_t k = 0; k < n_objects; ++k) {
      tids[k] = objects[k].first;
      if (k > 0 && tids[k] == tids[k - 1]) return false;
    }
    auto index = [&](int64_t tid) -> int64_t {  // the object of a tid, or -1
      const auto it = std::lower_bound(tids.begin(), tids.end(), tid);
      return it == tids.end() || *it != tid ? -1 : it - tids.begin();
    };
    first.assign(n_objects + 1, 0);
    box_object.resize(n_boxes);
    for (size_t i = 0; i < n_boxes; ++i) {
      box_object[i] = index(box_tid[i]);
      if (box_object[i] < 0) return false;
      ++first[box_object[i] + 1];
    }
    for (size_t k = 0; k < n_objects; ++k) first[k + 1] += first[k];
    if (out.n_boxes + static_cast<int64_t>(n_boxes) > out.max_boxes) return !(no_room = true);
    // a counting sort: each object's boxes stay in file order, which is frame order
    frame_sorted.resize(n_boxes);
    slot.assign(first.begin(), first.end() - 1);
    double* boxes = out.boxes + 4 * out.n_boxes;
    for (size_t i = 0; i < n_boxes; ++i) {
      const int64_t j = slot[box_object[i]]++;
      std::memcpy(boxes + 4 * j, box_xyxy.data() + 4 * i, 4 * sizeof(double));
      frame_sorted[j] = box_frame[i];
    }
    for (size_t k = 0; k < n_objects; ++k)
      for (int64_t j = first[k] + 1; j < first[k + 1]; ++j)
        if (frame_sorted[j] == frame_sorted[j - 1]) return false;  // two boxes of a tid in one frame
    const int64_t n_relations = static_cast<int64_t>(relations.size());
    if (out.n_relations + n_relations > out.max_relations) return !(no_room = true);
    int64_t* rows = out.relation + 5 * out.n_relations;
    for (int64_t i = 0; i < n_relations; ++i) {
      const Relation& r = relations[i];
      const int64_t s = index(r.subject), o = index(r.object);
      if (s < 0 || o < 0 || r.begin < 0 || r.begin >= r.end || r.end > frame_count) return false;
      rows[5 * i + 1] = r.begin;
      rows[5 * i + 2] = r.end;
      for (int role = 0; role < 2; ++role) {
        const int64_t k = role == 0 ? s : o;
        const int64_t* from = frame_sorted.data() + first[k];
        const int64_t* to = frame_sorted.data() + first[k + 1];
        const int64_t* lo = std::lower_bound(from, to, r.begin);
        if (std::lower_bound(lo, to, r.end) - lo != r.end - r.begin) return false;  // a frame without a box
        rows[5 * i + 3 + role] = out.n_boxes + (lo - frame_sorted.data());
      }
    }
    for (int64_t i = 0; i < n_relations; ++i) {  // all checks passed: the triplets
      const Relation& r = relations[i];
      const int64_t ids[3] = {objects[index(r.subject)].second, r.predicate, objects[index(r.object)].second};
      rows[5 * i] = names.triplet(ids);
      if (rows[5 * i] < 0) return !(no_room = true);
    }
    int64_t* row = out.video + 5 * v;
    row[0] = 0;
    row[1] = id.data() - text;
    row[2] = static_cast<int64_t>(id.size());
    row[3] = n_relations;
    row[4] = static_cast<int64_t>(n_boxes);
    out.size[2 * v] = width;
    out.size[2 * v + 1] = height;
    out.n_relations += n_relations;
    out.n_boxes += static_cast<int64_t>(n_boxes);
    return true;
  }

  // The next video's row: 1 (not plain) until checked() fills it.
  int64_t video(std::string_view key) {
    if (out.n_videos >= out.max_videos) {
      no_room = true;
      return -1;
    }
    int64_t* row = out.video + 5 * out.n_videos;
    row[0] = 1;
    row[1] = key.empty() ? -1 : key.data() - text;
    row[2] = static_cast<int64_t>(key.size());
    row[3] = row[4] = 0;
    return out.n_videos++;
  }

  int64_t files(const int64_t* offsets, int64_t n_files) {
    for (int64_t i = 0; i < n_files; ++i) {
      const char* end = text + offsets[i + 1];
      const int64_t v = video({});
      if (v < 0) return kNoRoom;
      const char* p = annotation(skip(text + offsets[i], end), end, v, {});
      if (no_room) return kNoRoom;
      if (p != nullptr && skip(p, end) != end) out.video[5 * v] = 1;  // text after the object
    }
    return kParsed;
  }

  int64_t mapping(const char* p, const char* end) {
    std::unordered_set<std::string_view> keys;
    p = skip(p, end);
    if (p >= end || *p != '{') return kNotPlain;
    p = skip(p + 1, end);
    if (p < end && *p == '}') return skip(p + 1, end) == end ? kParsed : kNotPlain;  // no video
    while (true) {
      const char *from, *to;
      p = ascii_string(p, end, &from, &to);
      const std::string_view key(from, to - from);
      if (p == nullptr || key.empty() || !keys.insert(key).second) return kNotPlain;
      p = skip(p, end);
      if (p >= end || *p != ':') return kNotPlain;
      p = skip(p + 1, end);
      if (p >= end || *p != '{') return kNotPlain;  // not a mapping of annotations
      const int64_t v = video(key);
      if (v < 0) return kNoRoom;
      const char* q = annotation(p, end, v, key);
      if (no_room) return kNoRoom;
      if (q == nullptr) {
        out.video[5 * v] = 1;
        q = any_value(p, end, 0);
        if (q == nullptr) return kNotPlain;
      }
      p = skip(q, end);
      if (p < end && *p == '}') break;
      if (p >= end || *p != ',') return kNotPlain;
      p = skip(p + 1, end);
    }
    return p < end && skip(p + 1, end) == end ? kParsed : kNotPlain;
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

namespace pyvrel::cpu {

int64_t parse_annotations(const char* text, const int64_t* offsets, int64_t n_texts, bool mapping,
                          AnnotationColumns& out) {
  AnnotationParser parser{text, out};
  return mapping ? parser.mapping(text + offsets[0], text + offsets[1]) : parser.files(offsets, n_texts);
}

}  // namespace pyvrel::cpu
