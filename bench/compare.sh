#!/usr/bin/env bash
# Side by side: each bench section on wasm, then on tensorflow, interleaved, for ROUNDS rounds; every
# figure line is prefixed with the backend and the load average when it started.
#   bench/compare.sh [section...]        (default: backend clip qwen world crossover)
#   ROUNDS=2 bench/compare.sh clip | tee bench-compare.log
set -euo pipefail
cd "$(dirname "$0")/.."
sections=("$@")
[ ${#sections[@]} -gt 0 ] || sections=(backend clip qwen world crossover)
for round in $(seq 1 "${ROUNDS:-1}"); do
  for s in "${sections[@]}"; do
    for b in wasm tensorflow; do
      load=$(cut -d' ' -f1-3 /proc/loadavg)
      t0=$(date +%s)
      # stderr: only errors (not TensorFlow's load-time notices)
      { DPAD_QUIET=1 DPAD_BACKEND=$b npx tsx bench/run.ts "$s" 2>&1 || echo "exit $?"; } | grep -v -e '^#' -e '^I0000' -e '^WARNING: All log' | sed "s/^/[round $round, $b, load $load] /"
      echo "[round $round, $b] section $s took $(( $(date +%s) - t0 )) s"
    done
  done
done
