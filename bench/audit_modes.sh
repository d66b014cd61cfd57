#!/usr/bin/env bash
# /oauth2/token with `[audit] mode = "async"` vs `"durable"` (issue #11 finding 4: decide the
# default from the throughput and p99 of both). Two release nodes on SQLite run side by side,
# both up for the whole measurement; BENCH_RUNS wrk runs of bench/token.lua alternate between
# them (async, durable, async, ...) so the machine's noise falls on both alike. In durable mode
# every token waits for the group commit of its audit record.
#
# usage: bench/audit_modes.sh
# env: bench/lib.sh's knobs (BENCH_RUNS, BENCH_DURATION, BENCH_CONNECTIONS, ...).
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source bench/lib.sh

port="${BENCH_PORT_BASE:-18380}"
require_tools
build_release portcullis
trap cleanup EXIT

modes=(async durable)
declare -A url auth
for i in "${!modes[@]}"; do
  mode=${modes[$i]}
  export PORTCULLIS_AUDIT__MODE=$mode
  start_portcullis "127.0.0.1:$((port + i))" "$work/$mode"
  url[$mode]="http://127.0.0.1:$((port + i))/oauth2/token" auth[$mode]=$portcullis_auth
done
unset PORTCULLIS_AUDIT__MODE
for mode in "${modes[@]}"; do
  preflight "${url[$mode]}" "${auth[$mode]}" "$portcullis_body"
done

declare -A rps p99 p99_single
errors=0
for ((i = 1; i <= runs; i++)); do
  for mode in "${modes[@]}"; do
    say "run $i/$runs: $mode"
    line=$(TOKEN_AUTH="${auth[$mode]}" TOKEN_BODY="$portcullis_body" timeout 300 \
      wrk "-t$threads" "-c$connections" "-d$duration" --latency -s bench/token.lua "${url[$mode]}" |
      grep '^RESULT') || die "wrk failed against $mode"
    rps[$mode]+="$(field rps "$line") "
    p99[$mode]+="$(field p99_us "$line") "
    errors=$((errors + $(field errors "$line")))
    line=$(TOKEN_AUTH="${auth[$mode]}" TOKEN_BODY="$portcullis_body" timeout 300 \
      wrk -t1 -c1 "-d$single_duration" --latency -s bench/token.lua "${url[$mode]}" |
      grep '^RESULT') || die "wrk failed against $mode"
    p99_single[$mode]+="$(field p99_us "$line") "
  done
done

cat <<TABLE

/oauth2/token by audit mode (SQLite), $(date -u +%Y-%m-%d), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end;
wrk -t$threads -c$connections -d$duration and -t1 -c1 -d$single_duration, bench/token.lua, $runs interleaved runs per mode.

| audit mode | tokens/s (each run) | median | p99 ms, $connections conns (median) | p99 ms, 1 conn (median) |
|---|---|---:|---:|---:|
TABLE
for mode in "${modes[@]}"; do
  # shellcheck disable=SC2086  # space-separated numbers
  printf '| %s | %s | %.0f | %s | %s |\n' "$mode" "$(printf '%.0f / ' ${rps[$mode]} | sed 's| / $||')" \
    "$(median ${rps[$mode]})" "$(ms "$(median ${p99[$mode]})")" "$(ms "$(median ${p99_single[$mode]})")"
done
# shellcheck disable=SC2086
awk -v a="$(median ${rps[async]})" -v d="$(median ${rps[durable]})" \
  'BEGIN { printf "\ndurable / async tokens/s: %.0f %%\n", 100 * d / a }'
echo "failed requests over all runs: $errors"
