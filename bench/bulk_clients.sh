#!/usr/bin/env bash
# Latency flatness with many registered clients: does a token request cost the same with
# 1 000 clients registered as with 1 000 000? For each count N, a fresh data dir is loaded
# once with `portcullis bench load-clients` (clients bulk-00000000.., one shared secret,
# written straight to the store), then the runs are interleaved (N1, N2, N1, N2, ...) so the
# machine's noise falls on every N alike. Each run is wrk with bench/token_many.lua
# (client_secret_post from a client drawn at random per request):
#   - working set: BULK_ACTIVE (default 1000) distinct clients spread over the whole id range,
#     the same for every N — the flatness criterion (p99 within 1.2x);
#   - uniform: every request from any of the N clients — the cache-miss worst case.
#
# usage: bench/bulk_clients.sh [N...]          (default: 1000 1000000)
# env: BENCH_RUNS (3)  BENCH_DURATION (15s)  BULK_ACTIVE (1000)  and bench/lib.sh's knobs.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source bench/lib.sh

counts=("$@")
[[ ${#counts[@]} -gt 0 ]] || counts=(1000 1000000)
active="${BULK_ACTIVE:-1000}"

require_tools
build_release portcullis
[[ -x $portcullis_bin ]] || die "$portcullis_bin is missing"

# serve_run N ACTIVE: one wrk run against a node on N's data dir; prints the RESULT line.
serve_run() {
  local n=$1 act=$2 data="$work/data-$1" log="$work/serve-$1.log" url line
  PORTCULLIS_RATE_LIMIT__PER_CLIENT=0 PORTCULLIS_RATE_LIMIT__PER_ADDRESS=0 RUST_LOG=warn \
    "$portcullis_bin" serve --data-dir "$data" --listen 127.0.0.1:0 --listen-tls off >"$log" 2>&1 &
  pids+=($!)
  wait_for_line "$log" "portcullis listening on http://" "${pids[-1]}"
  url=$(sed -n 's/^portcullis listening on \(http:\/\/\)/\1/p' "$log")
  line=$(BULK_COUNT=$n BULK_ACTIVE=$act BULK_SECRET=$(json_field "$work/load-$n.json" client_secret) \
    timeout 300 wrk "-t$threads" "-c$connections" "-d$duration" --latency \
    -s bench/token_many.lua "$url/oauth2/token" | grep '^RESULT') || die "wrk failed for N=$n"
  stop_last_server
  echo "$line"
}

for n in "${counts[@]}"; do
  data="$work/data-$n"
  say "N=$n: first start, then loading $n clients"
  "$portcullis_bin" serve --data-dir "$data" --listen 127.0.0.1:0 --listen-tls off >"$work/first-$n.log" 2>&1 &
  pids+=($!)
  wait_for_line "$work/first-$n.log" "portcullis listening on http://" "${pids[-1]}"
  stop_last_server
  timeout 3600 "$portcullis_bin" bench load-clients --data-dir "$data" --count "$n" >"$work/load-$n.json"
  say "N=$n: $(du -sh "$data" | cut -f1) on disk"
done

declare -A ws_rps ws_p99 un_rps un_p99
for ((i = 1; i <= runs; i++)); do
  for n in "${counts[@]}"; do
    say "run $i/$runs, N=$n, working set $active"
    line=$(serve_run "$n" "$active")
    ws_rps[$n]+="$(field rps "$line") "; ws_p99[$n]+="$(field p99_us "$line") "
    say "run $i/$runs, N=$n, uniform over all $n"
    line=$(serve_run "$n" "$n")
    un_rps[$n]+="$(field rps "$line") "; un_p99[$n]+="$(field p99_us "$line") "
  done
done

cat <<TABLE

Token endpoint by number of registered clients, $(date -u +%Y-%m-%d), $(nproc) cores, wrk on the same machine.
wrk -t$threads -c$connections -d$duration, bench/token_many.lua (client_secret_post), median of $runs interleaved runs.

| registered clients | working set | tokens/s | p99 ms | uniform over all: tokens/s | p99 ms |
| ---: | ---: | ---: | ---: | ---: | ---: |
TABLE
for n in "${counts[@]}"; do
  # shellcheck disable=SC2086  # the lists are space-separated numbers
  printf '| %s | %s | %.0f | %s | %.0f | %s |\n' "$n" "$active" \
    "$(median ${ws_rps[$n]})" "$(ms "$(median ${ws_p99[$n]})")" \
    "$(median ${un_rps[$n]})" "$(ms "$(median ${un_p99[$n]})")"
done
