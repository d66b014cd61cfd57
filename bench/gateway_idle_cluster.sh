#!/usr/bin/env bash
# 100 000 idle connected devices on one machine whose per-process descriptor limit is 20 000
# (hard; raising it needs CAP_SYS_RESOURCE, which this container lacks): GW_NODES Portcullis
# nodes on one PostgreSQL database, each holding its share of the devices, and one
# `gateway-load mqtt --idle` per node (a process holds one descriptor per connection too).
# Issue #12 asks for 100 000 idle devices within 2 GiB resident memory; one node cannot hold
# them here, so this measures the whole cluster: the sum of every node's VmRSS while all the
# devices are connected at once (each node also carries its own baseline — runtime, pools,
# caches — so the sum is an upper bound of what one node holding them all would need).
#
# Every device is registered with a symmetric key (`device import --with-keys`), connects with
# a fresh HS256 device token as its MQTT password (source addresses 127.0.0.2-127.0.0.9, keep
# alive 60 s) and then stays idle.
#
# usage: bench/gateway_idle_cluster.sh
# env:   GW_NODES (6) GW_IDLE_DEVICES (100000) GW_HOLD (seconds each generator holds, 60)
#        BENCH_PG (postgres://postgres@127.0.0.1:5432), BENCH_NO_BUILD=1, PORTCULLIS_BIN,
#        GW_LOAD_BIN (target/release/gateway-load)
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source bench/lib.sh

nodes="${GW_NODES:-6}"
total="${GW_IDLE_DEVICES:-100000}"
hold="${GW_HOLD:-60}"
pg_server="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
load_bin="${GW_LOAD_BIN:-$PWD/target/release/gateway-load}"
pg() { psql "$pg_server/$1" -qAt -v ON_ERROR_STOP=1 -c "$2"; }

command -v psql >/dev/null || die "psql is required (apt-get install postgresql-client)"
pg postgres 'SELECT 1' >/dev/null || die "PostgreSQL at $pg_server is not reachable"
if [[ -z ${BENCH_NO_BUILD:-} ]]; then
  say "cargo build --release -p portcullis -p portcullis-bench-gateway-load"
  cargo build --release -p portcullis -p portcullis-bench-gateway-load >&2
fi
[[ -x $portcullis_bin && -x $load_bin ]] || die "release binaries missing"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
per_node=$(((total + nodes - 1) / nodes))
((per_node + 500 < $(ulimit -n))) || die "$per_node connections a node do not fit the descriptor limit $(ulimit -n); raise GW_NODES"

db="portcullis_idle_$$"
trap 'cleanup; pg postgres "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
pg postgres "CREATE DATABASE $db" >/dev/null

http_ports=() mqtt_ports=() node_pids=()
issuer="http://127.0.0.1:$(free_port)"
# start_node I: node I on the shared database, master key and issuer.
start_node() {
  local i=$1 http mqtt
  http=$(free_port) mqtt=$(free_port)
  mkdir -p "$work/node$i"
  PORTCULLIS_STORE__URL="$pg_server/$db" PORTCULLIS_KEYS__MASTER_KEY_FILE="$work/master.key" \
    PORTCULLIS_SERVER__ISSUER="$issuer" RUST_LOG="${RUST_LOG:-warn}" \
    PORTCULLIS_RATE_LIMIT__PER_CLIENT=0 PORTCULLIS_RATE_LIMIT__PER_ADDRESS=0 \
    "$portcullis_bin" serve --data-dir "$work/node$i" --listen "127.0.0.1:$http" --listen-tls 127.0.0.1:0 \
    --listen-mqtt "127.0.0.1:$mqtt" --listen-mqtts off >"$work/node$i.log" 2>&1 &
  pids+=($!)
  node_pids+=($!)
  http_ports+=("$http")
  mqtt_ports+=("$mqtt")
  wait_for_line "$work/node$i.log" "portcullis listening on http://" "$!"
}
say "starting node 1 (creates the keys and the admin credential in the database)"
start_node 1
for ((j = 0; j < 100; j++)); do [[ -s $work/node1/admin.json ]] && break; sleep 0.1; done
[[ -s $work/node1/admin.json ]] || die "node 1 wrote no admin credential"

say "registering $total devices with keys"
{
  echo device_id
  for ((d = 0; d < total; d++)); do printf 'idle-%06d\n' "$d"; done
} >"$work/devices.csv"
t0=$(date +%s.%N)
"$portcullis_bin" device import "$work/devices.csv" --with-keys --secrets-out "$work/secrets.csv" \
  --server "http://127.0.0.1:${http_ports[0]}" --admin-credential "$work/node1/admin.json" \
  >"$work/import.log" 2>&1 || { cat "$work/import.log" >&2; die "device import failed"; }
import_secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
say "imported in $import_secs s"
for ((i = 2; i <= nodes; i++)); do start_node "$i"; done
sleep 2
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
rss_sum() { local s=0 p; for p in "${node_pids[@]}"; do s=$((s + $(rss_kib "$p"))); done; echo "$s"; }
before=$(rss_sum)

say "connecting $total idle devices, $per_node a node"
load_pids=()
for ((i = 0; i < nodes; i++)); do
  skip=$((i * per_node))
  count=$((total - skip < per_node ? total - skip : per_node))
  "$load_bin" mqtt --idle --gateway --secrets "$work/secrets.csv" --skip "$skip" --devices "$count" \
    --audience "$issuer" --target "127.0.0.1:${mqtt_ports[$i]}" --source-ips 127.0.0.2-127.0.0.9 \
    --keep-alive 60 --hold "$hold" --connect-concurrency 200 --server-pid "${node_pids[$i]}" \
    >"$work/load$i.out" 2>"$work/load$i.err" &
  load_pids+=($!)
  pids+=($!)
done
# All generators report their connections up (or failed) before holding.
for ((t = 0; t < 1800; t++)); do
  up=$(cat "$work"/load*.err 2>/dev/null | grep -c 'idle connections up' || true)
  ((up == nodes)) && break
  sleep 0.5
done
((up == nodes)) || die "not every generator finished connecting"
sleep 3
established=0
for port in "${mqtt_ports[@]}"; do
  established=$((established + $(ss -Htn state established "( src 127.0.0.1:$port )" | wc -l)))
done
with=$(rss_sum)
per_node_rss=()
for p in "${node_pids[@]}"; do per_node_rss+=("$(awk -v k="$(rss_kib "$p")" 'BEGIN{printf "%.0f", k/1024}')"); done
for p in "${load_pids[@]}"; do wait "$p" || die "a generator failed (see $work/load*.err)"; done
held=0 failed=0 slowest=0
for ((i = 0; i < nodes; i++)); do
  line=$(grep '^RESULT' "$work/load$i.out") || die "generator $i printed no result"
  held=$((held + $(field held "$line")))
  failed=$((failed + $(field failed "$line")))
  slowest=$(awk -v a="$slowest" -v b="$(field connect_s "$line")" 'BEGIN{print (b > a ? b : a)}')
done

cat <<TABLE

Idle devices on $nodes nodes, one PostgreSQL database, $(date -u +%Y-%m-%d), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); device import --with-keys of $total devices: $import_secs s.

| nodes | devices connected at once (ESTABLISHED) | held to the end | failed | slowest generator to connect its share | nodes' RSS before | nodes' RSS with every device connected | per node (MiB) | per 1 000 connections |
| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |
| $nodes | $established | $held | $failed | $slowest s | $(awk -v k="$before" 'BEGIN{printf "%.0f MiB", k/1024}') | $(awk -v k="$with" 'BEGIN{printf "%.2f GiB", k/1048576}') | ${per_node_rss[*]} | $(awk -v a="$before" -v b="$with" -v n="$established" 'BEGIN{ if (n > 0) printf "%.2f MiB", (b-a)/n*1000/1024; else print "-" }') |

Target (issue #12): 100 000 idle devices within 2 GiB resident memory.
TABLE
