// Per-pair tube (trajectory) math shared by the CPU and CUDA kernels.
//
// A tube is `len` consecutive boxes starting at video frame `start`: boxes[4*i .. 4*i+3] is the
// box at frame start + i. Frame spans are half-open [start, start + len).
#pragma once
#include "pyvrel/boxes.h"

namespace pyvrel {

// Temporal intersection [lo, hi) of two spans; empty when hi <= lo.
struct Overlap {
  int64_t lo, hi;
  PYVREL_HD bool empty() const { return hi <= lo; }
};

PYVREL_HD Overlap temporal_overlap(int64_t sa, int64_t la, int64_t sb, int64_t lb) {
  return Overlap{max_(sa, sb), min_(sa + la, sb + lb)};
}

// Sum of box areas over the whole tube (the official evaluation's "volume").
template <typename T>
PYVREL_HD acc_t tube_volume(const T* boxes, int64_t len, T off) {
  acc_t v = 0;
  for (int64_t i = 0; i < len; ++i) v += static_cast<acc_t>(box_area(boxes + 4 * i, off));
  return v;
}

// Volumetric vIoU of the VidVRD evaluation: sum of per-frame intersections over the shared frames
// divided by (vol_a + vol_b - inter), volumes over each tube's whole span. 0 when the spans do not
// overlap or the union is not positive.
template <typename T>
PYVREL_HD acc_t tube_volume_iou(const T* a, int64_t sa, int64_t la, acc_t va, const T* b,
                                int64_t sb, int64_t lb, acc_t vb, T off) {
  const Overlap o = temporal_overlap(sa, la, sb, lb);
  if (o.empty()) return 0;
  acc_t inter = 0;
  for (int64_t t = o.lo; t < o.hi; ++t)
    inter += static_cast<acc_t>(box_inter(a + 4 * (t - sa), b + 4 * (t - sb), off));
  const acc_t uni = va + vb - inter;
  return uni > 0 ? inter / uni : acc_t(0);
}

// Action-detection iou3dt: mean per-frame IoU over the shared frames times the temporal IoU
// (shared frames / frames of the union span). 0 when the spans do not overlap.
template <typename T>
PYVREL_HD acc_t tube_iou3dt(const T* a, int64_t sa, int64_t la, const T* b, int64_t sb, int64_t lb,
                            T off) {
  const Overlap o = temporal_overlap(sa, la, sb, lb);
  if (o.empty()) return 0;
  acc_t siou = 0;
  for (int64_t t = o.lo; t < o.hi; ++t)
    siou += static_cast<acc_t>(box_iou(a + 4 * (t - sa), b + 4 * (t - sb), off));
  const acc_t n = static_cast<acc_t>(o.hi - o.lo);
  const acc_t span = static_cast<acc_t>(max_(sa + la, sb + lb) - min_(sa, sb));
  return (siou / n) * (n / span);
}

// Accumulates g * d(vIoU)/d(boxes) into ga (la x 4) and gb (lb x 4).
template <typename T>
PYVREL_HD void tube_volume_iou_grad(const T* a, int64_t sa, int64_t la, const T* b, int64_t sb,
                                    int64_t lb, T off, T g, T* ga, T* gb) {
  const Overlap o = temporal_overlap(sa, la, sb, lb);
  if (o.empty()) return;
  const acc_t va = tube_volume(a, la, off);
  const acc_t vb = tube_volume(b, lb, off);
  acc_t inter = 0;
  for (int64_t t = o.lo; t < o.hi; ++t)
    inter += static_cast<acc_t>(box_inter(a + 4 * (t - sa), b + 4 * (t - sb), off));
  const acc_t uni = va + vb - inter;
  if (!(uni > 0)) return;
  const T g_inter = static_cast<T>(g * (va + vb) / (uni * uni));
  const T g_vol = static_cast<T>(-g * inter / (uni * uni));
  for (int64_t t = o.lo; t < o.hi; ++t)
    box_inter_grad(a + 4 * (t - sa), b + 4 * (t - sb), off, g_inter, ga + 4 * (t - sa),
                   gb + 4 * (t - sb));
  for (int64_t i = 0; i < la; ++i) box_area_grad(a + 4 * i, off, g_vol, ga + 4 * i);
  for (int64_t i = 0; i < lb; ++i) box_area_grad(b + 4 * i, off, g_vol, gb + 4 * i);
}

// Accumulates g * d(iou3dt)/d(boxes) into ga (la x 4) and gb (lb x 4).
template <typename T>
PYVREL_HD void tube_iou3dt_grad(const T* a, int64_t sa, int64_t la, const T* b, int64_t sb,
                                int64_t lb, T off, T g, T* ga, T* gb) {
  const Overlap o = temporal_overlap(sa, la, sb, lb);
  if (o.empty()) return;
  const acc_t span = static_cast<acc_t>(max_(sa + la, sb + lb) - min_(sa, sb));
  const T g_frame = static_cast<T>(g / span);  // (1/n) * (n/span)
  for (int64_t t = o.lo; t < o.hi; ++t)
    box_iou_grad(a + 4 * (t - sa), b + 4 * (t - sb), off, g_frame, ga + 4 * (t - sa),
                 gb + 4 * (t - sb));
}

// Linear interpolation (vRGV eq. 14) of a box track sampled at strictly increasing frames
// f[0..k): the box at `frame` is wl * box[j] + wr * box[j + 1] with f[j] <= frame <= f[j+1],
// wl = (f[j+1] - frame) / (f[j+1] - f[j]) and wr = (frame - f[j]) / (f[j+1] - f[j]).
struct InterpWeight {
  int64_t j;
  double wl, wr;
};

PYVREL_HD InterpWeight interp_weight(const int64_t* f, int64_t k, int64_t frame) {
  if (k == 1) return InterpWeight{0, 1.0, 0.0};
  int64_t lo = 0, hi = k - 1;  // binary search for the last j with f[j] <= frame, j < k-1
  while (hi - lo > 1) {
    const int64_t mid = (lo + hi) / 2;
    if (f[mid] <= frame)
      lo = mid;
    else
      hi = mid;
  }
  const double d = static_cast<double>(f[lo + 1] - f[lo]);
  return InterpWeight{lo, static_cast<double>(f[lo + 1] - frame) / d,
                      static_cast<double>(frame - f[lo]) / d};
}

}  // namespace pyvrel
