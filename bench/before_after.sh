#!/usr/bin/env bash
# The token endpoint before and after a change, side by side with the ceiling, interleaved
# (before, after, ceiling, before, after, ceiling, ...) so the machine's drift hits all three
# alike. Each turn is one bench/token_load.sh run (one loaded wrk run and one single-connection
# run); the rows are printed as they come, then each binary's median ratio to the ceiling of
# its round.
#
# usage: BEFORE_BIN=/tmp/portcullis-old AFTER_BIN=target/release/portcullis bench/before_after.sh
# env:   ROUNDS (3), BENCH_DURATION (10s) and the other knobs of bench/lib.sh. Build the ceiling
#        first (cargo build --release -p portcullis-bench-ceiling); nothing is built here.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
: "${BEFORE_BIN:?set BEFORE_BIN to the portcullis binary from before the change}"
: "${AFTER_BIN:?set AFTER_BIN to the portcullis binary from after the change}"
rounds="${ROUNDS:-3}"
export BENCH_RUNS=1 BENCH_DURATION="${BENCH_DURATION:-10s}" BENCH_SINGLE_DURATION=2s BENCH_NO_BUILD=1

# tokens/s of one turn: the first number of the table row token_load.sh prints.
turn() {
  local label=$1 target=$2 bin=${3:-}
  local out
  out=$(PORTCULLIS_BIN="$bin" bench/token_load.sh "$target" 2>/dev/null | grep -E '^\| (Portcullis|ceiling)')
  echo "round $round $label: $out" >&2
  awk -F'|' '{gsub(/ /, "", $3); print $3; exit}' <<<"$out"
}

before=() after=() ceiling=()
for ((round = 1; round <= rounds; round++)); do
  before+=("$(turn before portcullis "$BEFORE_BIN")")
  after+=("$(turn after portcullis "$AFTER_BIN")")
  ceiling+=("$(turn ceiling ceiling)")
done

echo
echo "| round | before tokens/s | after tokens/s | ceiling tokens/s | before / ceiling | after / ceiling |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: |"
for ((i = 0; i < rounds; i++)); do
  awk -v r=$((i + 1)) -v b="${before[i]}" -v a="${after[i]}" -v c="${ceiling[i]}" \
    'BEGIN { printf "| %d | %d | %d | %d | %.0f %% | %.0f %% |\n", r, b, a, c, 100*b/c, 100*a/c }'
done
