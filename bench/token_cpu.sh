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
# Needs wrk, perf and the ceiling (cargo build --release -p portcullis-bench-ceiling).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
a=$1 b=$2 rounds=${3:-4}
ceiling_bin=${CEILING_BIN:-target/release/portcullis-bench-ceiling}
for tool in wrk perf; do command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 1; }; done
work=$(mktemp -d -t portcullis-cpu.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
export PORTCULLIS_RATE_LIMIT__PER_CLIENT=0 PORTCULLIS_RATE_LIMIT__PER_ADDRESS=0 RUST_LOG=warn
port=$((20000 + RANDOM % 20000))

# start BIN NAME PORT: a node with its own data directory; prints its Authorization header.
start() {
  "$1" serve --data-dir "$work/$2" --listen "127.0.0.1:$3" --listen-tls 127.0.0.1:0 >"$work/$2.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 300); do [[ -s $work/$2/admin.json ]] && break; sleep 0.1; done
  for _ in $(seq 300); do grep -q 'listening on http' "$work/$2.log" && break; sleep 0.1; done
  "$1" client create --server "http://127.0.0.1:$3" --admin-credential "$work/$2/admin.json" \
    --name cpu --json >"$work/$2.client.json"
}
auth_of() {
  python3 -c 'import base64,json,sys; c=json.load(open(sys.argv[1]))
print("Basic " + base64.b64encode((c["client_id"] + ":" + c["client_secret"]).encode()).decode())' "$1"
}
start "$a" a "$port"; pid_a=${pids[-1]}
start "$b" b "$((port + 1))"; pid_b=${pids[-1]}
"$ceiling_bin" "127.0.0.1:$((port + 2))" >"$work/ceiling.log" 2>&1 &
pids+=($!); pid_c=${pids[-1]}
sleep 1
auth_a=$(auth_of "$work/a.client.json") auth_b=$(auth_of "$work/b.client.json")
auth_c="Basic $(printf 'bench:x' | base64 -w0)"
cat >"$work/token.lua" <<'LUA'
wrk.method = "POST"
wrk.body = "grant_type=client_credentials"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = os.getenv("AUTH")
LUA

# turn NAME PID URL AUTH: one loaded run; prints tokens/s, CPU µs and context switches a request.
turn() {
  AUTH=$4 wrk -t2 -c32 -d10s -s "$work/token.lua" "$3" >"$work/wrk.txt" 2>&1 &
  local load=$!
  sleep 2
  perf stat -x, -e task-clock,context-switches -p "$2" -- sleep 6 2>"$work/stat.txt"
  wait "$load"
  python3 - "$1" "$(awk '/Requests\/sec/ {print $2}' "$work/wrk.txt")" "$work/stat.txt" <<'PY'
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
