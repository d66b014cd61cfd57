#!/usr/bin/env bash
# /oauth2/token with audit records in the clear (`[audit] encrypt = false`, no detection: the
# audit as before issue #14), encrypted at rest, encrypted with attack detection (the default),
# and the ceiling server (parse + ES256 sign, nothing else), in one interleaved run (clear,
# encrypted, detection, ceiling, clear, ...) so the machine's drift falls on all alike (issue
# #14: encryption and detection may each cost at most 5 %). Three release nodes on SQLite, all
# up for the whole measurement, plus the ceiling binary.
#
# usage: bench/audit_encryption.sh
# env: bench/lib.sh's knobs (BENCH_RUNS, BENCH_DURATION, BENCH_CONNECTIONS, ...).
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source bench/lib.sh

port="${BENCH_PORT_BASE:-18480}"
require_tools
build_release portcullis portcullis-bench-ceiling
trap cleanup EXIT

variants=(clear encrypted detection ceiling)
declare -A url auth body
export PORTCULLIS_AUDIT__ENCRYPT=false PORTCULLIS_DETECTION__ENABLED=false
start_portcullis "127.0.0.1:$port" "$work/clear"
url[clear]="http://127.0.0.1:$port/oauth2/token" auth[clear]=$portcullis_auth body[clear]=$portcullis_body
unset PORTCULLIS_AUDIT__ENCRYPT
start_portcullis "127.0.0.1:$((port + 1))" "$work/encrypted"
url[encrypted]="http://127.0.0.1:$((port + 1))/oauth2/token" auth[encrypted]=$portcullis_auth body[encrypted]=$portcullis_body
unset PORTCULLIS_DETECTION__ENABLED
start_portcullis "127.0.0.1:$((port + 2))" "$work/detection"
url[detection]="http://127.0.0.1:$((port + 2))/oauth2/token" auth[detection]=$portcullis_auth body[detection]=$portcullis_body
say "starting the ceiling server"
target/release/portcullis-bench-ceiling "127.0.0.1:$((port + 3))" >"$work/ceiling.log" 2>&1 &
pids+=($!)
wait_for_line "$work/ceiling.log" "ceiling listening on" "${pids[-1]}"
url[ceiling]="http://127.0.0.1:$((port + 3))/token" auth[ceiling]=$(basic_auth bench unchecked)
body[ceiling]="grant_type=client_credentials"
for v in "${variants[@]}"; do
  preflight "${url[$v]}" "${auth[$v]}" "${body[$v]}"
done

declare -A rps p99
errors=0
for ((i = 1; i <= runs; i++)); do
  for v in "${variants[@]}"; do
    say "run $i/$runs: $v"
    line=$(TOKEN_AUTH="${auth[$v]}" TOKEN_BODY="${body[$v]}" timeout 300 \
      wrk "-t$threads" "-c$connections" "-d$duration" --latency -s bench/token.lua "${url[$v]}" |
      grep '^RESULT') || die "wrk failed against $v"
    rps[$v]+="$(field rps "$line") "
    p99[$v]+="$(field p99_us "$line") "
    errors=$((errors + $(field errors "$line")))
  done
done

# The encrypted node's records really are sealed (and the clear node's are not).
sealed=$(sqlite3 "$work/encrypted/portcullis.db" "SELECT COUNT(*) FROM audit_log WHERE detail LIKE '{\"sealed\"%'" 2>/dev/null || echo "?")

cat <<TABLE

/oauth2/token, audit records clear vs encrypted vs encrypted + detection (SQLite, async), and the ceiling, $(date -u +%Y-%m-%d), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end;
wrk -t$threads -c$connections -d$duration, bench/token.lua, $runs interleaved runs (clear, encrypted, detection, ceiling, ...).

TABLE
interleaved_rows "${variants[@]}"
# shellcheck disable=SC2086
awk -v c="$(median ${rps[clear]})" -v e="$(median ${rps[encrypted]})" -v d="$(median ${rps[detection]})" -v k="$(median ${rps[ceiling]})" \
  'BEGIN { printf "\nencrypted / clear: %.1f %%; detection / encrypted: %.1f %%; detection / clear: %.1f %%\nclear / ceiling: %.1f %%; detection / ceiling: %.1f %%\n", 100 * e / c, 100 * d / e, 100 * d / c, 100 * c / k, 100 * d / k }'
echo "sealed records in the encrypted node's store: $sealed; failed requests over all runs: $errors"
