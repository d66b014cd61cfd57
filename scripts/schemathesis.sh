#!/usr/bin/env bash
# Runs schemathesis (from PyPI, into .interop/schemathesis) against the admin API of a fresh
# node: every operation of /admin/v1/openapi.json, schema-driven, stateful phase included,
# with the bootstrap admin's token. Fails on any 5xx, schema violation or undocumented status.
#
# usage: scripts/schemathesis.sh [MAX_EXAMPLES]      (default 30 per operation; ~1 minute)
# env:   PORTCULLIS_BIN (default target/debug/portcullis, built if missing)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
max_examples="${1:-30}"
target="$repo/.interop/schemathesis"
if ! PYTHONPATH="$target" python3 -c 'import schemathesis' 2>/dev/null; then
  echo "==> installing schemathesis into $target"
  python3 -m pip install --quiet --disable-pip-version-check --target "$target" schemathesis
fi
bin="${PORTCULLIS_BIN:-target/debug/portcullis}"
[[ -x $bin ]] || cargo build -p portcullis
work="$(mktemp -d)"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$bin" serve --listen "127.0.0.1:$port" --listen-tls off --data-dir "$work/data" >"$work/out.log" 2>"$work/err.log" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do grep -q "listening on http" "$work/out.log" 2>/dev/null && break; sleep 0.1; done
base="http://127.0.0.1:$port"
read -r id secret < <(python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); print(c["client_id"], c["client_secret"])' "$work/data/admin.json")
# Both scopes of the bootstrap credential: the audit routes take audit:read.
token=$(curl -fsS -u "$id:$secret" -d grant_type=client_credentials --data-urlencode "scope=portcullis:admin audit:read" "$base/oauth2/token" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
PYTHONPATH="$target" python3 "$target/bin/schemathesis" --config-file "$repo/scripts/schemathesis.toml" \
  run "$base/admin/v1/openapi.json" \
  --url "$base/admin/v1" -H "Authorization: Bearer $token" \
  --exclude-path /audit/stream \
  --checks all --max-examples "$max_examples" --seed 1
