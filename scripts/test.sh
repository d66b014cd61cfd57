#!/usr/bin/env bash
# THE one command that runs Portcullis's whole test suite on a fresh machine (CI runs it via
# .ci/run). It sets up what the tests need, then runs fmt, clippy and every test:
#   1. Debian packages the tests use (wrk, softhsm2, mosquitto, mosquitto-clients, nginx,
#      nats-server, rabbitmq-server, prometheus, rsyslog, rsyslog-gnutls), only if missing (pki_broker starts its own mosquitto broker
#      on a free port, gateway_rabbitmq its own RabbitMQ node);
#   2. PostgreSQL, started if it is down;
#   3. the interop clients in .interop/ (gitignored): Node openid-client + jose from
#      tests/interop/package-lock.json, Python PyJWT + cryptography from
#      tests/interop/requirements.txt; reinstalled only when those files change;
#   4. cargo fmt --check, cargo clippy -D warnings (the fuzz targets too), the nginx cluster
#      test (deploy/), the three example scenarios (examples/*/run.sh), the monitoring rules and
#      dashboard against a real Prometheus (deploy/monitoring/check.sh), schemathesis, doc
#      tests, then cargo nextest run --workspace (cargo test if nextest is missing).
# Idempotent; on a machine already set up, steps 1-3 take a second or two.
# usage: scripts/test.sh [--setup-only]   (--setup-only stops after step 3, for running
#        single tests by hand with PORTCULLIS_INTEROP_DIR=$PWD/.interop)
# env: SKIP_LINT=1 skips fmt and clippy (for a quick local run; CI never sets it).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
interop="$repo/.interop"

# Each step says when it started (seconds since the script began), so a CI log shows where
# the 30-minute budget goes.
step() { printf '\n==> [%4ds] %s\n' "$SECONDS" "$*"; }
die() { printf 'scripts/test.sh: %s\n' "$*" >&2; exit 1; }

# --- 1. Debian packages ----------------------------------------------------------------------
# package -> a file it installs, to tell whether it is there without asking apt.
declare -A apt_marker=(
  [wrk]=/usr/bin/wrk
  [softhsm2]=/usr/bin/softhsm2-util
  [mosquitto-clients]=/usr/bin/mosquitto_pub
  [mosquitto]=/usr/sbin/mosquitto
  [nginx]=/usr/sbin/nginx
  [nats-server]=/usr/sbin/nats-server
  [rabbitmq-server]=/usr/sbin/rabbitmq-server
  [prometheus]=/usr/bin/prometheus
  [rsyslog]=/usr/sbin/rsyslogd
  [rsyslog-gnutls]=/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so
  # The SAML 2.0 bearer grant (feature `saml`): libxmlsec1 and what samael's binding is built
  # with (bindgen needs libclang); xmlsec1 signs the tests' assertions.
  [pkg-config]=/usr/bin/pkg-config
  [libssl-dev]=/usr/include/openssl/ssl.h
  [libxml2-dev]=/usr/include/libxml2/libxml/parser.h
  [libxmlsec1-dev]=/usr/bin/xmlsec1-config
  [libclang-dev]='/usr/lib/llvm-*/lib/libclang.so'
  [xmlsec1]=/usr/bin/xmlsec1
  # A failing disk for the gateway's durability test (tests/fault/failing_fsync_fs.py).
  [libfuse3-3]='/usr/lib/*/libfuse3.so.3'
)
missing=()
for pkg in "${!apt_marker[@]}"; do
  compgen -G "${apt_marker[$pkg]}" >/dev/null || missing+=("$pkg")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  step "installing Debian packages: ${missing[*]}"
  [[ $(id -u) -eq 0 ]] || die "need root to apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  step "Debian packages present (${!apt_marker[*]})"
fi

# --- 2. PostgreSQL -----------------------------------------------------------------------------
if command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; then
  step "PostgreSQL is running"
elif [[ -d /etc/postgresql ]]; then
  step "starting PostgreSQL"
  for version in /etc/postgresql/*/; do
    version="$(basename "$version")"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>&1 || true
  done
  for _ in $(seq 1 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
  pg_isready -h 127.0.0.1 -p 5432 || die "PostgreSQL did not come up"
else
  step "PostgreSQL is not installed here; tests that need it must skip"
fi

# --- 3. interop clients --------------------------------------------------------------------
# stamp_ok DIR FILES...: true when DIR/.stamp matches the hash of FILES (already installed).
stamp_of() { cat "$@" | sha256sum | cut -d' ' -f1; }
stamp_ok() { local dir=$1; shift; [[ -f $dir/.stamp && $(cat "$dir/.stamp") == "$(stamp_of "$@")" ]]; }

node_inputs=(tests/interop/package.json tests/interop/package-lock.json)
if stamp_ok "$interop/node" "${node_inputs[@]}"; then
  step "Node interop clients up to date in .interop/node"
else
  step "installing Node interop clients into .interop/node (npm ci)"
  command -v npm >/dev/null || die "node and npm are required for the interop tests"
  rm -rf "$interop/node"
  mkdir -p "$interop/node"
  cp "${node_inputs[@]}" "$interop/node/"
  npm ci --prefix "$interop/node" --no-audit --no-fund --loglevel=error
  stamp_of "${node_inputs[@]}" >"$interop/node/.stamp"
fi

python_inputs=(tests/interop/requirements.txt)
if stamp_ok "$interop/python" "${python_inputs[@]}"; then
  step "Python interop clients up to date in .interop/python"
else
  step "installing Python interop clients into .interop/python (pip --target)"
  command -v python3 >/dev/null || die "python3 is required for the interop tests"
  rm -rf "$interop/python"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    --target "$interop/python" -r tests/interop/requirements.txt
  stamp_of "${python_inputs[@]}" >"$interop/python/.stamp"
fi
PYTHONPATH="$interop/python" python3 -c 'import jwt, cryptography, pycose, cbor2, paho.mqtt.client, signxml, mfusepy' ||
  die "PyJWT/cryptography/signxml/mfusepy in .interop/python do not import"
export PORTCULLIS_INTEROP_DIR="$interop"
if [[ ${1:-} == --setup-only ]]; then
  step "set up; for single tests: export PORTCULLIS_INTEROP_DIR=$interop"
  exit 0
fi

# --- 4. the suite ----------------------------------------------------------------------------
# Every optional feature is built and tested: today the SAML grant's (libxmlsec1). One feature
# set for every cargo command below, so the binary is built once.
features=(--features portcullis/saml)
if [[ -z ${SKIP_LINT:-} ]]; then
  step "cargo fmt --all -- --check"
  cargo fmt --all -- --check
  # The README's first command, `cargo run --release -- serve`, needs exactly one binary among
  # the default members (a new bench binary once made it fail: "could not determine which
  # binary to run").
  step "the README's cargo run picks the portcullis binary"
  cargo metadata --format-version 1 --no-deps | python3 -c '
import json, sys
m = json.load(sys.stdin)
bins = [t["name"] for p in m["packages"] if p["id"] in m["workspace_default_members"]
        for t in p["targets"] if "bin" in t["kind"]]
sys.exit(0 if bins == ["portcullis"] else f"cargo run would choose among {bins}")'
  step "cargo clippy --workspace --all-targets ${features[*]} -- -D warnings"
  cargo clippy --workspace --all-targets "${features[@]}" --quiet -- -D warnings
  step "cargo clippy --workspace --all-targets -- -D warnings (the default build, without SAML)"
  cargo clippy --workspace --all-targets --quiet -- -D warnings
  # The fuzz targets (their own workspace, fuzzed by scripts/fuzz.sh outside CI) follow the
  # crates' APIs; linting them here catches a target an API change broke (~2 min on 2 cores).
  step "cargo fmt and clippy of the fuzz targets (fuzz/)"
  cargo fmt --manifest-path fuzz/Cargo.toml -- --check
  cargo clippy --manifest-path fuzz/Cargo.toml --all-targets --quiet -- -D warnings
fi

# Integration tests start the debug binary that cargo builds for them (CARGO_BIN_EXE_portcullis):
# the test build comes first and the scripts below use the very binary it made — a separate
# `cargo build` resolves features without the dev-dependencies' (tokio's test-util, ...) and
# built a second portcullis binary and what differs beneath it (measured on clean clones:
# 1 176 s for the whole run before, 1 129 s after; the rest is compiling the workspace once
# for clippy and once for the tests). Doc tests next (nextest cannot run them), then every
# other test under nextest, whose closing "Summary ... N tests run: N passed" line is the
# suite's total. --no-fail-fast: CI shows every failing test, not only the first binary's.
# The cluster test runs before the test suite so that the suite's summary is the last line.
nextest=false
cargo nextest --version >/dev/null 2>&1 && nextest=true
step "building the tests and the binary they start (${features[*]})"
if $nextest; then
  cargo nextest run --workspace "${features[@]}" --no-run --cargo-quiet
else
  cargo test --workspace "${features[@]}" --no-run --quiet
fi
bin="$repo/target/debug/portcullis"
[[ -x $bin ]] || die "the test build made no $bin"

step "deploy/cluster_test.sh: 3 nodes behind nginx, one kill -9ed under load"
PORTCULLIS_BIN="$bin" deploy/cluster_test.sh

step "examples: the smart-energy, industrial and consumer-IoT scenarios, end to end"
for scenario in smart-energy industrial consumer-iot; do
  PORTCULLIS_BIN="$bin" "examples/$scenario/run.sh" >"$interop/example-$scenario.log" 2>&1 ||
    { cat "$interop/example-$scenario.log"; die "examples/$scenario/run.sh failed"; }
  tail -1 "$interop/example-$scenario.log"
done

step "deploy/monitoring/check.sh: rules pass promtool, every dashboard query returns data"
PORTCULLIS_BIN="$bin" deploy/monitoring/check.sh

step "scripts/schemathesis.sh: the admin API against its own OpenAPI document"
PORTCULLIS_BIN="$bin" scripts/schemathesis.sh 30

step "cargo test --workspace --doc"
cargo test --workspace --doc "${features[@]}" --quiet
if $nextest; then
  step "cargo nextest run --workspace ${features[*]} (PORTCULLIS_INTEROP_DIR=$PORTCULLIS_INTEROP_DIR)"
  cargo nextest run --workspace "${features[@]}" --no-fail-fast
else
  step "cargo test --workspace (cargo-nextest not installed; PORTCULLIS_INTEROP_DIR=$PORTCULLIS_INTEROP_DIR)"
  cargo test --workspace "${features[@]}" --no-fail-fast
fi
