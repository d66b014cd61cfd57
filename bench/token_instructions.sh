#!/usr/bin/env bash
# Instructions and allocations per token request, counted by valgrind's callgrind over the
# whole server process (every thread: handlers, audit writer, SQLite worker, detector), for a
# Portcullis binary and for the ceiling. Counts do not drift with the machine's speed, so a
# change to the token path can be judged by one run of each binary, not by interleaved
# throughput runs whose rounds differ by ±15 %. Caveat: under valgrind the CPU has no SHA
# extensions, so SHA-256 (HMAC of the secret, the audit chain hash) counts several times what
# it costs natively; the ES256 signature is the same code in both servers.
#
# With DPOP=1 a third row counts the same requests each carrying its own DPoP proof (RFC
# 9449, ES256, signed beforehand by `portcullis bench dpop-proofs`), so the proof's share of a
# request (issue #15: its verification and everything around it) is counted as well.
#
# usage: bench/token_instructions.sh [PORTCULLIS_BIN] [CEILING_BIN]
# env:   REQUESTS (5000, after 500 unmeasured), DPOP (unset: no DPoP row),
#        KEEP (a directory to copy callgrind's outputs into, for callgrind_annotate)
# Needs valgrind (installed from Debian if missing) and the release binaries
# (cargo build --release -p portcullis -p portcullis-bench-ceiling).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
portcullis_bin=${1:-target/release/portcullis}
ceiling_bin=${2:-target/release/portcullis-bench-ceiling}
requests=${REQUESTS:-5000}
if ! command -v valgrind >/dev/null || ! command -v callgrind_annotate >/dev/null; then
  apt-get update -qq && apt-get install -y -qq valgrind >/dev/null
fi
work=$(mktemp -d -t portcullis-callgrind.XXXXXX)
server=
cleanup() {
  [[ -n $server ]] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  if [[ -n ${KEEP:-} ]]; then mkdir -p "$KEEP" && cp "$work"/*.out.* "$KEEP"/ 2>/dev/null; fi
  rm -rf "$work"
}
trap cleanup EXIT
export PORTCULLIS_RATE_LIMIT__PER_CLIENT=0 PORTCULLIS_RATE_LIMIT__PER_ADDRESS=0 RUST_LOG=warn
# Proofs are signed before the server starts; valgrind is slow, so they may be old by then.
export PORTCULLIS_DPOP__MAX_AGE_SECS=3600

wait_for() { # LOG
  for _ in $(seq 600); do grep -q 'listening on http' "$1" && return 0; sleep 0.2; done
  cat "$1" >&2; echo "server not ready" >&2; exit 1
}

# load ADDR AUTH N PATH [PROOFS]: N sequential token requests on one keep-alive connection,
# each with the next line of PROOFS as its DPoP header when given.
load() {
  python3 - "$@" <<'PY'
import http.client, sys
addr, auth, n, path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
proofs = open(sys.argv[5]).read().split() if len(sys.argv) > 5 else None
host, port = addr.rsplit(':', 1)
c = http.client.HTTPConnection(host, int(port))
for i in range(n):
    headers = {'Authorization': auth, 'Content-Type': 'application/x-www-form-urlencoded'}
    if proofs is not None:
        headers['DPoP'] = proofs.pop()
    c.request('POST', path, body='grant_type=client_credentials', headers=headers)
    r = c.getresponse()
    body = r.read()
    if r.status != 200:
        sys.exit(f'{path} answered {r.status}: {body[:300]!r}')
PY
}

# measure NAME PATH AUTH ADDR PROOFS CMD...: starts CMD under callgrind, warms up, counts
# REQUESTS (PROOFS: a file of DPoP proofs, one per request, or empty for none).
measure() {
  local name=$1 path=$2 auth=$3 addr=$4 proofs=$5
  shift 5
  valgrind --tool=callgrind --callgrind-out-file="$work/$name.out" --dump-instr=no "$@" \
    >"$work/$name.log" 2>&1 &
  server=$!
  wait_for "$work/$name.log"
  load "$addr" "$auth" 500 "$path" ${proofs:+"$proofs.warm"}
  sleep 1
  callgrind_control -z "$server" >/dev/null 2>&1
  load "$addr" "$auth" "$requests" "$path" ${proofs:+"$proofs"}
  sleep 1.5
  callgrind_control -d "$server" >/dev/null 2>&1
  kill "$server"; wait "$server" 2>/dev/null || true
  server=
}

port() { echo $((20000 + RANDOM % 20000)); }

# Portcullis: a data directory with one client, made by a first (uncounted) start.
addr=127.0.0.1:$(port)
"$portcullis_bin" serve --data-dir "$work/data" --listen "$addr" --listen-tls 127.0.0.1:0 \
  >"$work/setup.log" 2>&1 &
server=$!
wait_for "$work/setup.log"
for _ in $(seq 100); do [[ -s $work/data/admin.json ]] && break; sleep 0.1; done
"$portcullis_bin" client create --server "http://$addr" --admin-credential "$work/data/admin.json" \
  --name callgrind --json >"$work/client.json"
kill "$server"; wait "$server" 2>/dev/null || true
server=
field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"; }
auth="Basic $(printf '%s:%s' "$(field "$work/client.json" client_id)" \
  "$(field "$work/client.json" client_secret)" | base64 -w0)"
measure portcullis /oauth2/token "$auth" "$addr" "" \
  "$portcullis_bin" serve --data-dir "$work/data" --listen "$addr" --listen-tls 127.0.0.1:0
rows=(portcullis)
if [[ -n ${DPOP:-} ]]; then
  "$portcullis_bin" bench dpop-proofs --htu "http://$addr/oauth2/token" --count 500 \
    --out "$work/proofs.warm" >/dev/null
  "$portcullis_bin" bench dpop-proofs --htu "http://$addr/oauth2/token" --count "$requests" \
    --out "$work/proofs" >/dev/null
  measure portcullis-dpop /oauth2/token "$auth" "$addr" "$work/proofs" \
    "$portcullis_bin" serve --data-dir "$work/data" --listen "$addr" --listen-tls 127.0.0.1:0
  rows+=(portcullis-dpop)
fi
rows+=(ceiling)
addr=127.0.0.1:$(port)
measure ceiling /token "Basic $(printf 'bench:x' | base64 -w0)" "$addr" "" "$ceiling_bin" "$addr"

# Per request: all instructions; the allocator's entry points (mimalloc in Portcullis, glibc
# malloc for aws-lc in both, glibc for everything in the ceiling), by their call counts.
python3 - "$work" "$requests" "${rows[@]}" <<'PY'
import re, subprocess, sys
work, n, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
entry = re.compile(r'(prim\.h:mi_malloc_aligned|alloc-aligned\.c:mi_(re|z)alloc_aligned|malloc\.c:(malloc|realloc|calloc)) \[')
for name in names:
    files = subprocess.run(['sh', '-c', f'ls {work}/{name}.out.*'], capture_output=True, text=True).stdout.split()
    out = subprocess.run(['callgrind_annotate', '--inclusive=yes', '--tree=caller', '--threshold=100',
                          '--auto=no', files[0]], capture_output=True, text=True).stdout
    total = int(re.search(r'([\d,]+) \(100\.0%\)\s+PROGRAM TOTALS', out).group(1).replace(',', ''))
    calls = 0
    for block in out.split('\n\n'):
        star = [l for l in block.splitlines() if re.match(r'\s*[\d,]+ \(.*\)\s+\*', l)]
        if star and entry.search(star[0]):
            calls += sum(int(m.group(1).replace(',', '')) for m in re.finditer(r'\(([\d,]+)x\)', block))
    print(f'| {name} | {total // n} | {calls / n:.0f} |')
PY
