// Per-element box math shared by the CPU and CUDA kernels.
// Boxes are (x1, y1, x2, y2); `off` is the pixel offset added to widths and heights
// (0: continuous coordinates, 1: the legacy inclusive-pixel convention of VidVRD).
#pragma once
#include "pyvrel/common.h"

namespace pyvrel {

// Area (x2 - x1 + off) * (y2 - y1 + off), not clamped (as in the official evaluation).
template <typename T>
PYVREL_HD T box_area(T x1, T y1, T x2, T y2, T off) {
  return (x2 - x1 + off) * (y2 - y1 + off);
}

template <typename T>
PYVREL_HD T box_area(const T* b, T off) {
  return box_area(b[0], b[1], b[2], b[3], off);
}

// Intersection area, clamped at zero per axis (coordinates given one by one, so that kernels
// holding boxes in structure-of-arrays form vectorise the same arithmetic).
template <typename T>
PYVREL_HD T box_inter(T ax1, T ay1, T ax2, T ay2, T bx1, T by1, T bx2, T by2, T off) {
  const T w = max_(T(0), min_(ax2, bx2) - max_(ax1, bx1) + off);
  const T h = max_(T(0), min_(ay2, by2) - max_(ay1, by1) + off);
  return w * h;
}

template <typename T>
PYVREL_HD T box_inter(const T* a, const T* b, T off) {
  return box_inter(a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3], off);
}

// IoU; a union <= 0 (zero-area boxes) gives 0, never NaN.
template <typename T>
PYVREL_HD T box_iou(T ax1, T ay1, T ax2, T ay2, T bx1, T by1, T bx2, T by2, T off) {
  const T inter = box_inter(ax1, ay1, ax2, ay2, bx1, by1, bx2, by2, off);
  const T uni = box_area(ax1, ay1, ax2, ay2, off) + box_area(bx1, by1, bx2, by2, off) - inter;
  return uni > T(0) ? inter / uni : T(0);
}

template <typename T>
PYVREL_HD T box_iou(const T* a, const T* b, T off) {
  return box_iou(a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3], off);
}

// Gradient of (x - y) for min(x, y)/max(x, y) selection: returns the share of the gradient
// that goes to the first argument (ties are split evenly, as torch.minimum/maximum do).
template <typename T>
PYVREL_HD T first_share_min(T x, T y) {
  return x < y ? T(1) : (x > y ? T(0) : T(0.5));
}
template <typename T>
PYVREL_HD T first_share_max(T x, T y) {
  return x > y ? T(1) : (x < y ? T(0) : T(0.5));
}

// Accumulates d(area)/d(box) * g into gb[4].
template <typename T>
PYVREL_HD void box_area_grad(const T* b, T off, T g, T* gb) {
  const T w = b[2] - b[0] + off;
  const T h = b[3] - b[1] + off;
  gb[0] -= g * h;
  gb[2] += g * h;
  gb[1] -= g * w;
  gb[3] += g * w;
}

// Accumulates d(inter)/d(a), d(inter)/d(b) times g into ga[4], gb[4]. Zero where disjoint.
template <typename T>
PYVREL_HD void box_inter_grad(const T* a, const T* b, T off, T g, T* ga, T* gb) {
  const T w = min_(a[2], b[2]) - max_(a[0], b[0]) + off;
  const T h = min_(a[3], b[3]) - max_(a[1], b[1]) + off;
  if (!(w > T(0)) || !(h > T(0))) return;
  const T gw = g * h;  // d inter / d w
  const T gh = g * w;  // d inter / d h
  T s = first_share_min(a[2], b[2]);
  ga[2] += gw * s;
  gb[2] += gw * (T(1) - s);
  s = first_share_max(a[0], b[0]);
  ga[0] -= gw * s;
  gb[0] -= gw * (T(1) - s);
  s = first_share_min(a[3], b[3]);
  ga[3] += gh * s;
  gb[3] += gh * (T(1) - s);
  s = first_share_max(a[1], b[1]);
  ga[1] -= gh * s;
  gb[1] -= gh * (T(1) - s);
}

// Accumulates d(iou)/d(a), d(iou)/d(b) times g into ga[4], gb[4].
template <typename T>
PYVREL_HD void box_iou_grad(const T* a, const T* b, T off, T g, T* ga, T* gb) {
  const T inter = box_inter(a, b, off);
  const T area_a = box_area(a, off);
  const T area_b = box_area(b, off);
  const T uni = area_a + area_b - inter;
  if (!(uni > T(0))) return;
  const T inv2 = T(1) / (uni * uni);
  box_inter_grad(a, b, off, g * (area_a + area_b) * inv2, ga, gb);  // d/dI of I/(Aa+Ab-I)
  box_area_grad(a, off, -g * inter * inv2, ga);
  box_area_grad(b, off, -g * inter * inv2, gb);
}

}  // namespace pyvrel
