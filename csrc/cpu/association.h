// The greedy relation association of pyvrel.eval.associate (not an op kernel: called only by
// pyvrel/eval/_association.py through pyvrel._C.associate_video).
#pragma once
#include <cstdint>

namespace pyvrel::cpu {

// Column k of the (P, 7) int64 prediction table of associate_video.
enum AssociationColumn : int64_t {
  kTriplet = 0,  // interned triplet id
  kSubStart,     // first frame of the subject track
  kSubLen,       // its frames
  kSubRow,       // its first box row in `boxes`
  kObjStart,
  kObjLen,
  kObjRow,
  kPredColumns
};

// Column k of the (P, 5) int64 relation table it writes (one row per relation, in creation order).
enum AssociationOutColumn : int64_t {
  kFirstPred = 0,  // the prediction that started the relation (its triplet)
  kOutSubStart,
  kOutSubLen,
  kOutObjStart,
  kOutObjLen,
  kOutColumns
};

// One video: segments in linking order with seg_count[s] predictions each (the top ones, by
// descending score), pred (P, 7) and score (P,) per prediction, boxes (rows, 4) float64. Links
// each prediction to the first candidate of the previous segment (by descending score sum if
// `vidvrd2`, else mean) with its triplet and both cubic IoUs >= threshold (baseline: subject and
// object starting before the relation's end) or > threshold (vidvrd2, gaps < tolerance bridged),
// joining the tracks, exactly as pyvrel/eval/association.py documents and the Python reference
// computes it (NumPy's pairwise sums, np.interp). Writes rel (R, 5), each relation's score
// (R,) (np.sum of its confidences, np.mean for the baseline) and, when the rows fit in
// box_capacity, each relation's subject then object boxes to out_boxes (rows, 4). sizes[0] = R, sizes[1] = the box rows needed (the caller retries with
// that capacity when it exceeds box_capacity). Throws std::invalid_argument when two empty tracks
// are joined.
void associate_video(const int64_t* seg_count, int64_t S, const int64_t* pred, const double* score,
                     const double* boxes, bool vidvrd2, double threshold, int64_t tolerance,
                     double pixel_offset, bool later_confs_one, int64_t* rel, double* rel_score,
                     double* out_boxes, int64_t box_capacity, int64_t* sizes);

}  // namespace pyvrel::cpu
