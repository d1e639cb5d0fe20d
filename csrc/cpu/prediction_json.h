// The JSON readers' C++ passes (not op kernels: called only by pyvrel/data/_json.py and
// pyvrel/data/table.py through pyvrel._C.cut_trajectories, cut_frame_boxes, first_duplicate_key and
// parse_prediction_file).
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
// Numbers in both cuts are read exactly as strictly as JSON: a value holding "007" or "1." is not cut
// (and the JSON parser then rejects the file).
// The same for annotation files: every "trajectories" value that is a list of frames, each a list of
// {"tid": integer, "bbox": {"xmin", "ymin", "xmax", "ymax": number}} objects (keys in any order, no
// others), becomes "\u0000pv<k>"; its boxes go to boxes (4 numbers each), box_tid and box_frame
// (the frame's index in the list), its frame count to frame_counts[k] and its box count to
// box_counts[k]. Returns the number of values cut, or -1 when the skeleton capacity is too small.
int64_t cut_frame_boxes(const char* text, int64_t length, char* skeleton, int64_t skeleton_capacity,
                        int64_t* skeleton_length, double* boxes, int64_t* box_tid, int64_t* box_frame,
                        int64_t box_capacity, int64_t* frame_counts, int64_t* box_counts, int64_t max_values);
// 1 when some object of the JSON text repeats a key (the first such key is text[*key_start:
// *key_start + *key_length], escapes not decoded), else 0. Keys are compared as written.
int64_t first_duplicate_key(const char* text, int64_t length, int64_t* key_start, int64_t* key_length);
// A whole prediction file of the plain form, parsed into columns: {"version": "...", "results":
// {video id: [relation, ...]}, other keys (validated, skipped)}, each relation exactly the keys
// triplet (3 printable-ASCII strings without escapes), score, duration (2 integers, 0 <= begin <
// end), sub_traj and obj_traj (box lists with at least end - begin boxes), optional subject_tid /
// object_tid (integer or null). Strings are text offsets (offset, length); triplet strings are
// interned. Returns 0 (parsed), 1 (not of that form: parse it generally), 2 (a video id repeats:
// duplicate = its span) or -1 (a buffer is too small).
struct PredictionColumns {
  int64_t* video_span;       // (max_videos, 2) id offset, length
  int64_t* video_count;      // (max_videos,) relations per video
  int64_t* triplet_id;       // (max_relations,)
  double* score;             // (max_relations,)
  int64_t* duration;         // (max_relations, 2)
  int64_t* traj;             // (max_relations, 4) sub first box, sub boxes, obj first box, obj boxes
  double* boxes;             // (max_boxes, 4)
  int64_t* triplet_strings;  // (max_triplets, 3) string ids
  int64_t* string_span;      // (max_strings, 2) offset, length
  int64_t max_videos, max_relations, max_boxes, max_triplets, max_strings;
  int64_t n_videos = 0, n_relations = 0, n_boxes = 0, n_triplets = 0, n_strings = 0;
  int64_t version[2] = {-1, 0};    // offset, length of the version string; offset -1: none
  int64_t duplicate[2] = {-1, 0};  // the repeated video id
};
int64_t parse_prediction_file(const char* text, int64_t length, PredictionColumns& out);

}  // namespace pyvrel::cpu
