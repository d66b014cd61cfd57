#!/usr/bin/env bash
# /oauth2/token on PostgreSQL vs the embedded SQLite (issue #5: PostgreSQL at least 80 % of
# SQLite's throughput, the hot path served from cache). Two release nodes run side by side, one
# per store (a fresh PostgreSQL database, dropped at the end), both up for the whole
# measurement; BENCH_RUNS wrk runs of bench/token.lua alternate between them (SQLite, PostgreSQL,
# SQLite, ...) so the machine's noise falls on both alike. Each node writes every issued token
# to its audit chain, so the store's write path is in the measurement too.
#
# usage: bench/store_compare.sh
# env: BENCH_PG (postgres://postgres@127.0.0.1:5432) and bench/lib.sh's knobs.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source bench/lib.sh

server="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
pg() { psql "$server/$1" -qAt -v ON_ERROR_STOP=1 -c "$2"; }
port="${BENCH_PORT_BASE:-18280}"

require_tools
command -v psql >/dev/null || die "psql is required (apt-get install postgresql-client)"
pg postgres 'SELECT 1' >/dev/null || die "PostgreSQL at $server is not reachable"
build_release portcullis

db="portcullis_bench_cmp_$$"
trap 'cleanup; pg postgres "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
pg postgres "CREATE DATABASE $db" >/dev/null

declare -A url auth
start_portcullis "127.0.0.1:$port" "$work/sqlite"
url[sqlite]="http://127.0.0.1:$port/oauth2/token" auth[sqlite]=$portcullis_auth
export PORTCULLIS_STORE__URL="$server/$db"
start_portcullis "127.0.0.1:$((port + 1))" "$work/postgres"
unset PORTCULLIS_STORE__URL
url[postgres]="http://127.0.0.1:$((port + 1))/oauth2/token" auth[postgres]=$portcullis_auth
for store in sqlite postgres; do
  preflight "${url[$store]}" "${auth[$store]}" "$portcullis_body"
done

declare -A rps p99
errors=0
for ((i = 1; i <= runs; i++)); do
  for store in sqlite postgres; do
    say "run $i/$runs: $store"
    line=$(TOKEN_AUTH="${auth[$store]}" TOKEN_BODY="$portcullis_body" timeout 300 \
      wrk "-t$threads" "-c$connections" "-d$duration" --latency -s bench/token.lua "${url[$store]}" |
      grep '^RESULT') || die "wrk failed against $store"
    rps[$store]+="$(field rps "$line") "
    p99[$store]+="$(field p99_us "$line") "
    errors=$((errors + $(field errors "$line")))
  done
done
issued=$(pg "$db" "SELECT count(*) FROM audit_log WHERE action = 'token.issued'")

cat <<TABLE

/oauth2/token by store, $(date -u +%Y-%m-%d), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end;
wrk -t$threads -c$connections -d$duration, bench/token.lua, $runs interleaved runs per store.

| store | tokens/s (each run) | median | p99 ms (median) |
|---|---|---:|---:|
TABLE
for store in sqlite postgres; do
  # shellcheck disable=SC2086  # space-separated numbers
  printf '| %s | %s | %.0f | %s |\n' "$store" "$(printf '%.0f / ' ${rps[$store]} | sed 's| / $||')" \
    "$(median ${rps[$store]})" "$(ms "$(median ${p99[$store]})")"
done
# shellcheck disable=SC2086
awk -v s="$(median ${rps[sqlite]})" -v p="$(median ${rps[postgres]})" \
  'BEGIN { printf "\nPostgreSQL / SQLite tokens/s: %.0f %% (target >= 80 %%)\n", 100 * p / s }'
echo "failed requests over all runs: $errors; tokens in the PostgreSQL audit chain: $issued"
