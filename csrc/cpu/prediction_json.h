// The prediction-file reader's C++ pass (not an op kernel: called only by pyvrel/data/_json.py
// through pyvrel._C.cut_trajectories).
#pragma once
#include <cstdint>

namespace pyvrel::cpu {

// Cut every "sub_traj"/"obj_traj" value that is a plain list of [a, b, c, d] number lists out of
// JSON text: the skeleton gets the string "\u0000pv<k>" instead of trajectory k, whose boxes go to
// numbers (4 per box, in order), its box count to box_counts[k] and whether any number had a
// fraction or exponent to is_float[k]. Other values are copied unchanged. Returns the number of
// trajectories cut, or -1 when the skeleton capacity is too small.
int64_t cut_trajectories(const char* text, int64_t length, char* skeleton, int64_t skeleton_capacity,
                         int64_t* skeleton_length, double* numbers, int64_t numbers_capacity,
                         int64_t* box_counts, uint8_t* is_float, int64_t max_trajectories);

}  // namespace pyvrel::cpu
