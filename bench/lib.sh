# shellcheck shell=bash disable=SC2034  # sourced: the callers read portcullis_body, portcullis_auth, rows
# Shared by bench/token_load.sh and bench/bulk_clients.sh (sourced, not run): set-up, server
# start-up, the wrk load with its medians, and the markdown rows. Each caller sets `set -euo
# pipefail`, `shopt -s inherit_errexit` and cds to the repo root before sourcing.
#
# env: BENCH_RUNS (3)  BENCH_DURATION (15s)  BENCH_CONNECTIONS (32)  BENCH_THREADS (2)
#      BENCH_SINGLE_DURATION (5s)  PORTCULLIS_BIN (target/release/portcullis)
#      PORTCULLIS_TOKEN_BODY (grant_type=client_credentials)  BENCH_NO_BUILD=1

runs="${BENCH_RUNS:-3}"
duration="${BENCH_DURATION:-15s}"
connections="${BENCH_CONNECTIONS:-32}"
threads="${BENCH_THREADS:-2}"
single_duration="${BENCH_SINGLE_DURATION:-5s}"
portcullis_bin="${PORTCULLIS_BIN:-$PWD/target/release/portcullis}"
portcullis_body="${PORTCULLIS_TOKEN_BODY:-grant_type=client_credentials}"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"

say() { printf '==> %s\n' "$*" >&2; }
die() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }

work="$(mktemp -d -t portcullis-bench.XXXXXX)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# require_tools: wrk (installed from Debian if missing), curl, python3.
require_tools() {
  if ! command -v wrk >/dev/null; then
    say "installing wrk (apt)"
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
  fi
  command -v curl >/dev/null || die "curl is required"
  command -v python3 >/dev/null || die "python3 is required (JSON parsing)"
}

# build_release BIN...: cargo build --release of the given binaries unless BENCH_NO_BUILD.
build_release() {
  [[ -z ${BENCH_NO_BUILD:-} && $# -gt 0 ]] || return 0
  local args=() bin
  for bin in "$@"; do args+=(--bin "$bin"); done
  say "cargo build --release --workspace ${args[*]}"
  cargo build --release --workspace "${args[@]}" >&2
}

# wait_for_line LOG PATTERN PID: waits (BENCH_START_TIMEOUT s, default 60) for PATTERN in LOG.
wait_for_line() {
  local log=$1 pattern=$2 pid=$3 i limit=$((${BENCH_START_TIMEOUT:-60} * 10))
  for ((i = 0; i < limit; i++)); do
    grep -q "$pattern" "$log" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; die "server exited before it was ready"; }
    sleep 0.1
  done
  cat "$log" >&2
  die "server not ready after ${BENCH_START_TIMEOUT:-60} s"
}

# free_port: a TCP port free on 127.0.0.1 now (the kernel's pick).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
json_field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
basic_auth() { printf 'Basic %s' "$(printf '%s:%s' "$1" "$2" | base64 -w0)"; }

# start_portcullis ADDR DATA_DIR: serves in the background, waits until ready; sets
# `portcullis_auth` to the Basic header of a fresh client made by `portcullis client create`.
start_portcullis() {
  local addr=$1 data=$2 log="$work/portcullis-$1.log" i
  [[ -x $portcullis_bin ]] || die "$portcullis_bin is missing (cargo build --release --bin portcullis)"
  mkdir -p "$data"
  say "starting portcullis on $addr (data dir $data)"
  # The abuse limits (1000/s per client, 5000/s per address by default) would cap a load from
  # one client on one address; the bench measures issuance, so they are off unless set.
  PORTCULLIS_RATE_LIMIT__PER_CLIENT="${PORTCULLIS_RATE_LIMIT__PER_CLIENT:-0}" \
    PORTCULLIS_RATE_LIMIT__PER_ADDRESS="${PORTCULLIS_RATE_LIMIT__PER_ADDRESS:-0}" \
    RUST_LOG="${RUST_LOG:-warn}" \
    "$portcullis_bin" serve --data-dir "$data" --listen "$addr" --listen-tls "${PORTCULLIS_LISTEN_TLS:-127.0.0.1:0}" >"$log" 2>&1 &
  pids+=($!)
  wait_for_line "$log" "portcullis listening on http://" "${pids[-1]}"
  for ((i = 0; i < 100; i++)); do [[ -s $data/admin.json ]] && break; sleep 0.1; done
  [[ -s $data/admin.json ]] || die "portcullis wrote no $data/admin.json"
  "$portcullis_bin" client create --server "http://$addr" --admin-credential "$data/admin.json" \
    --name "bench-$RANDOM" --json >"$work/client.json" || die "portcullis client create failed"
  portcullis_auth=$(basic_auth "$(json_field "$work/client.json" client_id)" \
    "$(json_field "$work/client.json" client_secret)")
}

# stop_last_server: stops the most recently started server.
stop_last_server() {
  local pid=${pids[-1]}
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  unset 'pids[-1]'
}

# preflight URL AUTH BODY: one request by curl; the load is meaningless unless it is a 200 JWT.
preflight() {
  local out="$work/preflight.json" status
  status=$(curl -s -m 10 -o "$out" -w '%{http_code}' -H "Authorization: $2" \
    -H 'Content-Type: application/x-www-form-urlencoded' --data "$3" "$1")
  if [[ $status != 200 ]] || ! grep -q '"access_token":"ey' "$out"; then
    die "preflight $1 answered $status: $(head -c 500 "$out")"
  fi
}

field() { sed -n "s/.*[[:space:]]$1=\([0-9.]*\).*/\1/p" <<<"$2"; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ms() { awk -v us="$1" 'BEGIN {printf "%.2f", us/1000}'; }

# load NAME URL AUTH BODY: BENCH_RUNS loaded runs and one single-connection run (every wrk
# bounded by `timeout`); prints "median_rps median_p99_us p50_1conn_us p99_1conn_us errors".
load() {
  local name=$1 url=$2 rps=() p99=() errors=0 i line
  for ((i = 1; i <= runs; i++)); do
    say "$name: wrk -t$threads -c$connections -d$duration --latency (run $i/$runs)"
    line=$(TOKEN_AUTH="$3" TOKEN_BODY="$4" timeout 300 \
      wrk "-t$threads" "-c$connections" "-d$duration" --latency -s bench/token.lua "$url" |
      tee -a "$work/$name.wrk.txt" | grep '^RESULT') || die "$name: wrk failed"
    rps+=("$(field rps "$line")")
    p99+=("$(field p99_us "$line")")
    errors=$((errors + $(field errors "$line")))
  done
  say "$name: wrk -t1 -c1 -d$single_duration --latency"
  line=$(TOKEN_AUTH="$3" TOKEN_BODY="$4" timeout 300 \
    wrk -t1 -c1 "-d$single_duration" --latency -s bench/token.lua "$url" | grep '^RESULT') ||
    die "$name: single-connection wrk failed"
  errors=$((errors + $(field errors "$line")))
  echo "$(median "${rps[@]}") $(median "${p99[@]}") $(field p50_us "$line") $(field p99_us "$line") $errors"
}

# row NAME "rps p99 p50_1 p99_1 errors": appends one markdown row to `rows`.
rows=()
row() {
  local r
  read -r -a r <<<"$2"
  rows+=("| $1 | $(printf '%.0f' "${r[0]}") | $(ms "${r[1]}") | $(ms "${r[2]}") | $(ms "${r[3]}") | ${r[4]} |")
}

# interleaved_rows VARIANT...: one markdown row per variant of an interleaved run, from the
# callers' associative arrays `rps` and `p99` (space-separated numbers per variant, one per
# run): every run's tokens/s, their median and the median p99.
interleaved_rows() {
  local v
  echo "| variant | tokens/s (each run) | median | p99 ms (median) |"
  echo "|---|---|---:|---:|"
  for v in "$@"; do
    # shellcheck disable=SC2086  # space-separated numbers
    printf '| %s | %s | %.0f | %s |\n' "$v" "$(printf '%.0f / ' ${rps[$v]} | sed 's| / $||')" \
      "$(median ${rps[$v]})" "$(ms "$(median ${p99[$v]})")"
  done
}

# print_table TITLE: the header naming machine and method, then the rows.
print_table() {
  cat <<TABLE

$1, $(date -u +%Y-%m-%d), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), wrk on the same machine.
Loaded: wrk -t$threads -c$connections -d$duration --latency, median of $runs runs. Unloaded: wrk -t1 -c1 -d$single_duration.

| ${2:-server} | tokens/s | p99 ms (loaded) | p50 ms (1 conn) | p99 ms (1 conn) | errors |
| --- | ---: | ---: | ---: | ---: | ---: |
TABLE
  printf '%s\n' "${rows[@]}"
}
