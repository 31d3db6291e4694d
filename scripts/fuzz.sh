#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ (docs/FUZZING.md) for SECONDS_PER_TARGET seconds each
# (default 20), starting from the committed corpus in fuzz/corpus/<target>/.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET]
#
# Needs the nightly toolchain (installed with rustup when missing). cargo-fuzz is installed into
# .ci-cache/cargo-fuzz the first time. New inputs the fuzzer finds go to a scratch folder, not
# into the committed corpus; a crashing input is saved under fuzz/artifacts/<target>/ (ignored by
# git) and its path printed. Exits non-zero when any target crashed, leaked, ran out of memory
# or hung.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
seconds=${1:-20}
case "$seconds" in
  '' | *[!0-9]*) echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET]" >&2; exit 2 ;;
esac

if ! cargo +nightly --version >/dev/null 2>&1; then
  if command -v rustup >/dev/null 2>&1; then
    echo "==> installing the nightly toolchain (cargo-fuzz needs it)"
    rustup toolchain install nightly --profile minimal
  else
    echo "the nightly toolchain is missing and rustup is not installed" >&2
    exit 1
  fi
fi

tools="$repo/.ci-cache/cargo-fuzz"
if [ ! -x "$tools/bin/cargo-fuzz" ]; then
  echo "==> installing cargo-fuzz into $tools"
  cargo install --locked --quiet --root "$tools" cargo-fuzz
fi
export PATH="$tools/bin:$PATH"

cd "$repo/fuzz"
echo "==> building the fuzz targets"
cargo +nightly fuzz build

# The targets that write files put them in a temp folder of their own; so do new corpus inputs.
# In memory when the machine has /dev/shm: the record target fsyncs what it writes back.
tmp_base=${TMPDIR:-/tmp}
if [ -d /dev/shm ] && [ -w /dev/shm ]; then tmp_base=/dev/shm; fi
scratch=$(mktemp -d "$tmp_base/runicorn-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
export TMPDIR="$scratch"

failed=()
for target in $(cargo +nightly fuzz list); do
  echo "==> fuzzing $target for ${seconds}s"
  mkdir -p "artifacts/$target" "$scratch/new/$target"
  log="$scratch/$target.log"
  started="$scratch/$target.started"
  touch "$started"
  # -timeout: one input taking longer is a hang; -rss_limit_mb: memory is bounded.
  if cargo +nightly fuzz run "$target" "$scratch/new/$target" "corpus/$target" -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      >"$log" 2>&1; then
    grep -E '^(stat::number_of_executed_units|Done)' "$log" | sed "s/^/    /" || true
  else
    failed+=("$target")
    tail -n 60 "$log"
    echo "!!! $target failed; crashing input(s):"
    find "artifacts/$target" -type f -newer "$started" | sed "s|^|    $repo/fuzz/|" || true
    echo "    reproduce: (cd fuzz && cargo +nightly fuzz run $target artifacts/$target/<file>)"
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzzing failed: ${failed[*]}" >&2
  exit 1
fi
echo "==> every fuzz target ran ${seconds}s without a failure"
