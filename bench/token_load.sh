#!/usr/bin/env bash
# Side-by-side token endpoint load: Portcullis, panva's oidc-provider and the ceiling server
# (form parse + one ES256 signature, nothing else), each loaded with wrk on 127.0.0.1.
#
# For each server: BENCH_RUNS runs of `wrk -t2 -c32 -dBENCH_DURATION --latency` (median
# tokens/s and median p99), one `wrk -t1 -c1 -d5s` run (unloaded latency), and the ceiling's
# bare `GET /`. Prints a markdown table to paste into docs/benchmarks.md; writes nothing else
# outside a temporary folder.
#
# usage: bench/token_load.sh [portcullis] [oidc-provider] [ceiling]   (default: all three)
# env:   BENCH_RUNS (3)  BENCH_DURATION (15s)  BENCH_CONNECTIONS (32)  BENCH_THREADS (2)
#        BENCH_SINGLE_DURATION (5s)  BENCH_PORT_BASE (18080)
#        PORTCULLIS_TOKEN_BODY (grant_type=client_credentials)
#        PORTCULLIS_BIN (target/release/portcullis)  BENCH_NO_BUILD=1 to skip cargo build
set -euo pipefail
shopt -s inherit_errexit

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

runs="${BENCH_RUNS:-3}"
duration="${BENCH_DURATION:-15s}"
connections="${BENCH_CONNECTIONS:-32}"
threads="${BENCH_THREADS:-2}"
single_duration="${BENCH_SINGLE_DURATION:-5s}"
port_base="${BENCH_PORT_BASE:-18080}"
portcullis_bin="${PORTCULLIS_BIN:-$repo/target/release/portcullis}"
ceiling_bin="$repo/target/release/portcullis-bench-ceiling"
portcullis_body="${PORTCULLIS_TOKEN_BODY:-grant_type=client_credentials}"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"

targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(portcullis oidc-provider ceiling)

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'token_load.sh: %s\n' "$*" >&2; exit 1; }

work="$(mktemp -d -t portcullis-bench.XXXXXX)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# --- tools ---------------------------------------------------------------------------------
if ! command -v wrk >/dev/null; then
  say "installing wrk (apt)"
  apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi
command -v curl >/dev/null || die "curl is required"
command -v python3 >/dev/null || die "python3 is required (JSON parsing)"

wants() { local t; for t in "${targets[@]}"; do [[ $t == "$1" ]] && return 0; done; return 1; }

if [[ -z ${BENCH_NO_BUILD:-} ]]; then
  bins=()
  wants portcullis && [[ -z ${PORTCULLIS_BIN:-} ]] && bins+=(--bin portcullis)
  wants ceiling && bins+=(--bin portcullis-bench-ceiling)
  if [[ ${#bins[@]} -gt 0 ]]; then
    say "cargo build --release ${bins[*]}"
    cargo build --release "${bins[@]}" >&2
  fi
fi
if wants oidc-provider; then
  command -v node >/dev/null || die "node is required for oidc-provider"
  if [[ ! -d bench/oidc-provider/node_modules/oidc-provider ]]; then
    say "npm ci in bench/oidc-provider"
    npm ci --prefix bench/oidc-provider --no-audit --no-fund >&2
  fi
fi

# --- helpers -------------------------------------------------------------------------------
# wait_for_line LOG PATTERN PID: waits (60 s at most) until the server logs PATTERN.
wait_for_line() {
  local log=$1 pattern=$2 pid=$3 i
  for ((i = 0; i < 600; i++)); do
    grep -q "$pattern" "$log" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; die "server exited before it was ready"; }
    sleep 0.1
  done
  cat "$log" >&2
  die "server not ready after 60 s"
}

json_field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }

# preflight URL AUTH BODY: one request by curl; the load is meaningless unless it is a 200 JWT.
preflight() {
  local out="$work/preflight.json" status
  status=$(curl -s -o "$out" -w '%{http_code}' -H "Authorization: $2" \
    -H 'Content-Type: application/x-www-form-urlencoded' --data "$3" "$1")
  if [[ $status != 200 ]] || ! grep -q '"access_token":"ey' "$out"; then
    die "preflight $1 answered $status: $(head -c 500 "$out")"
  fi
}

# load NAME URL AUTH BODY: prints "rps p99_us p50_single_us p99_single_us errors".
load() {
  local name=$1 url=$2 rps=() p99=() errors=0 i line
  for ((i = 1; i <= runs; i++)); do
    say "$name: wrk -t$threads -c$connections -d$duration --latency (run $i/$runs)"
    line=$(TOKEN_AUTH="$3" TOKEN_BODY="$4" timeout 120 \
      wrk "-t$threads" "-c$connections" "-d$duration" --latency -s bench/token.lua "$url" |
      tee -a "$work/$name.wrk.txt" | grep '^RESULT') || die "$name: wrk failed (see output above)"
    rps+=("$(field rps "$line")")
    p99+=("$(field p99_us "$line")")
    errors=$((errors + $(field errors "$line")))
  done
  say "$name: wrk -t1 -c1 -d$single_duration --latency"
  line=$(TOKEN_AUTH="$3" TOKEN_BODY="$4" timeout 60 \
    wrk -t1 -c1 "-d$single_duration" --latency -s bench/token.lua "$url" | grep '^RESULT') ||
    die "$name: single-connection wrk failed"
  errors=$((errors + $(field errors "$line")))
  echo "$(median "${rps[@]}") $(median "${p99[@]}") $(field p50_us "$line") $(field p99_us "$line") $errors"
}

field() { sed -n "s/.*[[:space:]]$1=\([0-9.]*\).*/\1/p" <<<"$2"; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ms() { awk -v us="$1" 'BEGIN {printf "%.2f", us/1000}'; }

rows=()
row() { # NAME "rps p99 p50_1 p99_1 errors"
  local r
  read -r -a r <<<"$2"
  rows+=("| $1 | $(printf '%.0f' "${r[0]}") | $(ms "${r[1]}") | $(ms "${r[2]}") | $(ms "${r[3]}") | ${r[4]} |")
}

port=$port_base

# --- Portcullis ----------------------------------------------------------------------------
if wants portcullis; then
  [[ -x $portcullis_bin ]] || die "$portcullis_bin is missing (cargo build --release --bin portcullis)"
  addr="127.0.0.1:$port"; port=$((port + 1))
  data="$work/portcullis-data"; mkdir -p "$data"
  say "starting portcullis on $addr"
  RUST_LOG="${RUST_LOG:-warn}" "$portcullis_bin" serve --data-dir "$data" --listen "$addr" \
    >"$work/portcullis.log" 2>&1 &
  pids+=($!)
  wait_for_line "$work/portcullis.log" "portcullis listening on" "${pids[-1]}"
  for ((i = 0; i < 100; i++)); do [[ -s $data/admin.json ]] && break; sleep 0.1; done
  [[ -s $data/admin.json ]] || die "portcullis wrote no $data/admin.json"
  "$portcullis_bin" client create --server "http://$addr" --admin-credential "$data/admin.json" \
    --name bench --json >"$work/client.json" || die "portcullis client create failed"
  id=$(json_field "$work/client.json" client_id)
  secret=$(json_field "$work/client.json" client_secret)
  auth="Basic $(printf '%s:%s' "$id" "$secret" | base64 -w0)"
  url="http://$addr/oauth2/token"
  preflight "$url" "$auth" "$portcullis_body"
  result=$(load portcullis "$url" "$auth" "$portcullis_body")
  row "Portcullis" "$result"
fi

# --- oidc-provider -------------------------------------------------------------------------
if wants oidc-provider; then
  op_port=$port; port=$((port + 1))
  op_secret="bench-$(head -c 24 /dev/urandom | base64 -w0 | tr '+/' '-_')"
  say "starting oidc-provider on 127.0.0.1:$op_port"
  NODE_ENV=production PORT=$op_port CLIENT_SECRET=$op_secret node bench/oidc-provider/server.mjs \
    >"$work/oidc-provider.log" 2>&1 &
  pids+=($!)
  wait_for_line "$work/oidc-provider.log" "oidc-provider listening on" "${pids[-1]}"
  auth="Basic $(printf 'bench:%s' "$op_secret" | base64 -w0)"
  body="grant_type=client_credentials&resource=urn%3Abench"
  url="http://127.0.0.1:$op_port/token"
  preflight "$url" "$auth" "$body"
  result=$(load oidc-provider "$url" "$auth" "$body")
  version=$(node -p 'require("./bench/oidc-provider/node_modules/oidc-provider/package.json").version')
  row "oidc-provider $version (Node $(node --version))" "$result"
fi

# --- ceiling -------------------------------------------------------------------------------
if wants ceiling; then
  [[ -x $ceiling_bin ]] || die "$ceiling_bin is missing (cargo build --release --bin portcullis-bench-ceiling)"
  addr="127.0.0.1:$port"; port=$((port + 1))
  say "starting the ceiling server on $addr"
  "$ceiling_bin" "$addr" >"$work/ceiling.log" 2>&1 &
  pids+=($!)
  wait_for_line "$work/ceiling.log" "ceiling listening on" "${pids[-1]}"
  auth="Basic $(printf 'bench:unchecked' | base64 -w0)"
  body="grant_type=client_credentials"
  preflight "http://$addr/token" "$auth" "$body"
  result=$(load ceiling "http://$addr/token" "$auth" "$body")
  row "ceiling (parse + ES256 sign)" "$result"
  result=$(BENCH_BARE=1 load bare "http://$addr/" "" "")
  row "bare axum GET /" "$result"
fi

# --- report --------------------------------------------------------------------------------
cat <<EOF

Token endpoint load, $(date -u +%Y-%m-%d), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), wrk on the same machine.
Loaded: wrk -t$threads -c$connections -d$duration --latency, median of $runs runs. Unloaded: wrk -t1 -c1 -d$single_duration.

| server | tokens/s | p99 ms (loaded) | p50 ms (1 conn) | p99 ms (1 conn) | errors |
| --- | ---: | ---: | ---: | ---: | ---: |
EOF
printf '%s\n' "${rows[@]}"
