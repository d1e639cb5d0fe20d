#!/usr/bin/env bash
# One GPU check (issue 17), from the repository root of a machine with a CUDA GPU:
#   bash benchmarks/gpu_check.sh [SECONDS]        (default budget 450 s; logs in $OUT, default /tmp/gpu_check)
# 1. builds pyvrel for this GPU's architecture only (PYVREL_CUDA_ARCHITECTURES from the device),
# 2. runs the gpu/triton tests, 3. runs benchmarks/bench_gpu_anchors.py (pyvrel vs torchvision,
# dense SDPA and compiled FlexAttention, every row checked), 4. prints a short summary last.
# Needs torch with CUDA, triton, pytest, scikit-build-core, cmake, ninja and pybind11 installed
# (no network: pass a folder of wheels in PYVREL_WHEELS to install them from it first).
set -u
BUDGET=${1:-450}; T0=$(date +%s); OUT=${OUT:-/tmp/gpu_check}; mkdir -p "$OUT"
left() { echo $(( BUDGET - ($(date +%s) - T0) )); }
# step NAME SECONDS CMD...: run with a time box (cut to what is left), log to $OUT/NAME.log
step() { local name=$1 want=$2; shift 2; local l=$(( $(left) - 15 )); [ "$want" -lt "$l" ] || want=$l
  if [ "$want" -lt 10 ]; then echo "== $name: skipped (no time left)"; echo "$name skipped" >> "$OUT/summary"; return 1; fi
  echo "== $name (time box ${want}s)"; local s=$(date +%s)
  timeout -k 5 "$want" "$@" > "$OUT/$name.log" 2>&1; local rc=$?
  echo "$name rc=$rc in $(( $(date +%s) - s ))s" | tee -a "$OUT/summary"; return $rc; }
: > "$OUT/summary"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$OUT/summary"
if [ -n "${PYVREL_WHEELS:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --target "$OUT/site" "$PYVREL_WHEELS"/*.whl \
    && export PYTHONPATH="$OUT/site${PYTHONPATH:+:$PYTHONPATH}"
fi
ARCH=${PYVREL_CUDA_ARCHITECTURES:-$(python3 -c "import torch; print('%d%d' % torch.cuda.get_device_capability())")}
echo "CUDA architecture $ARCH; uptime: $(uptime)" | tee -a "$OUT/summary"
export PYVREL_CUDA=ON PYVREL_CUDA_ARCHITECTURES=$ARCH CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) PYTHONUNBUFFERED=1
step build 180 python3 -m pip install --no-build-isolation --no-deps --no-index -Cbuild-dir=build/gpu_check . \
  || { tail -30 "$OUT/build.log"; cat "$OUT/summary"; echo "BUILD FAILED"; exit 1; }
# -P: test the installed package (the source tree has no compiled extension); pytest-benchmark off
# (it stops xdist runs under filterwarnings=error); xdist only when installed
PAR=$(python3 -c "import xdist" 2>/dev/null && echo "-n 8")
step tests 150 python3 -P -m pytest tests -m "gpu or triton" -q -p no:cacheprovider -p no:benchmark $PAR
tail -n 1 "$OUT/tests.log" | tee -a "$OUT/summary"
grep -E "^(FAILED|ERROR)" "$OUT/tests.log" | cut -c1-200 | head -20 | tee -a "$OUT/summary"
step anchors 300 python3 -P benchmarks/bench_gpu_anchors.py --json "$OUT/anchors.json"
sed -n '/^SUMMARY/,$p' "$OUT/anchors.log" >> "$OUT/summary"
grep -E "FAILED|Error" "$OUT/anchors.log" | head -5 >> "$OUT/summary"
echo "TOTAL $(( $(date +%s) - T0 ))s" >> "$OUT/summary"
echo; echo "==== SUMMARY ($OUT/summary)"; cat "$OUT/summary"
