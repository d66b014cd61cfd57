#!/usr/bin/env bash
# Latency flatness on PostgreSQL (issue #5): does a token request cost the same with 1 000
# clients and 1 000 devices registered as with 1 000 000 of each? For each N, a fresh database
# is created (psql as postgres on BENCH_PG, trust auth), a node starts once on it (keys, pepper,
# admin credential), `portcullis bench load-clients` and `bench load-devices` fill it, and then
# the runs are interleaved (N1, N2, N1, N2, ...) so the machine's noise falls on every N alike.
# Each run is wrk with bench/token_many.lua (client_secret_post from a client drawn at random
# per request), as in bench/bulk_clients.sh:
#   - working set: BULK_ACTIVE (default 1000) distinct clients spread over the whole id range,
#     the same for every N — the flatness criterion (p99 within 1.2x);
#   - uniform: every request from any of the N clients — the cache-miss worst case.
# The databases are dropped at the end (also on failure).
#
# usage: bench/bulk_pg.sh [N...]               (default: 1000 1000000)
# env: BENCH_PG (postgres://postgres@127.0.0.1:5432)  BENCH_RUNS (3)  BENCH_DURATION (15s)
#      BULK_ACTIVE (1000)  and bench/lib.sh's knobs.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source bench/lib.sh

counts=("$@")
[[ ${#counts[@]} -gt 0 ]] || counts=(1000 1000000)
active="${BULK_ACTIVE:-1000}"
server="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
# pg DB SQL: one statement on database DB, unaligned output.
pg() { psql "$server/$1" -qAt -v ON_ERROR_STOP=1 -c "$2"; }

require_tools
command -v psql >/dev/null || die "psql is required (apt-get install postgresql-client)"
pg postgres 'SELECT 1' >/dev/null || die "PostgreSQL at $server is not reachable"
build_release portcullis
[[ -x $portcullis_bin ]] || die "$portcullis_bin is missing"

# One database per N, named after this run so parallel runs never collide; dropped on exit
# after lib.sh's cleanup has stopped the servers.
dbs=()
db_name() { echo "portcullis_bench_$$_$1"; }
drop_dbs() {
  local db
  for db in "${dbs[@]}"; do
    pg postgres "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 ||
      printf 'could not drop database %s\n' "$db" >&2
  done
}
trap 'cleanup; drop_dbs' EXIT

# serve N: starts a node on N's database and data dir in the background; sets `url`.
serve() {
  local n=$1 log="$work/serve-$1-$RANDOM.log"
  PORTCULLIS_STORE__URL="$server/$(db_name "$n")" \
    PORTCULLIS_RATE_LIMIT__PER_CLIENT=0 PORTCULLIS_RATE_LIMIT__PER_ADDRESS=0 RUST_LOG=warn \
    "$portcullis_bin" serve --data-dir "$work/data-$n" --listen 127.0.0.1:0 --listen-tls off >"$log" 2>&1 &
  pids+=($!)
  wait_for_line "$log" "portcullis listening on http://" "${pids[-1]}"
  url=$(sed -n 's/^portcullis listening on \(http:\/\/\)/\1/p' "$log")
}

# serve_run N ACTIVE: one wrk run against a node on N's database; prints the RESULT line.
serve_run() {
  local n=$1 act=$2 url line
  serve "$n"
  line=$(BULK_COUNT=$n BULK_ACTIVE=$act BULK_SECRET=$(json_field "$work/load-$n.json" client_secret) \
    timeout 300 wrk "-t$threads" "-c$connections" "-d$duration" --latency \
    -s bench/token_many.lua "$url/oauth2/token" | grep '^RESULT') || die "wrk failed for N=$n"
  stop_last_server
  echo "$line"
}

for n in "${counts[@]}"; do
  db=$(db_name "$n")
  pg postgres "CREATE DATABASE $db" >/dev/null
  dbs+=("$db")
  say "N=$n: database $db, first start, then loading $n clients and $n devices"
  serve "$n"
  stop_last_server
  timeout 3600 "$portcullis_bin" bench load-clients --store-url "$server/$db" --count "$n" >"$work/load-$n.json"
  timeout 3600 "$portcullis_bin" bench load-devices --store-url "$server/$db" --count "$n" >/dev/null
  pg "$db" "VACUUM ANALYZE" >/dev/null
  say "N=$n: $(pg "$db" 'SELECT count(*) FROM clients') clients, $(pg "$db" 'SELECT count(*) FROM devices') devices, $(pg "$db" "SELECT pg_size_pretty(pg_database_size('$db'))") in PostgreSQL"
done

declare -A ws_rps ws_p99 un_rps un_p99
errors=0
for ((i = 1; i <= runs; i++)); do
  for n in "${counts[@]}"; do
    say "run $i/$runs, N=$n, working set $active"
    line=$(serve_run "$n" "$active")
    ws_rps[$n]+="$(field rps "$line") "; ws_p99[$n]+="$(field p99_us "$line") "
    errors=$((errors + $(field errors "$line")))
    say "run $i/$runs, N=$n, uniform over all $n"
    line=$(serve_run "$n" "$n")
    un_rps[$n]+="$(field rps "$line") "; un_p99[$n]+="$(field p99_us "$line") "
    errors=$((errors + $(field errors "$line")))
  done
done

cat <<TABLE

Token endpoint on PostgreSQL by number of registered clients and devices, $(date -u +%Y-%m-%d), $(nproc) cores, PostgreSQL and wrk on the same machine.
wrk -t$threads -c$connections -d$duration, bench/token_many.lua (client_secret_post), median of $runs interleaved runs.

| clients + devices | working set | tokens/s | p99 ms | uniform over all: tokens/s | p99 ms |
| ---: | ---: | ---: | ---: | ---: | ---: |
TABLE
for n in "${counts[@]}"; do
  # shellcheck disable=SC2086  # the lists are space-separated numbers
  printf '| %s + %s | %s | %.0f | %s | %.0f | %s |\n' "$n" "$n" "$active" \
    "$(median ${ws_rps[$n]})" "$(ms "$(median ${ws_p99[$n]})")" \
    "$(median ${un_rps[$n]})" "$(ms "$(median ${un_p99[$n]})")"
done
first=${counts[0]} last=${counts[-1]}
# shellcheck disable=SC2086
awk -v a="$(median ${ws_p99[$first]})" -v b="$(median ${ws_p99[$last]})" \
  -v c="$(median ${un_p99[$first]})" -v d="$(median ${un_p99[$last]})" -v f="$first" -v l="$last" \
  'BEGIN { printf "\np99 ratio N=%s / N=%s: working set %.2fx (target <= 1.2x), uniform %.2fx\n", l, f, b / a, d / c }'
echo "failed requests (non-2xx, socket errors) over all runs: $errors"
