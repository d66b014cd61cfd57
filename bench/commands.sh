#!/usr/bin/env bash
# Commands end to end (issue #13): CMD_DEVICES (1000) devices connected over MQTT with their
# device tokens, subscribed to their command topics; `gateway-load commands` posts commands
# (POST /gateway/v1/devices/{id}/commands, 8 keep-alive connections, one rule allowing them,
# the policy evaluated, the command signed ES256 under the device's next sequence number in one
# store transaction) at each total rate of CMD_RATES ("250 500 1000 2000"), each device answers
# with a COSE_Mac0 result that the gateway verifies, stores and records. Per rate: commands
# answered/s in the CMD_DURATION (10) s window, sent → delivered and sent → answered p50/p99.
# Every rate runs CMD_ROUNDS (2) times, interleaved (250, 500, ..., 250, 500, ...).
#
# usage: bench/commands.sh          (builds the release binaries first)
# env:   CMD_DEVICES CMD_RATES CMD_DURATION CMD_ROUNDS BENCH_NO_BUILD PORTCULLIS_BIN GW_LOAD_BIN
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source bench/lib.sh

devices="${CMD_DEVICES:-1000}"
rates="${CMD_RATES:-250 500 1000 2000}"
cmd_duration="${CMD_DURATION:-10}"
cmd_rounds="${CMD_ROUNDS:-2}"
load_bin="${GW_LOAD_BIN:-$PWD/target/release/gateway-load}"
require_tools
if [[ -z ${BENCH_NO_BUILD:-} ]]; then
  say "cargo build --release -p portcullis -p portcullis-bench-gateway-load"
  cargo build --release -p portcullis -p portcullis-bench-gateway-load >&2
fi

http_port=$(free_port)
mqtt_port=$(free_port)
data="$work/node"
mkdir -p "$data"
rules='{ rules = [ { name = "bench", principals = { scopes = ["commands:bench"] }, commands = ["valve.open"], args = { position = { min = 0, max = 100 } } } ] }'
PORTCULLIS_GATEWAY__COMMANDS="$rules" PORTCULLIS_RATE_LIMIT__PER_CLIENT=0 PORTCULLIS_RATE_LIMIT__PER_ADDRESS=0 \
  RUST_LOG="${RUST_LOG:-warn}" "$portcullis_bin" serve --data-dir "$data" --listen "127.0.0.1:$http_port" \
  --listen-tls 127.0.0.1:0 --listen-mqtt "127.0.0.1:$mqtt_port" --listen-mqtts off >"$work/node.log" 2>&1 &
node_pid=$!
pids+=("$node_pid")
wait_for_line "$work/node.log" "portcullis listening on http://" "$node_pid"
for ((i = 0; i < 100; i++)); do [[ -s $data/admin.json ]] && break; sleep 0.1; done
server="http://127.0.0.1:$http_port"
admin=(--server "$server" --admin-credential "$data/admin.json")
issuer=$(curl -sf "$server/.well-known/oauth-authorization-server" | python3 -c 'import json,sys; print(json.load(sys.stdin)["issuer"])')

say "root and command keys, $devices devices with keys, a sending client"
"$portcullis_bin" trust key create --role root "${admin[@]}" --json >/dev/null
"$portcullis_bin" trust key create --role commands "${admin[@]}" --json >/dev/null
{
  echo device_id
  for ((i = 0; i < devices; i++)); do printf 'cmd-%06d\n' "$i"; done
} >"$work/devices.csv"
"$portcullis_bin" device import "$work/devices.csv" --with-keys --secrets-out "$work/secrets.csv" "${admin[@]}" \
  >"$work/import.log" 2>&1 || { cat "$work/import.log" >&2; die "device import failed"; }
"$portcullis_bin" client create --name sender --scope commands:bench "${admin[@]}" --json >"$work/sender.json"
token() {
  curl -s -u "$(json_field "$work/sender.json" client_id):$(json_field "$work/sender.json" client_secret)" \
    -d grant_type=client_credentials -d scope=commands:bench "$server/oauth2/token" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}

results=()
for ((round = 1; round <= cmd_rounds; round++)); do
  for rate in $rates; do
    say "round $round/$cmd_rounds: $rate commands/s"
    line=$(timeout 300 "$load_bin" commands --mqtt "127.0.0.1:$mqtt_port" --http "127.0.0.1:$http_port" \
      --token "$(token)" --secrets "$work/secrets.csv" --audience "$issuer" --devices "$devices" \
      --rate "$rate" --duration "$cmd_duration" | grep '^RESULT') || die "gateway-load commands failed"
    echo "RESULT rate=$rate $line" >&2
    results+=("$rate ${line#RESULT }")
  done
done

value() { sed -n "s/.*[[:space:]]$1=\([0-9.]*\).*/\1/p" <<<" $2"; }
echo
echo "Commands end to end, $devices devices, $(date -u +%Y-%m-%d), $(nproc) cores, generator on the same machine, median of $cmd_rounds runs per rate."
echo
echo "| offered /s | answered /s | delivered p50 ms | delivered p99 ms | answered p50 ms | answered p99 ms | errors |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for rate in $rates; do
  mine=()
  for r in "${results[@]}"; do [[ ${r%% *} == "$rate" ]] && mine+=("$r"); done
  col() { median $(for r in "${mine[@]}"; do value "$1" "$r"; done); }
  echo "| $rate | $(col commands_s) | $(col delivered_p50_ms) | $(col delivered_p99_ms) | $(col answered_p50_ms) | $(col answered_p99_ms) | $(col errors) |"
done
