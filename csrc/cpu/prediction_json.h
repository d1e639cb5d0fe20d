// The JSON readers' C++ passes (not op kernels: called only by pyvrel/data/_json.py and
// pyvrel/data/table.py through pyvrel._C.cut_trajectories, first_duplicate_key, parse_prediction_file and
// parse_annotations).
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
// Numbers are read exactly as strictly as JSON: a value holding "007" or "1." is not cut (and the
// JSON parser then rejects the file).
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

// Annotation files of the plain form into the columns of their relation view: texts
// [offsets[i], offsets[i + 1]) each one annotation object, or (mapping) text [offsets[0],
// offsets[1]) one object mapping video id -> annotation object. Plain: the keys video_id (a
// string as in predictions), frame_count, fps, width, height, subject/objects (each exactly tid and
// category), trajectories (each box exactly tid and bbox {xmin, ymin, xmax, ymax}) and
// relation_instances (each exactly subject_tid, object_tid, predicate, begin_fid, end_fid), other
// top-level keys validated and skipped, no key repeated. A video that is not plain or fails a check
// of VideoAnnotation.from_json gets status 1 (the caller reads it with full validation) and no rows.
// Boxes of a video are sorted by (tid, frame); a relation's subject and object boxes are the rows
// first .. first + end - begin. Returns 0, 1 (mapping: the text is not an object of objects,
// or not valid) or -1 (a buffer is too small).
struct AnnotationColumns {
  int64_t* video;            // (max_videos, 5) status, id offset, id length (mapping: the key; -1 when
                             // unknown), relations, boxes
  double* size;              // (max_videos, 2) width, height
  int64_t* relation;         // (max_relations, 5) triplet id, begin, end, subject's and object's first box
  double* boxes;             // (max_boxes, 4)
  int64_t* triplet_strings;  // (max_triplets, 3) string ids: subject category, predicate, object category
  int64_t* string_span;      // (max_strings, 2) offset, length
  int64_t max_videos, max_relations, max_boxes, max_triplets, max_strings;
  int64_t n_videos = 0, n_relations = 0, n_boxes = 0, n_triplets = 0, n_strings = 0;
};
int64_t parse_annotations(const char* text, const int64_t* offsets, int64_t n_texts, bool mapping,
                          AnnotationColumns& out);

}  // namespace pyvrel::cpu
