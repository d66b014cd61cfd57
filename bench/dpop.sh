#!/usr/bin/env bash
# /oauth2/token with client_secret_basic as a bearer token, the same with a DPoP proof (RFC
# 9449: one more signature to verify, the jti spent in the store, a bound token), the JWT
# bearer grant (RFC 7523: an outside ES256 token verified with its issuer's cached keys and
# mapped by a policy), and the ceiling server (parse + ES256 sign, nothing else), in one
# interleaved run (basic, dpop, jwt-bearer, ceiling, basic, ...) so the machine's drift falls
# on all alike. Issue #15 expects DPoP at >= 60 % of client_secret_basic. All three token
# variants go to one release node on SQLite.
#
# The outside token has no jti (as Kubernetes service-account tokens), so the same one is sent
# again and again; its issuer's JWKS is served by `python3 -m http.server`, fetched once.
#
# The proofs are signed beforehand (`portcullis bench dpop-proofs`, one file per run and
# algorithm, every request its own jti): ES256 (`dpop`, what most clients use) and EdDSA
# (`dpop-eddsa`, Ed25519), so the load generator signs nothing; the node accepts proofs up
# to an hour old for that (`[dpop] max_age_secs = 3600`), which changes no per-request work.
#
# usage: bench/dpop.sh
# env: bench/lib.sh's knobs (BENCH_RUNS, BENCH_DURATION, BENCH_CONNECTIONS, ...);
#      BENCH_DPOP_PROOFS proofs per run (default 30 000 per second of BENCH_DURATION).
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source bench/lib.sh

port="${BENCH_PORT_BASE:-18490}"
require_tools
build_release portcullis portcullis-bench-ceiling
trap cleanup EXIT

seconds=${duration%s}
proofs_per_run="${BENCH_DPOP_PROOFS:-$((seconds * 30000))}"
issuer="http://127.0.0.1:$((port + 2))"
mkdir -p "$work/issuer"
"$portcullis_bin" bench external-token --issuer "$issuer" --audience portcullis-bench \
  --sub system:serviceaccount:bench:load >"$work/external.json"
python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["jwks"]))' \
  "$work/external.json" >"$work/issuer/jwks.json"
assertion=$(json_field "$work/external.json" assertion)
python3 -m http.server --bind 127.0.0.1 --directory "$work/issuer" "$((port + 2))" >"$work/issuer.log" 2>&1 &
pids+=($!)
export PORTCULLIS_DPOP__MAX_AGE_SECS=3600 PORTCULLIS_OAUTH__JWKS_URI_ALLOW_PRIVATE=true
export PORTCULLIS_FEDERATION__ISSUERS="[{ name = \"bench\", issuer = \"$issuer\", audience = \"portcullis-bench\", jwks_uri = \"$issuer/jwks.json\" }]"
export PORTCULLIS_FEDERATION__POLICIES="[{ name = \"bench\", issuer = \"bench\", claims = { sub = \"system:serviceaccount:bench:*\" }, client_id = \"bench-federated\" }]"
start_portcullis "127.0.0.1:$port" "$work/node"
token_url="http://127.0.0.1:$port/oauth2/token"
"$portcullis_bin" client create --server "http://127.0.0.1:$port" --admin-credential "$work/node/admin.json" \
  --name bench-federated --id bench-federated --json >/dev/null || die "creating the federated client failed"
say "starting the ceiling server"
target/release/portcullis-bench-ceiling "127.0.0.1:$((port + 1))" >"$work/ceiling.log" 2>&1 &
pids+=($!)
wait_for_line "$work/ceiling.log" "ceiling listening on" "${pids[-1]}"
ceiling_url="http://127.0.0.1:$((port + 1))/token"
ceiling_auth=$(basic_auth bench unchecked)

# The DPoP variants and their proofs' algorithm; proofs for variant V, run i: $work/proofs-V.i.
declare -A proof_alg=([dpop]=ES256 [dpop-eddsa]=EdDSA)
for ((i = 1; i <= runs; i++)); do
  say "signing $proofs_per_run DPoP proofs per algorithm for run $i"
  for v in "${!proof_alg[@]}"; do
    "$portcullis_bin" bench dpop-proofs --htu "$token_url" --count "$proofs_per_run" \
      --alg "${proof_alg[$v]}" --out "$work/proofs-$v.$i" >/dev/null
  done
done
preflight "$token_url" "$portcullis_auth" "grant_type=client_credentials"
jwt_bearer_body="grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=$assertion"
curl -s -d "$jwt_bearer_body" "$token_url" | grep -q '"access_token":"ey' ||
  die "preflight: the outside token did not give a token"
preflight "$ceiling_url" "$ceiling_auth" "grant_type=client_credentials"
for alg in "${proof_alg[@]}"; do
  one_proof=$("$portcullis_bin" bench dpop-proofs --htu "$token_url" --count 1 --alg "$alg" --out "$work/one" >/dev/null && cat "$work/one")
  curl -s -H "Authorization: $portcullis_auth" -H "DPoP: $one_proof" -d grant_type=client_credentials "$token_url" |
    grep -q '"token_type":"DPoP"' || die "preflight: an $alg DPoP proof did not give a DPoP token"
done

variants=(basic dpop dpop-eddsa jwt-bearer ceiling)
declare -A rps p99
errors=0
for ((i = 1; i <= runs; i++)); do
  for v in "${variants[@]}"; do
    say "run $i/$runs: $v"
    case $v in
      # basic: the same Lua request path as dpop, without a proof: equal load-generator cost.
      basic | dpop | dpop-eddsa)
        proofs=""
        [[ $v == basic ]] || proofs="$work/proofs-$v.$i"
        line=$(TOKEN_AUTH="$portcullis_auth" DPOP_PROOFS="$proofs" THREADS="$threads" timeout 300 \
          wrk "-t$threads" "-c$connections" "-d$duration" --latency -s bench/token_dpop.lua "$token_url" | grep '^RESULT') ;;
      jwt-bearer) line=$(TOKEN_BODY="$jwt_bearer_body" timeout 300 \
        wrk "-t$threads" "-c$connections" "-d$duration" --latency -s bench/token.lua "$token_url" | grep '^RESULT') ;;
      ceiling) line=$(TOKEN_AUTH="$ceiling_auth" timeout 300 \
        wrk "-t$threads" "-c$connections" "-d$duration" --latency -s bench/token.lua "$ceiling_url" | grep '^RESULT') ;;
    esac
    [[ -n $line ]] || die "wrk failed against $v"
    rps[$v]+="$(field rps "$line") "
    p99[$v]+="$(field p99_us "$line") "
    errors=$((errors + $(field errors "$line")))
  done
done

cat <<TABLE

/oauth2/token, client_secret_basic as bearer vs with a DPoP proof (ES256, EdDSA) vs the JWT bearer grant (ES256 outside token), and the ceiling, $(date -u +%Y-%m-%d), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end;
wrk -t$threads -c$connections -d$duration, bench/token_dpop.lua (basic, dpop, dpop-eddsa) and bench/token.lua (jwt-bearer, ceiling), $runs interleaved runs (basic, dpop, dpop-eddsa, jwt-bearer, ceiling, ...).

TABLE
interleaved_rows "${variants[@]}"
# shellcheck disable=SC2086
awk -v b="$(median ${rps[basic]})" -v d="$(median ${rps[dpop]})" -v e="$(median ${rps[dpop-eddsa]})" -v j="$(median ${rps[jwt-bearer]})" -v k="$(median ${rps[ceiling]})" \
  'BEGIN { printf "\ndpop / basic: %.1f %%; dpop-eddsa / basic: %.1f %%; jwt-bearer / basic: %.1f %%; basic / ceiling: %.1f %%; dpop / ceiling: %.1f %%\n", 100 * d / b, 100 * e / b, 100 * j / b, 100 * b / k, 100 * d / k }'
echo "failed requests over all runs: $errors"
