#!/usr/bin/env bash
# The device PKI under load (issue #4's targets), against a release build on 127.0.0.1:
#   1. EST enrollment: BENCH_DEVICES devices imported with `portcullis device import`, one
#      P-256 CSR each (Python cryptography), then `wrk` POSTs simpleenroll over HTTPS, each
#      request a different device with its one-time secret (target ≥ 2 000 certificates/s).
#   2. OCSP: pre-signed answers (GET, and POST without a nonce) and freshly signed ones (POST
#      with a nonce) for an enrolled device (target ≥ 20 000 responses/s).
#   3. CRL: BENCH_CRL_ENTRIES revoked certificates written straight into the SQLite file with
#      the node stopped, then the time of the first `GET /pki/crl` (generation from the store,
#      signing and transfer; target < 1 s for 100 000 entries).
# Prints markdown rows for docs/benchmarks.md. Knobs: BENCH_DEVICES (40000), BENCH_DURATION
# (10s), BENCH_CONNECTIONS (32), BENCH_THREADS (2), BENCH_CRL_ENTRIES (100000), and bench/lib.sh's.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source bench/lib.sh

devices="${BENCH_DEVICES:-40000}"
crl_entries="${BENCH_CRL_ENTRIES:-100000}"
port="${BENCH_PORT_BASE:-18180}"
addr="127.0.0.1:$port"
export PORTCULLIS_LISTEN_TLS="127.0.0.1:$((port + 1))"
tls="https://$PORTCULLIS_LISTEN_TLS"
# The OCSP budget for uncacheable answers (5 000/s by default) would cap the nonce run at the
# budget, with tryLater answers beyond; the bench measures signing, so it is off unless set.
export PORTCULLIS_PKI__OCSP_FRESH_SIGNATURES_PER_SEC="${PORTCULLIS_PKI__OCSP_FRESH_SIGNATURES_PER_SEC:-0}"
data="$work/data"

require_tools
command -v openssl >/dev/null || die "openssl is required"
python3 -c 'import cryptography' 2>/dev/null ||
  export PYTHONPATH="$PWD/.interop/python${PYTHONPATH:+:$PYTHONPATH}"
python3 -c 'import cryptography' || die "Python cryptography is required (scripts/test.sh --setup-only)"
build_release portcullis

start_portcullis "$addr" "$data"
cli() { "$portcullis_bin" "$@" --server "http://$addr" --admin-credential "$data/admin.json"; }
result_field() { sed -n "s/.*[[:space:]]$1=\([0-9.]*\).*/\1/p" <<<"$2"; }
wrk_row() { # NAME RESULT-LINE
  printf '| %s | %s | %s | %s | %s |\n' "$1" "$(result_field rps "$2")" \
    "$(ms "$(result_field p50_us "$2")")" "$(ms "$(result_field p99_us "$2")")" "$(result_field errors "$2")"
}

# --- 1. enrollment -------------------------------------------------------------------------
say "registering $devices devices (portcullis device import)"
{ echo "device_id,model"; for ((i = 0; i < devices; i++)); do printf 'bench-%07d,TH-20\n' "$i"; done; } >"$work/devices.csv"
start=$(date +%s.%N)
cli device import "$work/devices.csv" --secrets-out "$work/secrets.csv" >/dev/null
import_secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN {printf "%.1f", e - s}')
say "making $devices CSRs (Python cryptography)"
python3 bench/make_csrs.py "$work/secrets.csv" "$work/est.txt"
cli ca export >"$work/root.pem"
say "EST load: wrk -t$threads -c$connections -d$duration $tls/.well-known/est/simpleenroll"
est=$(EST_REQUESTS="$work/est.txt" WRK_THREADS="$threads" timeout 300 \
  wrk "-t$threads" "-c$connections" "-d$duration" --latency -s bench/est.lua "$tls" | tee "$work/est.wrk" | grep '^RESULT')
issued=$(cli cert list --limit 1000 --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["certificates"]))')
[[ $issued -gt 0 ]] || die "no certificate was issued: $(cat "$work/est.wrk")"
# Each device enrolls once; past the end of the list wrk starts again and every request is a
# spent secret (401), which would make the rate meaningless.
[[ $(result_field requests "$est") -le $devices ]] ||
  die "the run used up all $devices devices (errors are spent secrets); raise BENCH_DEVICES"

# --- 2. OCSP -------------------------------------------------------------------------------
say "enrolling one device for OCSP"
secret=$(cli device register --id ocsp-dev --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["enrollment_secret"])')
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$work/dev.key" \
  -subj /CN=ocsp-dev -outform DER 2>/dev/null | openssl base64 >"$work/dev.csr"
curl -sSf --cacert "$work/root.pem" -u "ocsp-dev:$secret" -H 'Content-Type: application/pkcs10' \
  --data-binary @"$work/dev.csr" "$tls/.well-known/est/simpleenroll" |
  openssl base64 -d | openssl pkcs7 -inform DER -print_certs -out "$work/dev.pem"
curl -sSf "http://$addr/pki/ca.der" | openssl x509 -inform DER -out "$work/issuing.pem"
openssl ocsp -issuer "$work/issuing.pem" -cert "$work/dev.pem" -no_nonce -reqout "$work/plain.der" >/dev/null
openssl ocsp -issuer "$work/issuing.pem" -cert "$work/dev.pem" -reqout "$work/nonce.der" >/dev/null
get_path="/ocsp/$(base64 -w0 "$work/plain.der" | sed 's/+/%2B/g; s/\//%2F/g; s/=/%3D/g')"
curl -sSf -o /dev/null "http://$addr$get_path" || die "OCSP GET preflight failed"
ocsp_run() { # NAME ARGS...
  say "OCSP load ($1)"; shift
  timeout 300 wrk "-t$threads" "-c$connections" "-d$duration" --latency "$@" | grep '^RESULT'
}
ocsp_get=$(BENCH_BARE=1 ocsp_run "GET, pre-signed" -s bench/token.lua "http://$addr$get_path")
ocsp_post=$(OCSP_REQUEST="$work/plain.der" ocsp_run "POST, pre-signed" -s bench/ocsp.lua "http://$addr/ocsp")
ocsp_nonce=$(OCSP_REQUEST="$work/nonce.der" ocsp_run "POST with nonce, signed per request" -s bench/ocsp.lua "http://$addr/ocsp")

# --- 3. CRL of many entries ----------------------------------------------------------------
say "writing $crl_entries revoked certificates into the stopped node's store"
stop_last_server
python3 - "$data/portcullis.db" "$crl_entries" <<'PY'
import os, sqlite3, sys, time
db, n = sys.argv[1], int(sys.argv[2])
now = int(time.time())
con = sqlite3.connect(db)
rows = []
for i in range(n):
    serial = "40" + os.urandom(15).hex()
    rows.append((serial, None, "CN=crl-bench", now - 60, now + 86400, os.urandom(32).hex(), b"\x30\x00", now - 30, 1))
con.executemany("INSERT INTO certificates (serial, device_id, subject, not_before, not_after, sha256, der, revoked_at, revocation_reason) VALUES (?,?,?,?,?,?,?,?,?)", rows)
con.commit()
PY
start_portcullis "$addr" "$data"
start=$(date +%s.%N)
curl -sSf -o "$work/crl.der" "http://$addr/pki/crl"
crl_secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN {printf "%.3f", e - s}')
crl_count=$(openssl crl -inform DER -in "$work/crl.der" -noout -text | grep -c 'Serial Number:')

echo
echo "| Load (wrk -t$threads -c$connections -d$duration) | requests/s | p50 ms | p99 ms | errors |"
echo "|---|---|---|---|---|"
wrk_row "EST simpleenroll over HTTPS (P-256, one new device per request)" "$est"
wrk_row "OCSP GET, pre-signed" "$ocsp_get"
wrk_row "OCSP POST, pre-signed" "$ocsp_post"
wrk_row "OCSP POST with nonce, signed per request" "$ocsp_nonce"
echo
echo "- import of $devices devices (\`portcullis device import\`): ${import_secs} s"
echo "- first \`GET /pki/crl\` after start with $crl_count revoked entries: ${crl_secs} s"
