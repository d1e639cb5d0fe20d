"""Benchmark sizes shared by the suites (one section per op family)."""

# ---- evaluation (benchmarks/bench_eval.py) ----------------------------------------------------
# The size: 200 videos x ~30 ground-truth relations x ~200 predictions each (the official
# code needs ~1.5 s to score and 9-16 s to load its JSON at this size).
EVAL_VIDEOS = 200
EVAL_GT_PER_VIDEO = 30
EVAL_PRED_PER_VIDEO = 200
EVAL_SEED = 0
