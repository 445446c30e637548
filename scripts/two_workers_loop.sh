#!/usr/bin/env bash
# Run the two-worker takeover module RUNS times in a row (default 10) next to a CPU-bound
# neighbour process, as a shared CI machine has; print how many runs passed. The local stack
# must be up (`salewatch stack up`); logs of failed runs stay in $OUT (default /tmp).
set -uo pipefail
cd "$(dirname "$0")/.."
RUNS="${RUNS:-10}"
OUT="${OUT:-$(mktemp -d /tmp/two-workers-loop.XXXX)}"
mkdir -p "$OUT"
python3 -c 'while True: pass' &
neighbour=$!
trap 'kill "$neighbour" 2>/dev/null' EXIT
passed=0
for i in $(seq 1 "$RUNS"); do
  started=$(date +%s)
  if python3 -m pytest tests/faults/test_two_workers.py -q -p no:cacheprovider \
      --basetemp="$OUT/run$i" >"$OUT/run$i.log" 2>&1; then
    passed=$((passed + 1)); verdict=passed
  else
    verdict="FAILED (log: $OUT/run$i.log)"
  fi
  echo "run $i/$RUNS: $verdict in $(( $(date +%s) - started )) s"
done
echo "two-worker takeovers with a CPU-bound neighbour: $passed of $RUNS runs passed"
[ "$passed" = "$RUNS" ]
