# shellcheck shell=bash disable=SC2034  # sourced by examples/*/run.sh, which read these
# What the three scenario runners share: a Portcullis node of their own (fresh data directory,
# free ports, stopped by its PID at exit), the CLI pointed at it, the Python device libraries,
# and `expect` lines whose failures make the runner exit 1 (the test suite runs all three).
#
# env: PORTCULLIS_BIN (default target/debug/portcullis, built if missing),
#      PORTCULLIS_INTEROP_DIR (pycose & co. in $PORTCULLIS_INTEROP_DIR/python; else installed
#      from examples/python_device/requirements.txt into the run's own directory)
set -euo pipefail
shopt -s inherit_errexit

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
examples="$repo/examples"
bin="${PORTCULLIS_BIN:-$repo/target/debug/portcullis}"
work=$(mktemp -d -t portcullis-example.XXXXXX)
node_pid=""
failures=0

cleanup() {
  if [[ -n $node_pid ]]; then
    kill "$node_pid" 2>/dev/null || true
    wait "$node_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\n== %s\n' "$*"; }
expect() { # LABEL COMMAND...: runs COMMAND; prints the outcome; counts a failure
  local label=$1
  shift
  if "$@"; then
    printf '   ok    %s\n' "$label"
  else
    printf '   FAIL  %s\n' "$label"
    failures=$((failures + 1))
  fi
}
finish() {
  echo
  if ((failures > 0)); then
    echo "$failures expectation(s) failed"
    exit 1
  fi
  echo "every expectation held"
}

if [[ ! -x $bin ]]; then
  say "building portcullis (cargo build -p portcullis)"
  (cd "$repo" && cargo build -q -p portcullis)
fi
if [[ -n ${PORTCULLIS_INTEROP_DIR:-} && -d $PORTCULLIS_INTEROP_DIR/python ]]; then
  export PYTHONPATH="$PORTCULLIS_INTEROP_DIR/python"
else
  say "installing the Python device libraries into $work/python"
  python3 -m pip install -q --target "$work/python" -r "$examples/python_device/requirements.txt"
  export PYTHONPATH="$work/python"
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_node [ENV=VALUE...]: a node on free ports (HTTP, HTTPS, plain MQTT on loopback).
start_node() {
  local http https mqtt i
  http=$(free_port)
  https=$(free_port)
  mqtt=$(free_port)
  base="http://127.0.0.1:$http"
  tls_base="https://127.0.0.1:$https"
  mqtt_addr="127.0.0.1:$mqtt"
  env "$@" RUST_LOG=warn "$bin" serve --data-dir "$work/data" --listen "127.0.0.1:$http" \
    --listen-tls "127.0.0.1:$https" --listen-mqtt "$mqtt_addr" >"$work/node.log" 2>&1 &
  node_pid=$!
  for ((i = 0; i < 300; i++)); do
    grep -q "portcullis listening on http://" "$work/node.log" && [[ -s $work/data/admin.json ]] && break
    kill -0 "$node_pid" 2>/dev/null || { cat "$work/node.log"; exit 1; }
    sleep 0.1
  done
  export PORTCULLIS_SERVER="$base" PORTCULLIS_ADMIN_CREDENTIAL="$work/data/admin.json"
  echo "   node on $base (MQTT $mqtt_addr), data in $work/data"
}

cli() { "$bin" "$@"; }
field() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(d[sys.argv[1]] if isinstance(d, dict) else d[0][sys.argv[1]])' "$1"; }

# client_token SCOPE...: a new client allowed those scopes, and an access token for them.
client_token() {
  local args=() scope created
  for scope in "$@"; do args+=(--scope "$scope"); done
  created=$(cli client create --name "example client" "${args[@]}" --json)
  curl -s -u "$(field client_id <<<"$created"):$(field client_secret <<<"$created")" \
    -d grant_type=client_credentials --data-urlencode "scope=$*" "$base/oauth2/token" | field access_token
}

# device_with_key ID MODEL: registers the device and prints `KEY_ID KEY`.
device_with_key() {
  cli device register --id "$1" --model "$2" --json >/dev/null
  local created
  created=$(cli device key create "$1" --json)
  echo "$(field key_id <<<"$created") $(field key <<<"$created")"
}

# publish_trust ROLE...: a root key, one key per role, a trust list; writes root.jwk.json.
publish_trust() {
  local role
  cli trust key create --role root --json >/dev/null
  for role in "$@"; do cli trust key create --role "$role" --json >/dev/null; done
  cli trust publish --json >/dev/null
  cli trust key list --json | python3 -c 'import json,sys
print(json.dumps(next(k["public_jwk"] for k in json.load(sys.stdin) if k["role"] == "root")))' \
    >"$work/root.jwk.json"
}
