#!/usr/bin/env bash
# Server CPU per /oauth2/token request, two Portcullis binaries and the ceiling, interleaved
# (A, B, ceiling, A, B, ceiling, ...): each turn loads one server with `wrk -t2 -c32 -d10s`
# and counts its process's task-clock and context switches with `perf stat` over 6 s in the
# middle. CPU per request is steadier than tokens/s on this shared machine (wrk's own CPU and
# the other tenants' load move throughput more than they move the server's work per request),
# so a small change to the token path shows here first. Default configuration (sealed audit,
# detection on, SQLite), rate limits off, three nodes up at once.
#
# usage: bench/token_cpu.sh BIN_A BIN_B [ROUNDS]   (ROUNDS default 4; CEILING_BIN overrides the ceiling)
# Needs perf and the ceiling (cargo build --release -p portcullis-bench-ceiling); wrk is
# installed if missing.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source bench/lib.sh
a=$1 b=$2 rounds=${3:-4}
ceiling_bin=${CEILING_BIN:-target/release/portcullis-bench-ceiling}
require_tools
command -v perf >/dev/null || die "needs perf"
port=$((20000 + RANDOM % 20000))

# Two nodes (lib.sh's start_portcullis: own data directory, rate limits off, one client).
portcullis_bin=$a start_portcullis "127.0.0.1:$port" "$work/a"
pid_a=${pids[-1]} auth_a=$portcullis_auth
portcullis_bin=$b start_portcullis "127.0.0.1:$((port + 1))" "$work/b"
pid_b=${pids[-1]} auth_b=$portcullis_auth
"$ceiling_bin" "127.0.0.1:$((port + 2))" >"$work/ceiling.log" 2>&1 &
pids+=($!)
pid_c=${pids[-1]}
wait_for_line "$work/ceiling.log" "ceiling listening on" "$pid_c"
auth_c=$(basic_auth bench unchecked)

# turn NAME PID URL AUTH: one loaded run; prints tokens/s, CPU µs and context switches a request.
turn() {
  TOKEN_AUTH=$4 wrk -t2 -c32 -d10s -s bench/token.lua "$3" >"$work/wrk.txt" 2>&1 &
  local load=$!
  sleep 2
  perf stat -x, -e task-clock,context-switches -p "$2" -- sleep 6 2>"$work/stat.txt"
  wait "$load"
  python3 - "$1" "$(field rps "$(grep '^RESULT' "$work/wrk.txt")")" "$work/stat.txt" <<'PY'
import sys
name, rps, path = sys.argv[1], float(sys.argv[2]), sys.argv[3]
counts = {}
for line in open(path):
    parts = line.strip().split(',')
    if len(parts) > 3 and parts[0] not in ('', '<not counted>'):
        counts[parts[2]] = float(parts[0])
n = rps * 6
print(f"| {name} | {rps:.0f} | {counts.get('task-clock', 0) * 1000 / n:.2f} | {counts.get('context-switches', 0) / n:.2f} |")
PY
}
echo "| server | tokens/s | server CPU µs / request | context switches / request |"
echo "|---|---:|---:|---:|"
for ((r = 1; r <= rounds; r++)); do
  turn A "$pid_a" "http://127.0.0.1:$port/oauth2/token" "$auth_a"
  turn B "$pid_b" "http://127.0.0.1:$((port + 1))/oauth2/token" "$auth_b"
  turn ceiling "$pid_c" "http://127.0.0.1:$((port + 2))/token" "$auth_c"
done
