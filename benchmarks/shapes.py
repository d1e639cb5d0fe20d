"""Benchmark shapes shared by the benchmark suites (one section per op family)."""

# ---- linking (Seq-NMS, Viterbi): specs/postprocessing.md §3.4, §4.1 ----------------------
# Seq-NMS: (frames, boxes per frame) of one video; 30 moving objects x 8 jittered detections
# plus clutter, uniform random scores.
SEQ_NMS_SHAPES = [(120, 100), (120, 300)]
# Viterbi: (problems, sampled frames, proposals per frame), vRGV's 120 x 40.
VITERBI_SHAPES = [(1, 120, 40), (1024, 120, 40)]
