// Greedy relation association, one video (association.h). Every value is computed with the
// operations, in the order, of the Python reference (pyvrel.eval.reference.associate_reference):
// sums as NumPy's pairwise summation, joins as its zero-initialised accumulation, gaps as
// np.interp. Built with -ffp-contract=off, so nothing is fused.
#include "association.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

namespace pyvrel::cpu {

namespace {

// NumPy's float64 sum of a contiguous vector (pairwise: 8 accumulators over blocks of <= 128).
double numpy_sum(const double* a, int64_t n) {
  if (n < 8) {
    double res = 0.0;
    for (int64_t i = 0; i < n; ++i) res += a[i];
    return res;
  }
  if (n <= 128) {
    double r[8];
    for (int j = 0; j < 8; ++j) r[j] = a[j];
    int64_t i = 8;
    for (; i < n - (n % 8); i += 8)
      for (int j = 0; j < 8; ++j) r[j] += a[i + j];
    double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) res += a[i];
    return res;
  }
  int64_t n2 = n / 2;
  n2 -= n2 % 8;
  return numpy_sum(a, n2) + numpy_sum(a + n2, n - n2);
}

double clip0(double v) { return (v > 0 || std::isnan(v)) ? v : 0.0; }  // np.clip(v, 0, None)

double area(const double* b, double off) { return (b[2] - b[0] + off) * (b[3] - b[1] + off); }

double intersection(const double* a, const double* b, double off) {
  return clip0(std::min(a[2], b[2]) - std::max(a[0], b[0]) + off) *
         clip0(std::min(a[3], b[3]) - std::max(a[1], b[1]) + off);
}

// A track: boxes (len, 4) of frames start .. start + len.
struct Track {
  int64_t start = 0;
  std::vector<double> boxes;
  int64_t len() const { return static_cast<int64_t>(boxes.size() / 4); }
  int64_t end() const { return start + len(); }
};

struct TrackView {
  int64_t start, len;
  const double* boxes;
  int64_t end() const { return start + len; }
};

TrackView view(const Track& t) { return {t.start, t.len(), t.boxes.data()}; }

// cubic_iou(a, b, off, tolerance) of pyvrel/eval/association.py.
double cubic_iou(const TrackView& a, const TrackView& b, double off, int64_t tolerance,
                 std::vector<double>& scratch) {
  const int64_t lo = std::max(a.start, b.start), hi = std::min(a.end(), b.end());
  if (hi <= lo) {
    if (a.len == 0 || b.len == 0) return 0.0;
    const bool a_first = a.start <= b.start;
    const TrackView& first = a_first ? a : b;
    const TrackView& second = a_first ? b : a;
    if (second.start - first.end() >= tolerance) return 0.0;
    const double* x = first.boxes + 4 * (first.len - 1);
    const double* y = second.boxes;
    const double inter = intersection(x, y, off);
    const double uni = area(x, off) + area(y, off) - inter;
    return uni > 0 ? inter / uni : 0.0;
  }
  const int64_t n = hi - lo;
  scratch.resize(3 * n);
  double *inter = scratch.data(), *area_a = inter + n, *area_b = area_a + n;
  for (int64_t i = 0; i < n; ++i) {
    const double* x = a.boxes + 4 * (lo - a.start + i);
    const double* y = b.boxes + 4 * (lo - b.start + i);
    inter[i] = intersection(x, y, off);
    area_a[i] = area(x, off);
    area_b[i] = area(y, off);
  }
  const double in = numpy_sum(inter, n);
  const double uni = (numpy_sum(area_a, n) + numpy_sum(area_b, n)) - in;
  return uni > 0 ? in / uni : 0.0;
}

// a = the union of a and b: shared frames averaged, a gap interpolated (np.interp over the
// frames that have a box).
void join(Track& a, const TrackView& b) {
  const int64_t a_end = a.end(), b_end = b.end();
  const int64_t start = std::min(a.start, b.start), end = std::max(a_end, b_end), n = end - start;
  std::vector<double> out(4 * n, 0.0);
  for (int64_t k = 0; k < 4 * a.len(); ++k) out[4 * (a.start - start) + k] += a.boxes[k];
  for (int64_t k = 0; k < 4 * b.len; ++k) out[4 * (b.start - start) + k] += b.boxes[k];
  const int64_t lo = std::max(a.start, b.start), hi = std::min(a_end, b_end);
  if (hi > lo) {
    for (int64_t k = 4 * (lo - start); k < 4 * (hi - start); ++k) out[k] /= 2;
  } else if (hi < lo) {  // frames [g0, g1) (from start) have no box
    const int64_t g0 = hi - start, g1 = lo - start;
    if (g0 == 0 && g1 == n) throw std::invalid_argument("associate: cannot join two empty tracks");
    for (int c = 0; c < 4; ++c)
      for (int64_t f = g0; f < g1; ++f) {
        double& v = out[4 * f + c];
        if (g0 == 0) {
          v = out[4 * g1 + c];  // before the first box: np.interp's left value
        } else if (g1 == n) {
          v = out[4 * (g0 - 1) + c];  // after the last box: its right value
        } else {
          const double x0 = static_cast<double>(g0 - 1), x1 = static_cast<double>(g1);
          const double y0 = out[4 * (g0 - 1) + c], y1 = out[4 * g1 + c];
          const double slope = (y1 - y0) / (x1 - x0);
          v = slope * (static_cast<double>(f) - x0) + y0;
          if (std::isnan(v)) {
            v = slope * (static_cast<double>(f) - x1) + y1;
            if (std::isnan(v) && y0 == y1) v = y0;
          }
        }
      }
  }
  a.start = start;
  a.boxes.swap(out);
}

struct Linked {
  int64_t first_pred;
  Track sub, obj;
  std::vector<double> confs;
  double score = 0;  // of confs as they stand (np.sum, or np.mean for the baseline)
  void update(bool vidvrd2) {
    const double sum = numpy_sum(confs.data(), static_cast<int64_t>(confs.size()));
    score = vidvrd2 ? sum : sum / static_cast<double>(confs.size());
  }
};

}  // namespace

void associate_video(const int64_t* seg_count, int64_t S, const int64_t* pred, const double* score,
                     const double* boxes, bool vidvrd2, double threshold, int64_t tolerance,
                     double pixel_offset, bool later_confs_one, int64_t* rel, double* rel_score,
                     double* out_boxes, int64_t box_capacity, int64_t* sizes) {
  const double off = pixel_offset;
  const int64_t tol = vidvrd2 ? tolerance : 0;
  auto sub_of = [&](int64_t p) {
    const int64_t* r = pred + kPredColumns * p;
    return TrackView{r[kSubStart], r[kSubLen], boxes + 4 * r[kSubRow]};
  };
  auto obj_of = [&](int64_t p) {
    const int64_t* r = pred + kPredColumns * p;
    return TrackView{r[kObjStart], r[kObjLen], boxes + 4 * r[kObjRow]};
  };
  auto passes = [&](double v) { return vidvrd2 ? v > threshold : v >= threshold; };
  std::vector<Linked> relations;
  std::vector<int64_t> previous, current, candidates;
  std::vector<double> scratch;
  int64_t p0 = 0;
  for (int64_t s = 0; s < S; ++s) {
    candidates = previous;
    std::stable_sort(candidates.begin(), candidates.end(),
                     [&](int64_t x, int64_t y) { return relations[x].score > relations[y].score; });
    current.clear();
    for (int64_t p = p0; p < p0 + seg_count[s]; ++p) {
      const TrackView ps = sub_of(p), po = obj_of(p);
      int64_t linked = -1;
      for (size_t c = 0; c < candidates.size() && s > 0; ++c) {
        const Linked& r = relations[candidates[c]];
        if (pred[kPredColumns * r.first_pred + kTriplet] != pred[kPredColumns * p + kTriplet]) continue;
        if (!vidvrd2 && !(ps.start < r.sub.end() && po.start < r.sub.end())) continue;
        if (passes(cubic_iou(view(r.sub), ps, off, tol, scratch)) &&
            passes(cubic_iou(view(r.obj), po, off, tol, scratch))) {
          linked = candidates[c];
          candidates.erase(candidates.begin() + static_cast<std::ptrdiff_t>(c));
          break;
        }
      }
      if (linked >= 0) {
        Linked& r = relations[linked];
        join(r.sub, ps);
        join(r.obj, po);
        r.confs.push_back(score[p]);
      } else {
        linked = static_cast<int64_t>(relations.size());
        Linked r;
        r.first_pred = p;
        r.sub.start = ps.start;
        r.sub.boxes.assign(ps.boxes, ps.boxes + 4 * ps.len);
        r.obj.start = po.start;
        r.obj.boxes.assign(po.boxes, po.boxes + 4 * po.len);
        r.confs.push_back(later_confs_one && s > 0 ? 1.0 : score[p]);
        relations.push_back(std::move(r));
      }
      relations[linked].update(vidvrd2);
      current.push_back(linked);
    }
    previous.swap(current);
    p0 += seg_count[s];
  }
  int64_t rows = 0;
  for (const Linked& r : relations) rows += r.sub.len() + r.obj.len();
  sizes[0] = static_cast<int64_t>(relations.size());
  sizes[1] = rows;
  rows = 0;
  for (size_t i = 0; i < relations.size(); ++i) {
    const Linked& r = relations[i];
    int64_t* row = rel + kOutColumns * static_cast<int64_t>(i);
    row[kFirstPred] = r.first_pred;
    row[kOutSubStart] = r.sub.start;
    row[kOutSubLen] = r.sub.len();
    row[kOutObjStart] = r.obj.start;
    row[kOutObjLen] = r.obj.len();
    rel_score[i] = r.score;
    if (sizes[1] <= box_capacity) {
      std::copy(r.sub.boxes.begin(), r.sub.boxes.end(), out_boxes + 4 * rows);
      rows += r.sub.len();
      std::copy(r.obj.boxes.begin(), r.obj.boxes.end(), out_boxes + 4 * rows);
      rows += r.obj.len();
    }
  }
}

}  // namespace pyvrel::cpu
