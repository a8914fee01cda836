#!/usr/bin/env bash
# The GPU device check (UNVERIFIED: no GPU machine has run it yet; docs/native.md).
# On a Linux x86_64 machine with an NVIDIA GPU (driver for CUDA 12), from the project root:
#   tools/device-check.sh [LOG_DIR]
# 1. builds the CUDA backend unless .native/gpu is built (npm run setup:native -- --gpu; needs pip to
#    reach tensorflow==2.21.0 and its nvidia-*-cu12 wheels, or WHEEL=<tensorflow wheel> with the
#    nvidia wheels beside it);
# 2. npm run doctor on it (GPU name, memory, TFLOP/s);
# 3. the golden harness on every fixture directory;
# 4. the CLIP, Qwen and SAM2 benchmarks on the GPU.
# Each step has a time limit; the log of each goes to LOG_DIR (default $OUT, else runs/device-check).
set -uo pipefail
cd "$(dirname "$0")/.."
LOG=${1:-${OUT:-runs/device-check}}
mkdir -p "$LOG"
FIX=${FIXTURES:-../shared/fixtures}
status=0
step() { # name seconds command...
  local name=$1 secs=$2; shift 2
  echo "== $name (limit ${secs}s)" | tee -a "$LOG/summary.txt"
  local t0=$SECONDS
  timeout "$secs" "$@" > "$LOG/$name.log" 2>&1
  local rc=$?
  echo "   rc=$rc in $((SECONDS - t0)) s" | tee -a "$LOG/summary.txt"
  tail -n 12 "$LOG/$name.log" | sed 's/^/   | /' | tee -a "$LOG/summary.txt"
  [ $rc -eq 0 ] || status=1
}
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || echo "no nvidia-smi"; } | tee "$LOG/nvidia-smi.txt"
if [ ! -f .native/gpu/manifest.json ]; then
  step setup 1800 npm run setup:native -- --gpu ${WHEEL:+--wheel "$WHEEL"}
fi
# TF finds the CUDA libraries through its rpath ($ORIGIN/../nvidia/*/lib); the explicit path is a fallback
[ -f .native/gpu/env.sh ] && . .native/gpu/env.sh
export DPAD_BACKEND=tensorflow
step doctor 300 npm run doctor
grep -q 'tfjs-node-gpu' "$LOG/doctor.log" || { echo "   !! doctor did not run the GPU build" | tee -a "$LOG/summary.txt"; status=1; }
for d in "$FIX"/*/; do
  [ -d "$d" ] || continue
  step "golden-$(basename "$d")" 600 npx tsx tools/golden.ts "$d"
done
step bench-backend 300 npx tsx bench/run.ts backend
step bench-clip 600 npx tsx bench/run.ts clip
step bench-qwen 900 npx tsx bench/run.ts qwen
step bench-sam2 1200 npx tsx bench/run.ts sam2
step bench-world 900 npx tsx bench/run.ts world
echo "device check: $([ $status -eq 0 ] && echo PASSED || echo FAILED); logs in $LOG" | tee -a "$LOG/summary.txt"
exit $status
