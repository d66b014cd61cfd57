#!/usr/bin/env bash
# Side-by-side token endpoint load: Portcullis, panva's oidc-provider and the ceiling server
# (form parse + one ES256 signature, nothing else), each loaded with wrk on 127.0.0.1.
#
# For each server: BENCH_RUNS runs of `wrk -t2 -c32 -dBENCH_DURATION --latency` (median
# tokens/s and median p99), one `wrk -t1 -c1 -d5s` run (unloaded latency); plus the ceiling's
# bare `GET /`. Prints a markdown table for docs/benchmarks.md; writes nothing else outside a
# temporary folder. Knobs: see bench/lib.sh, and BENCH_PORT_BASE (18080).
#
# usage: bench/token_load.sh [portcullis] [oidc-provider] [ceiling]   (default: all three)
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source bench/lib.sh

targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(portcullis oidc-provider ceiling)
wants() { local t; for t in "${targets[@]}"; do [[ $t == "$1" ]] && return 0; done; return 1; }
port="${BENCH_PORT_BASE:-18080}"
next_addr() { addr="127.0.0.1:$port"; port=$((port + 1)); }

require_tools
bins=()
if wants portcullis && [[ -z ${PORTCULLIS_BIN:-} ]]; then bins+=(portcullis); fi
if wants ceiling; then bins+=(portcullis-bench-ceiling); fi
build_release "${bins[@]}"
if wants oidc-provider; then
  command -v node >/dev/null || die "node is required for oidc-provider"
  if [[ ! -d bench/oidc-provider/node_modules/oidc-provider ]]; then
    say "npm ci in bench/oidc-provider"
    npm ci --prefix bench/oidc-provider --no-audit --no-fund >&2
  fi
fi

if wants portcullis; then
  next_addr
  start_portcullis "$addr" "$work/portcullis-data"
  preflight "http://$addr/oauth2/token" "$portcullis_auth" "$portcullis_body"
  result=$(load portcullis "http://$addr/oauth2/token" "$portcullis_auth" "$portcullis_body")
  row "Portcullis" "$result"
  stop_last_server
fi

if wants oidc-provider; then
  next_addr
  secret="bench-$(head -c 24 /dev/urandom | base64 -w0 | tr '+/' '-_')"
  say "starting oidc-provider on $addr"
  NODE_ENV=production PORT="${addr##*:}" CLIENT_SECRET="$secret" node bench/oidc-provider/server.mjs \
    >"$work/oidc-provider.log" 2>&1 &
  pids+=($!)
  wait_for_line "$work/oidc-provider.log" "oidc-provider listening on" "${pids[-1]}"
  auth=$(basic_auth bench "$secret")
  # oidc-provider issues JWTs only for a resource server (RFC 8707); without one, opaque tokens.
  body="grant_type=client_credentials&resource=urn%3Abench"
  preflight "http://$addr/token" "$auth" "$body"
  result=$(load oidc-provider "http://$addr/token" "$auth" "$body")
  version=$(node -p 'require("./bench/oidc-provider/node_modules/oidc-provider/package.json").version')
  row "oidc-provider $version (Node $(node --version))" "$result"
  stop_last_server
fi

if wants ceiling; then
  next_addr
  say "starting the ceiling server on $addr"
  target/release/portcullis-bench-ceiling "$addr" >"$work/ceiling.log" 2>&1 &
  pids+=($!)
  wait_for_line "$work/ceiling.log" "ceiling listening on" "${pids[-1]}"
  auth=$(basic_auth bench unchecked)
  preflight "http://$addr/token" "$auth" "grant_type=client_credentials"
  result=$(load ceiling "http://$addr/token" "$auth" "grant_type=client_credentials")
  row "ceiling (parse + ES256 sign)" "$result"
  result=$(BENCH_BARE=1 load bare "http://$addr/" "" "")
  row "bare axum GET / (ceiling binary)" "$result"
  stop_last_server
fi

print_table "Token endpoint load"
