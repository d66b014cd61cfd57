#!/usr/bin/env bash
# Runs every cargo-fuzz target under fuzz/ for a fixed time each (not part of CI).
#
# usage: scripts/fuzz.sh [SECONDS] [TARGET...]      default: 60 s, every target in fuzz/Cargo.toml
# env:   FUZZ_SANITIZER (address | none; default address)
#
# cargo-fuzz passes -Z flags to rustc, which a stable toolchain accepts only with
# RUSTC_BOOTSTRAP=1; this machine has one stable toolchain and no nightly can be fetched.
# New corpus entries go to fuzz/corpus/TARGET (gitignored), seeded from fuzz/seeds/TARGET;
# a crash leaves its input in fuzz/artifacts/TARGET and makes this script exit non-zero.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

seconds="${1:-60}"
shift || true
[[ $seconds =~ ^[0-9]+$ ]] || { echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2; exit 2; }
export RUSTC_BOOTSTRAP=1
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-2}"
sanitizer="${FUZZ_SANITIZER:-address}"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz (cargo install cargo-fuzz --locked)"
  cargo install cargo-fuzz --locked
fi

targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  mapfile -t targets < <(cargo fuzz list)
fi

summary=()
status=0
for target in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$target" "fuzz/seeds/$target"
  log="$(mktemp -t "fuzz-$target.XXXXXX.log")"
  echo "==> fuzzing $target for ${seconds}s (sanitizer: $sanitizer, log: $log)"
  if cargo fuzz run --sanitizer "$sanitizer" "$target" "fuzz/corpus/$target" "fuzz/seeds/$target" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 2>&1 | tee "$log" | grep --line-buffered -E '^#[0-9]+[[:space:]]+(INITED|DONE)|ERROR|panicked|Done [0-9]+ runs' ; then
    :
  fi
  if grep -qE 'ERROR: libFuzzer|panicked at|deadly signal|SUMMARY: .*Sanitizer' "$log"; then
    status=1
    summary+=("$target: FAILED, crash input under fuzz/artifacts/$target (log $log)")
  elif runs=$(grep -oE 'Done [0-9]+ runs in [0-9]+ second' "$log" | tail -1) && [[ -n $runs ]]; then
    summary+=("$target: ${runs}s, no crash; corpus $(find "fuzz/corpus/$target" -type f | wc -l) inputs")
  else
    status=1
    summary+=("$target: did not run (see $log)")
  fi
done

echo
printf '%s\n' "${summary[@]}"
exit "$status"
