#!/usr/bin/env bash
# Update image download throughput (issue #13): the same UP_SIZE_MIB (32) MiB image served by
# a Portcullis node (`GET /gateway/v1/updates/images/{sha256}`, uploaded through
# `POST /gateway/v1/updates/releases`) and by a private nginx (sendfile on, its own
# configuration on a free port, never the system one), interleaved Portcullis, nginx, ... for
# BENCH_RUNS (3) rounds of wrk -t2 -cUP_CONNECTIONS (8) -dUP_DURATION (10s); then the same
# with `Range: bytes=0-1048575` (1 MiB ranges, what a resuming device asks). Prints MiB/s,
# requests/s and p99 per run and the medians with the ratio Portcullis / nginx (target
# >= 80 %). Stops what it started by PID.
#
# usage: bench/updates.sh            (builds target/release/portcullis first)
# env:   UP_SIZE_MIB UP_CONNECTIONS UP_DURATION BENCH_RUNS BENCH_NO_BUILD PORTCULLIS_BIN
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source bench/lib.sh

size_mib="${UP_SIZE_MIB:-32}"
conns="${UP_CONNECTIONS:-8}"
up_duration="${UP_DURATION:-10s}"
require_tools
command -v nginx >/dev/null || command -v /usr/sbin/nginx >/dev/null ||
  { say "installing nginx (apt)"; apt-get update -qq && apt-get install -y -qq nginx >/dev/null; }
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
build_release portcullis

addr="127.0.0.1:$(free_port)"
data="$work/data"
start_portcullis "$addr" "$data"

say "an updates:write client and a ${size_mib} MiB image"
"$portcullis_bin" client create --server "http://$addr" --admin-credential "$data/admin.json" \
  --name publisher --scope updates:write --json >"$work/publisher.json"
token=$(curl -s -u "$(json_field "$work/publisher.json" client_id):$(json_field "$work/publisher.json" client_secret)" \
  -d grant_type=client_credentials -d scope=updates:write "http://$addr/oauth2/token" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
"$portcullis_bin" trust key create --server "http://$addr" --admin-credential "$data/admin.json" \
  --role updates --json >/dev/null
head -c "$((size_mib * 1048576))" /dev/urandom >"$work/image.bin"
curl -sf -H "Authorization: Bearer $token" -H 'Content-Type: application/octet-stream' \
  --data-binary "@$work/image.bin" \
  "http://$addr/gateway/v1/updates/releases?model=bench-cam&version=1.0" >"$work/release.json" ||
  die "the upload was refused: $(cat "$work/release.json")"
sha=$(json_field "$work/release.json" sha256)
portcullis_url="http://$addr/gateway/v1/updates/images/$sha"

nginx_port=$(free_port)
mkdir -p "$work/nginx/root" "$work/nginx/tmp"
cp "$work/image.bin" "$work/nginx/root/$sha"
# As root, nginx's workers would run as nobody, who cannot enter the private work directory.
nginx_user=$([[ $EUID -eq 0 ]] && echo "user root;" || true)
cat >"$work/nginx/nginx.conf" <<CONF
$nginx_user
worker_processes auto;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
daemon off;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  client_body_temp_path $work/nginx/tmp;
  proxy_temp_path $work/nginx/tmp;
  fastcgi_temp_path $work/nginx/tmp;
  uwsgi_temp_path $work/nginx/tmp;
  scgi_temp_path $work/nginx/tmp;
  server {
    listen 127.0.0.1:$nginx_port;
    root $work/nginx/root;
    location / { default_type application/octet-stream; }
  }
}
CONF
say "starting nginx on 127.0.0.1:$nginx_port"
"$nginx_bin" -c "$work/nginx/nginx.conf" -p "$work/nginx" &
pids+=($!)
nginx_url="http://127.0.0.1:$nginx_port/$sha"
for ((i = 0; i < 50; i++)); do curl -sf -o /dev/null -r 0-0 "$nginx_url" && break; sleep 0.1; done
for url in "$portcullis_url" "$nginx_url"; do
  got=$(curl -sf "$url" | sha256sum | cut -d' ' -f1) || die "$url: no image"
  [[ $got == "$sha" ]] || die "$url does not serve the image ($got)"
done

run() { # NAME URL [RANGE]
  local header=()
  [[ -n ${3:-} ]] && header=(-H "Range: $3")
  timeout 300 wrk -t2 "-c$conns" "-d$up_duration" --latency "${header[@]}" -s bench/bytes.lua "$2" |
    grep '^RESULT' | sed "s/^RESULT/RESULT $1/" | tee -a "$work/results.txt" >&2
}
for range in "" "bytes=0-1048575"; do
  for ((r = 1; r <= runs; r++)); do
    say "round $r/$runs${range:+ (Range: $range)}"
    run "portcullis${range:+-range}" "$portcullis_url" "$range"
    run "nginx${range:+-range}" "$nginx_url" "$range"
  done
done

summary() { # NAME
  local lines mib rps
  lines=$(grep "RESULT $1 " "$work/results.txt")
  mib=$(median $(sed -n 's/.*mib_s=\([0-9.]*\).*/\1/p' <<<"$lines"))
  rps=$(median $(sed -n 's/.*rps=\([0-9.]*\).*/\1/p' <<<"$lines"))
  echo "$mib $rps"
}
echo
echo "Image download, ${size_mib} MiB, $(date -u +%Y-%m-%d), $(nproc) cores, wrk -t2 -c$conns -d$up_duration on the same machine, median of $runs interleaved runs."
echo
echo "| request | Portcullis MiB/s | nginx MiB/s | Portcullis req/s | nginx req/s | ratio |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
for kind in "" "-range"; do
  read -r pm pr < <(summary "portcullis$kind")
  read -r nm nr < <(summary "nginx$kind")
  label=$([[ -z $kind ]] && echo "whole image" || echo "1 MiB range")
  echo "| $label | $pm | $nm | $pr | $nr | $(awk -v a="$pm" -v b="$nm" 'BEGIN {printf "%.0f %%", 100*a/b}') |"
done
