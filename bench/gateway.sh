#!/usr/bin/env bash
# The device gateway's benchmarks (issue #12), side by side with their ceilings in one run:
#
#   mqtt   MQTT QoS 1, GW_DEVICES (1 000) devices, GW_SIZE (200)-byte messages,
#          GW_DURATION (10) s measured after 2 s of warm-up: a private Mosquitto (no
#          authentication, random payloads: the ceiling) and the Portcullis node (device tokens,
#          COSE_Mac0 per message, embedded sink), interleaved Mosquitto, gateway, ... for each
#          in-flight bound of GW_INFLIGHT ("16 1": at most that many unacknowledged per
#          connection), GW_ROUNDS (3) rounds; acknowledged messages/s, PUBACK p50/p99, and each
#          server's CPU time per message. The COSE messages are sealed before the window
#          (GW_PRESEAL per device, 1 200), so both runs cost the generator the same.
#   rate   PUBACK latency paced at half the gateway's best median maximum rate (gateway,
#          Mosquitto, gateway, Mosquitto at that same total rate).
#   sweep  PUBACK latency paced at each of GW_SWEEP_RATES ("5000 10000 20000 30000"), gateway
#          then Mosquitto: where the p99 stays low (not in the default phases).
#   cose   COSE_Sign1 ES256 verifications/s (criterion, crates/gateway/benches/cose_verify.rs)
#          and `openssl speed -seconds 5 ecdsap256` verify/s, interleaved GW_ROUNDS times.
#   http   POST /gateway/v1/telemetry with application/cose bodies (bench/gateway_http.lua,
#          pre-built by `gateway-load cose-file`, fresh counters per run) and /oauth2/token
#          (bench/token.lua, as bench/token_load.sh), wrk -t2 -c32, interleaved GW_ROUNDS times.
#   idle   as many idle connected devices as the fd limit allows (at most GW_IDLE_MAX,
#          100 000), sources spread over 127.0.0.2-127.0.0.9, on a freshly restarted node,
#          then on Mosquitto: the server's VmRSS before, after, and per 1 000 connections.
#   perf   `perf record --call-graph dwarf` of the node during one gateway run, unpaced or
#          paced at GW_PERF_RATE msg/s: CPU by thread, and the inclusive share of the node's
#          own functions (GW_OUT/perf-*.txt).
#
# Prints the raw RESULT lines as they come (stderr) and markdown tables at the end; keeps the
# raw outputs in GW_OUT (default /tmp/gateway-bench-<time>). Starts everything on 127.0.0.1
# (Mosquitto on a free port with its own configuration, never the system one) and stops what
# it started by PID. ~10-13 minutes after the build.
#
# usage: bench/gateway.sh                    (all phases; builds the release binaries first)
#        GW_PHASES="mqtt rate" bench/gateway.sh
# env:   GW_ROUNDS (3) GW_DEVICES (1000) GW_SIZE (200) GW_DURATION (10) GW_INFLIGHT ("16 1")
#        GW_PRESEAL (1200) GW_TIMELINE=1 (each run's latencies per 10 ms of due time, in
#        GW_OUT/timeline-LABEL.txt: where the tail comes from) GW_DIRECT=1 (publishers drive
#        rumqttc's codec over their own sockets, `gateway-load --direct`: the same packets for
#        less of the generator's CPU, in every publishing run against both servers)
#        GW_IDLE_MAX (100000) GW_HTTP_DURATION (10s) GW_HTTP_MESSAGES (per wrk thread and run,
#        400000) GW_OUT, BENCH_NO_BUILD=1, and bench/lib.sh's knobs. Binaries: PORTCULLIS_BIN,
#        GW_LOAD_BIN (target/release/gateway-load), GW_COSE_BENCH (the criterion executable;
#        default: built and located by `cargo bench --no-run`).
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source bench/lib.sh

rounds="${GW_ROUNDS:-3}"
devices="${GW_DEVICES:-1000}"
size="${GW_SIZE:-200}"
mqtt_secs="${GW_DURATION:-10}"
inflights="${GW_INFLIGHT:-16 1}"
idle_max="${GW_IDLE_MAX:-100000}"
# Messages sealed per device before each unpaced gateway run (sealing is the devices' work:
# done before the window, it leaves the gateway and Mosquitto runs the same generator cost).
# 1 200 covers 100 000 msg/s over the 12 s of warm-up and window with 1 000 devices.
preseal="${GW_PRESEAL:-1200}"
http_duration="${GW_HTTP_DURATION:-10s}"
http_messages="${GW_HTTP_MESSAGES:-400000}"
phases=" ${GW_PHASES:-mqtt rate cose http idle perf} "
out="${GW_OUT:-/tmp/gateway-bench-$(date -u +%Y%m%dT%H%M%S)}"
load_bin="${GW_LOAD_BIN:-$PWD/target/release/gateway-load}"
mkdir -p "$out"
wants() { [[ $phases == *" $1 "* ]]; }
log() { printf '%s\n' "$*" | tee -a "$out/raw.txt" >&2; }

require_tools
command -v mosquitto >/dev/null || command -v /usr/sbin/mosquitto >/dev/null ||
  { say "installing mosquitto (apt)"; apt-get update -qq && apt-get install -y -qq mosquitto >/dev/null; }
mosquitto_bin=$(command -v mosquitto || echo /usr/sbin/mosquitto)
if [[ -z ${BENCH_NO_BUILD:-} ]]; then
  say "cargo build --release -p portcullis -p portcullis-bench-gateway-load"
  cargo build --release -p portcullis -p portcullis-bench-gateway-load >&2
fi
# The criterion binary is run directly, so that a source edit after the build does not start
# a rebuild in the middle of the measurements.
cose_bench="${GW_COSE_BENCH:-}"
if wants cose && [[ -z $cose_bench ]]; then
  say "cargo bench --no-run -p portcullis-gateway --bench cose_verify"
  cose_bench=$(cargo bench --no-run -p portcullis-gateway --bench cose_verify --message-format=json 2>/dev/null |
    python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "cose_verify" and m.get("executable"):
        print(m["executable"])')
  [[ -x $cose_bench ]] || die "the cose_verify bench did not build"
fi
[[ -x $portcullis_bin && -x $load_bin ]] || die "release binaries missing (cargo build --release -p portcullis -p portcullis-bench-gateway-load)"

# Idle connections need one descriptor each in the node and in the generator.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
fd_limit=$(ulimit -n)
idle_n=$((fd_limit - 1000 < idle_max ? fd_limit - 1000 : idle_max))
registered=$((idle_n > devices ? idle_n : devices))
log "fd limit $fd_limit (hard $(ulimit -Hn)): $idle_n idle devices, $registered registered"


# --- Mosquitto: the ceiling ---------------------------------------------------------------
mosq_port=$(free_port)
cat >"$work/mosquitto.conf" <<CONF
# bench/gateway.sh: a private broker, no authentication, nothing kept.
listener $mosq_port 127.0.0.1
allow_anonymous true
persistence false
max_inflight_messages 1000
max_queued_messages 100000
max_connections -1
set_tcp_nodelay true
log_dest stderr
log_type error
log_type warning
user root
CONF
start_mosquitto() {
  "$mosquitto_bin" -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
  mosq_pid=$!
  pids+=("$mosq_pid")
  local i
  for ((i = 0; i < 50; i++)); do
    (echo >"/dev/tcp/127.0.0.1/$mosq_port") 2>/dev/null && return 0
    kill -0 "$mosq_pid" 2>/dev/null || { cat "$work/mosquitto.log" >&2; die "mosquitto exited"; }
    sleep 0.1
  done
  die "mosquitto not listening on $mosq_port"
}
start_mosquitto
log "mosquitto $("$mosquitto_bin" -h 2>&1 | sed -n '1s/.*version //p') on 127.0.0.1:$mosq_port (pid $mosq_pid)"

# --- The Portcullis node ------------------------------------------------------------------
data="$work/node"
http_port=$(free_port)
mqtt_port=$(free_port)
start_node() {
  local log_file="$work/node-$RANDOM.log"
  PORTCULLIS_RATE_LIMIT__PER_CLIENT="${PORTCULLIS_RATE_LIMIT__PER_CLIENT:-0}" \
    PORTCULLIS_RATE_LIMIT__PER_ADDRESS="${PORTCULLIS_RATE_LIMIT__PER_ADDRESS:-0}" \
    RUST_LOG="${RUST_LOG:-warn}" \
    "$portcullis_bin" serve --data-dir "$data" --listen "127.0.0.1:$http_port" --listen-tls 127.0.0.1:0 \
    --listen-mqtt "127.0.0.1:$mqtt_port" --listen-mqtts off >"$log_file" 2>&1 &
  node_pid=$!
  pids+=("$node_pid")
  wait_for_line "$log_file" "portcullis listening on http://" "$node_pid"
  grep -q "portcullis gateway on mqtt://127.0.0.1:$mqtt_port" "$log_file" || die "no plain MQTT listener"
  local i
  for ((i = 0; i < 100; i++)); do [[ -s $data/admin.json ]] && break; sleep 0.1; done
  issuer=$(curl -sf "http://127.0.0.1:$http_port/.well-known/oauth-authorization-server" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["issuer"])')
}
stop_node() {
  kill "$node_pid" 2>/dev/null || true
  wait "$node_pid" 2>/dev/null || true
  local kept=() pid
  for pid in "${pids[@]}"; do [[ $pid == "$node_pid" ]] || kept+=("$pid"); done
  pids=("${kept[@]}")
}
mkdir -p "$data"
start_node
server="http://127.0.0.1:$http_port"
admin=(--server "$server" --admin-credential "$data/admin.json")
log "portcullis on $server, mqtt://127.0.0.1:$mqtt_port (pid $node_pid), issuer $issuer"

say "registering $registered devices with keys (device import --with-keys)"
{
  echo device_id
  for ((i = 0; i < registered; i++)); do printf 'gw-%06d\n' "$i"; done
} >"$work/devices.csv"
secrets="$work/secrets.csv"
t0=$(date +%s.%N)
"$portcullis_bin" device import "$work/devices.csv" --with-keys --secrets-out "$secrets" "${admin[@]}" \
  >"$work/import.log" 2>&1 || { cat "$work/import.log" >&2; die "device import failed"; }
log "device import --with-keys of $registered devices: $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s"

# mqtt_run LABEL TARGET_ARGS... : one gateway-load mqtt run; echoes its RESULT line.
mqtt_run() {
  local label=$1 line
  shift
  local extra=()
  [[ -n ${GW_TIMELINE:-} ]] && extra+=(--timeline "$out/timeline-${label// /_}.txt")
  [[ -n ${GW_DIRECT:-} ]] && extra+=(--direct)
  line=$(timeout 600 "$load_bin" mqtt --devices "$devices" --size "$size" --duration "$mqtt_secs" \
    "${extra[@]}" "$@" 2>"$work/load.err" | grep '^RESULT') ||
    { cat "$work/load.err" >&2; die "$label: gateway-load failed"; }
  [[ -s $work/load.err ]] && cat "$work/load.err" >>"$out/raw.txt"
  log "$label: $line"
  echo "$line"
}
mosq_args() { echo --plain --target "127.0.0.1:$mosq_port" --server-pid "$mosq_pid"; }
# preseal_for RATE: messages to seal ahead per device for a run paced at RATE (warm-up and
# window, with a margin).
preseal_for() { awk -v r="$1" -v d="$devices" -v s="$mqtt_secs" 'BEGIN{printf "%d", 1.2 * r * (s + 2) / d + 10}'; }
# gw_args [PRESEAL]: the gateway run's arguments, PRESEAL messages sealed ahead per device.
gw_args() {
  echo --gateway --secrets "$secrets" --audience "$issuer" --target "127.0.0.1:$mqtt_port" --server-pid "$node_pid" \
    --preseal "${1:-$preseal}"
}
pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.0f %%", 100 * a / b; else print "-" }'; }
# 42 324: digits grouped by three with a space, as in the rest of docs/benchmarks.md.
fmt() { awk -v n="$1" 'BEGIN { s = sprintf("%.0f", n); o = ""; while (length(s) > 3) { o = " " substr(s, length(s) - 2) o; s = substr(s, 1, length(s) - 3) }; print s o }'; }

tables=()

# --- mqtt: interleaved maximum-rate rounds ------------------------------------------------
# Each round: Mosquitto then the gateway, for each in-flight bound in turn.
best_gw=0
if wants mqtt || wants rate; then
  tables+=("" "MQTT QoS 1, $devices devices, $size-byte messages, ${mqtt_secs} s measured after 2 s of warm-up (CPU: the server process's user + system time per acknowledged message):" ""
    "| round | in flight / conn | Mosquitto msg/s | p50 / p99 ms | CPU µs/msg | gateway msg/s | p50 / p99 ms | CPU µs/msg | gateway / Mosquitto |"
    "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
  n_rounds=$rounds
  wants mqtt || n_rounds=1
  declare -A mq_rates gw_rates ratios
  for ((r = 1; r <= n_rounds; r++)); do
    for w in $inflights; do
      # shellcheck disable=SC2046
      m=$(mqtt_run "round $r inflight $w mosquitto" $(mosq_args) --inflight "$w")
      # shellcheck disable=SC2046
      g=$(mqtt_run "round $r inflight $w gateway" $(gw_args) --inflight "$w")
      [[ $(field errors "$m") == 0 && $(field errors "$g") == 0 ]] || log "round $r: connection errors (see above)"
      mq_rates[$w]+="$(field rate "$m") "
      gw_rates[$w]+="$(field rate "$g") "
      ratios[$w]+="$(awk -v a="$(field rate "$g")" -v b="$(field rate "$m")" 'BEGIN{print a/b}') "
      tables+=("| $r | $w | $(fmt "$(field rate "$m")") | $(ms "$(field p50_us "$m")") / $(ms "$(field p99_us "$m")") | $(field server_us_per_msg "$m") | $(fmt "$(field rate "$g")") | $(ms "$(field p50_us "$g")") / $(ms "$(field p99_us "$g")") | $(field server_us_per_msg "$g") | $(pct "$(field rate "$g")" "$(field rate "$m")") |")
    done
  done
  tables+=("")
  for w in $inflights; do
    # shellcheck disable=SC2086
    gw_median=$(median ${gw_rates[$w]})
    best_gw=$(awk -v a="$best_gw" -v b="$gw_median" 'BEGIN{print (b > a ? b : a)}')
    # shellcheck disable=SC2086
    tables+=("Medians, $w in flight: Mosquitto $(fmt "$(median ${mq_rates[$w]})") msg/s, gateway $(fmt "$gw_median") msg/s, gateway / Mosquitto $(awk -v r="$(median ${ratios[$w]})" 'BEGIN{printf "%.0f %%", 100*r}') (target ≥ 60 %; goal ≥ 50 000 msg/s).")
  done
fi

# --- rate: PUBACK latency at half the gateway's maximum -----------------------------------
if wants rate; then
  half=$(awk -v r="$best_gw" 'BEGIN{printf "%d", r/2}')
  paced_w=${inflights%% *}
  paced_preseal=$(preseal_for "$half")
  tables+=("" "PUBACK latency paced at $(fmt "$half") msg/s in total (half the gateway's best median maximum above), $paced_w in flight at most per connection, latency from each message's due time:" ""
    "| run | server | msg/s acknowledged | p50 ms | p99 ms | p99.9 ms | max ms |" "| ---: | --- | ---: | ---: | ---: | ---: | ---: |")
  for ((r = 1; r <= 2; r++)); do
    # shellcheck disable=SC2046
    g=$(mqtt_run "paced $r gateway" $(gw_args "$paced_preseal") --rate "$half" --inflight "$paced_w")
    # shellcheck disable=SC2046
    m=$(mqtt_run "paced $r mosquitto" $(mosq_args) --rate "$half" --inflight "$paced_w")
    for pair in "gateway:$g" "Mosquitto:$m"; do
      line=${pair#*:}
      tables+=("| $r | ${pair%%:*} | $(fmt "$(field rate "$line")") | $(ms "$(field p50_us "$line")") | $(ms "$(field p99_us "$line")") | $(ms "$(field p999_us "$line")") | $(ms "$(field max_us "$line")") |")
    done
  done
  tables+=("" "Target: gateway p99 ≤ 5 ms at half rate.")
fi

# --- sweep: PUBACK latency against the paced rate ------------------------------------------
# Where the p99 stays low: gateway then Mosquitto at each of GW_SWEEP_RATES.
if wants sweep; then
  sweep_rates="${GW_SWEEP_RATES:-5000 10000 20000 30000}"
  paced_w=${inflights%% *}
  tables+=("" "PUBACK latency against the paced total rate ($paced_w in flight at most per connection, latency from each message's due time):" ""
    "| msg/s paced | gateway p50 / p99 / p99.9 ms | gateway CPU µs/msg | Mosquitto p50 / p99 / p99.9 ms | Mosquitto CPU µs/msg |"
    "| ---: | ---: | ---: | ---: | ---: |")
  for rate in $sweep_rates; do
    sweep_preseal=$(preseal_for "$rate")
    # shellcheck disable=SC2046
    g=$(mqtt_run "sweep $rate gateway" $(gw_args "$sweep_preseal") --rate "$rate" --inflight "$paced_w")
    # shellcheck disable=SC2046
    m=$(mqtt_run "sweep $rate mosquitto" $(mosq_args) --rate "$rate" --inflight "$paced_w")
    tables+=("| $(fmt "$rate") | $(ms "$(field p50_us "$g")") / $(ms "$(field p99_us "$g")") / $(ms "$(field p999_us "$g")") | $(field server_us_per_msg "$g") | $(ms "$(field p50_us "$m")") / $(ms "$(field p99_us "$m")") / $(ms "$(field p999_us "$m")") | $(field server_us_per_msg "$m") |")
  done
fi

# --- cose: Sign1 verification vs openssl speed --------------------------------------------
if wants cose; then
  tables+=("" "COSE verification (one core) vs \`openssl speed -seconds 5 ecdsap256\` ($(openssl version | cut -d' ' -f1-2)), interleaved:" ""
    "| round | openssl verify/s | Sign1 parse+verify µs | Sign1 verify/s | Sign1 / openssl | Mac0 parse+verify µs | bare ES256 verify µs |"
    "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
  cose_ratios=()
  for ((r = 1; r <= rounds; r++)); do
    ossl=$(openssl speed -seconds 5 ecdsap256 2>/dev/null | tee -a "$out/raw.txt" | awk '/256 bits ecdsa \(nistp256\)/ {print $NF}')
    bench=$("$cose_bench" --bench --warm-up-time 1 --measurement-time 5 --output-format bencher 2>/dev/null |
      tee -a "$out/raw.txt")
    ns() { awk -v n="$1" '$2 == n { gsub(",", "", $5); print $5 }' <<<"$bench"; }
    s1=$(ns cose_verify/sign1_es256) m0=$(ns cose_verify/mac0_hmac256) bare=$(ns cose_verify/es256_verify_only)
    [[ -n $ossl && -n $s1 ]] || die "cose round $r: could not read openssl ($ossl) or criterion ($s1)"
    s1_rate=$(awk -v ns="$s1" 'BEGIN{printf "%.0f", 1e9/ns}')
    cose_ratios+=("$(awk -v a="$s1_rate" -v b="$ossl" 'BEGIN{print a/b}')")
    log "cose round $r: openssl verify/s $ossl, sign1 $s1 ns, mac0 $m0 ns, bare $bare ns"
    tables+=("| $r | $(fmt "$ossl") | $(awk -v n="$s1" 'BEGIN{printf "%.1f", n/1000}') | $(fmt "$s1_rate") | $(pct "$s1_rate" "$ossl") | $(awk -v n="$m0" 'BEGIN{printf "%.2f", n/1000}') | $(awk -v n="$bare" 'BEGIN{printf "%.1f", n/1000}') |")
  done
  tables+=("" "Median Sign1 / openssl: $(awk -v r="$(median "${cose_ratios[@]}")" 'BEGIN{printf "%.0f %%", 100*r}') (target ≥ 70 %).")
fi

# --- http: application/cose vs /oauth2/token ----------------------------------------------
if wants http; then
  "$portcullis_bin" client create "${admin[@]}" --name "bench-$RANDOM" --json >"$work/client.json"
  auth=$(basic_auth "$(json_field "$work/client.json" client_id)" "$(json_field "$work/client.json" client_secret)")
  preflight "$server/oauth2/token" "$auth" "grant_type=client_credentials"
  tables+=("" "HTTP, wrk -t2 -c32 -d$http_duration --latency, interleaved:" ""
    "| round | application/cose msg/s | p50 / p99 ms | errors | /oauth2/token tokens/s | p50 / p99 ms | errors |"
    "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
  cose_rps=() token_rps=()
  for ((r = 1; r <= rounds; r++)); do
    # Fresh counters for this run: the file is made just before it is sent.
    "$load_bin" cose-file --secrets "$secrets" --devices "$devices" --messages "$http_messages" --threads 2 \
      --size "$size" --out "$work/cose" 2>>"$out/raw.txt"
    c=$(COSE_FILE="$work/cose" COSE_SIZE="$size" timeout 300 wrk -t2 -c32 "-d$http_duration" --latency \
      -s bench/gateway_http.lua "$server/gateway/v1/telemetry" | tee -a "$out/raw.txt" | grep -E '^(RESULT|WRAPPED)' | tr '\n' ' ')
    t=$(TOKEN_AUTH="$auth" TOKEN_BODY="grant_type=client_credentials" timeout 300 wrk -t2 -c32 "-d$http_duration" \
      --latency -s bench/token.lua "$server/oauth2/token" | tee -a "$out/raw.txt" | grep '^RESULT')
    log "http round $r cose: $c"
    log "http round $r token: $t"
    [[ $c != *WRAPPED* ]] || log "http round $r: the COSE file ran out and was reused (raise GW_HTTP_MESSAGES): replays refused"
    cose_rps+=("$(field rps " $c")")
    token_rps+=("$(field rps " $t")")
    tables+=("| $r | $(fmt "$(field rps " $c")") | $(ms "$(field p50_us " $c")") / $(ms "$(field p99_us " $c")") | $(field errors " $c") | $(fmt "$(field rps " $t")") | $(ms "$(field p50_us " $t")") / $(ms "$(field p99_us " $t")") | $(field errors " $t") |")
    rm -f "$work"/cose.*
  done
  tables+=("" "Medians: application/cose $(fmt "$(median "${cose_rps[@]}")") msg/s, /oauth2/token $(fmt "$(median "${token_rps[@]}")") tokens/s.")
fi

# --- perf: where the node's time goes under the MQTT load ----------------------------------
if wants perf && command -v perf >/dev/null; then
  perf_rate="${GW_PERF_RATE:-}"
  say "perf record (DWARF call graphs) of the node during one gateway run${perf_rate:+ paced at $perf_rate msg/s}"
  (sleep 5 && perf record -F 299 --call-graph dwarf,32768 -p "$node_pid" -o "$work/perf.data" -- sleep 5 \
    >/dev/null 2>&1) &
  perf_pid=$!
  # shellcheck disable=SC2046
  mqtt_run "perf gateway" $(gw_args) --inflight "${inflights%% *}" ${perf_rate:+--rate "$perf_rate"} >/dev/null
  wait "$perf_pid" || true
  report() { timeout 600 perf report -i "$work/perf.data" --stdio "$@" 2>/dev/null | grep -E '^ +[0-9]' | sed 's/   */  /g' | cut -c1-220; }
  report --no-children --sort comm,dso >"$out/perf-threads.txt" || true
  report --no-children --sort dso,symbol --percent-limit 0.7 >"$out/perf-self.txt" || true
  # Inclusive time of the node's own functions and of the libraries they hand work to.
  report --children --sort symbol --percent-limit 0.5 -g none |
    grep -E '\[\.\] <?(portcullis|sqlx_sqlite::connection::worker|sqlite3_step|tokio::runtime::time::Driver::park_internal|tokio::runtime::scheduler::multi_thread::worker::Context::park|moka::sync|coset|aws_lc)' \
    >"$out/perf-children.txt" || true
  log "perf threads: $(head -8 "$out/perf-threads.txt")"
  log "perf inclusive: $(head -40 "$out/perf-children.txt")"
fi

# --- idle: resident memory per connection -------------------------------------------------
if wants idle; then
  tables+=("" "Idle connections ($idle_n, sources 127.0.0.2-127.0.0.9, a PINGREQ every 30 s, held 15 s; the descriptor limit here is $fd_limit per process):" ""
    "| server | connected | RSS before | RSS with connections | per 1 000 connections | extrapolated to 100 000 |"
    "| --- | ---: | ---: | ---: | ---: | ---: |")
  # A fresh node: its RSS before is the idle process, not the caches of the load above.
  stop_node
  start_node
  sleep 2
  g=$(timeout 900 "$load_bin" mqtt --idle --gateway --secrets "$secrets" --audience "$issuer" \
    --target "127.0.0.1:$mqtt_port" --devices "$idle_n" --source-ips 127.0.0.2-127.0.0.9 --keep-alive 60 \
    --hold 15 --connect-concurrency 500 --server-pid "$node_pid" 2>>"$out/raw.txt" | grep '^RESULT') ||
    die "idle gateway run failed"
  log "idle gateway: $g"
  m=$(timeout 900 "$load_bin" mqtt --idle --plain --target "127.0.0.1:$mosq_port" --devices "$idle_n" \
    --source-ips 127.0.0.2-127.0.0.9 --keep-alive 60 --hold 15 --connect-concurrency 500 \
    --server-pid "$mosq_pid" 2>>"$out/raw.txt" | grep '^RESULT') || die "idle mosquitto run failed"
  log "idle mosquitto: $m"
  for pair in "Portcullis:$g" "Mosquitto:$m"; do
    line=${pair#*:}
    tables+=("| ${pair%%:*} | $(fmt "$(field held "$line")") | $(awk -v k="$(field rss_before_kib "$line")" 'BEGIN{printf "%.1f MiB", k/1024}') | $(awk -v k="$(field rss_kib "$line")" 'BEGIN{printf "%.1f MiB", k/1024}') | $(awk -v k="$(field kib_per_1000 "$line")" 'BEGIN{printf "%.2f MiB", k/1024}') | $(awk -v k="$(field kib_per_1000 "$line")" -v b="$(field rss_before_kib "$line")" 'BEGIN{printf "%.2f GiB", (b + 100*k)/1048576}') |")
  done
  tables+=("" "Target: 100 000 idle devices within 2 GiB (node RSS).")
fi

{
  echo
  echo "Gateway benchmarks, $(date -u +%Y-%m-%d), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), load average at the end $(cut -d' ' -f1-3 /proc/loadavg); generator, servers and wrk on the same machine."
  printf '%s\n' "${tables[@]}"
} | tee "$out/tables.md"
say "raw outputs in $out"
