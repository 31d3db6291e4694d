#!/usr/bin/env bash
# Runs every test of the project: formatting, clippy, the Rust unit and end-to-end tests (the
# sync tests start their own OpenSSH servers on 127.0.0.1), the dashboard's unit tests and its
# browser tests in headless Chromium (screenshots in web/ui/test-results/screenshots), the
# Python SDK's pytest suite (including the upstream-compatibility tests against the PyPI
# `runicorn` 0.7.2 package), a short pass of every fuzz target (cargo-fuzz on nightly) and a
# smoke run of each benchmark.
#
# On a fresh Debian machine (as root) it first installs what the tests need. Everything it
# creates lives in .ci-cache/ (ignored by git), so a second run starts faster.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
cache="$repo/.ci-cache"
mkdir -p "$cache"

step() { printf '\n==> %s\n' "$*"; }

# --- system packages ---------------------------------------------------------------------------
need=()
command -v python3 >/dev/null 2>&1 || need+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
command -v git >/dev/null 2>&1 || need+=(git)
command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
# The sync tests and benchmarks run a real OpenSSH server on loopback and compare with rsync.
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh-keygen >/dev/null 2>&1 || need+=(openssh-client)
command -v rsync >/dev/null 2>&1 || need+=(rsync)
# The portable agent's glibc check reads its symbol versions with readelf.
command -v readelf >/dev/null 2>&1 || need+=(binutils)
# The dashboard is TypeScript built by npm into the binary (Node.js is not needed to run it);
# the browser tests drive Debian's Chromium.
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
[ -x /usr/bin/chromium ] || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    step "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "missing: ${need[*]} (install them, or run as root on Debian)" >&2
    exit 1
  fi
fi

# --- Python environments -----------------------------------------------------------------------
venv="$cache/venv"
if [ ! -x "$venv/bin/pytest" ]; then
  step "creating the test venv"
  python3 -m venv "$venv"
  # Pillow and numpy let the tests cover log_image's image and array paths.
  "$venv/bin/pip" install -q --disable-pip-version-check pytest pillow numpy
fi
# pandas: tests/tests/e2e/data_out.rs reads the store's SQL views with pandas.read_sql.
if ! "$venv/bin/python" -c 'import pandas' >/dev/null 2>&1; then
  "$venv/bin/pip" install -q --disable-pip-version-check pandas
fi
export RUNICORN_TEST_PYTHON="$venv/bin/python"
"$venv/bin/pip" install -q --disable-pip-version-check -e "$repo/sdk/python"
upstream="$cache/upstream-venv"
if [ ! -x "$upstream/bin/python" ] || ! "$upstream/bin/python" -c 'import runicorn' >/dev/null 2>&1; then
  step "creating a venv with the upstream runicorn 0.7.2 package (PyPI)"
  python3 -m venv "$upstream"
  "$upstream/bin/pip" install -q --disable-pip-version-check 'runicorn==0.7.2'
fi
export RUNICORN_UPSTREAM_PYTHON="$upstream/bin/python"

# --- Rust --------------------------------------------------------------------------------------
step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
step "generated TypeScript (web/ui/src/generated/api.ts) is current"
fresh_ts=$(mktemp)
scripts/gen-ts.sh "$fresh_ts"
if ! cmp -s "$fresh_ts" web/ui/src/generated/api.ts; then
  diff -u web/ui/src/generated/api.ts "$fresh_ts" | head -40 >&2 || true
  echo "web/ui/src/generated/api.ts is stale: run scripts/gen-ts.sh and commit it" >&2
  exit 1
fi
rm -f "$fresh_ts"
step "cargo build"
cargo build --workspace --bins --quiet
export RUNICORN_AGENT_BIN="$repo/target/debug/runicorn-agent"
# The portable agent for servers (x86_64, glibc <= 2.17, via zig; tools cached in .ci-cache/):
# the script fails if the binary needs a newer glibc, and tests/tests/e2e/portable_agent.rs runs it.
step "portable agent (scripts/build-agent.sh)"
scripts/build-agent.sh
export RUNICORN_PORTABLE_AGENT="$repo/target/portable/runicorn-agent"
# The wheels (maturin, bindings = "bin"; manylinux2014 through zig): the agent's (the portable
# build above, packaged again) and the hub's (a release build of the hub with the dashboard, and
# the portable agent beside it). tests/tests/e2e/wheels.rs installs each into a fresh venv.
step "wheels (scripts/build-wheels.sh)"
scripts/build-wheels.sh
export RUNICORN_WHEELS_DIR="$repo/target/wheels"
step "cargo test"
cargo test --workspace --quiet 2>&1 | tee "$cache/cargo-test.log"

# --- fuzzing (docs/FUZZING.md): every cargo-fuzz target briefly, from the committed corpus -----
step "fuzzing (every target 20 s from fuzz/corpus)"
bash scripts/fuzz.sh 20

# --- dashboard (web/ui) -------------------------------------------------------------------------
# `cargo build` above already ran `npm ci` and the production build (web/build.rs).
step "dashboard unit tests (vitest)"
(cd "$repo/web/ui" && npm test --silent)
step "dashboard browser tests (headless Chromium)"
(cd "$repo/web/ui" && RUNICORN_HUB_BIN="$repo/target/debug/runicorn-hub" \
  RUNICORN_SCREENSHOTS="$repo/web/ui/test-results/screenshots" npm run --silent test:browser)

# --- Python SDK --------------------------------------------------------------------------------
step "pytest sdk/python/tests"
"$venv/bin/python" -m pytest -q "$repo/sdk/python/tests"

# --- benchmarks, smoke-sized (the real figures are in docs/PERFORMANCE.md) ----------------------
step "benchmark smoke runs"
cargo build --release --bins --quiet
"$repo/target/release/ls_many_runs" --runs 200 --repeats 1 >/dev/null
"$repo/target/release/writer_throughput" --steps 10000 --repeats 1 >/dev/null
"$venv/bin/python" "$repo/bench/sdk_log_bench.py" --steps 2000 >/dev/null
"$repo/target/release/wire_encoding" --runs 50 --steps 50 --repeats 1 >/dev/null
"$repo/target/release/hub_ingest" --quick >/dev/null
"$repo/target/release/sync_vs_rsync" --quick >/dev/null
"$repo/target/release/daemon_idle" --quick >/dev/null
"$repo/target/release/live_latency" --quick >/dev/null
"$repo/target/release/dashboard_queries" --quick >/dev/null
"$repo/target/release/many_keys" --quick >/dev/null
"$repo/target/release/long_log" --quick >/dev/null
"$repo/target/release/filter_runs" --quick >/dev/null
"$repo/target/release/transfer_vs_sftp" --quick >/dev/null
RUNICORN_TEST_PYTHON="$venv/bin/python" "$repo/target/release/artifact_dedup" --quick >/dev/null
"$repo/target/release/artifact_fetch" --quick >/dev/null
"$repo/target/release/bundle_roundtrip" --quick >/dev/null
RUNICORN_HUB_BIN="$repo/target/release/runicorn-hub" node "$repo/bench/browser/compare_pan.mjs" --quick >/dev/null
RUNICORN_HUB_BIN="$repo/target/release/runicorn-hub" node "$repo/bench/browser/compare_grouped.mjs" --quick >/dev/null
node "$repo/bench/browser/parcoords_brush.mjs" --quick >/dev/null

step "all tests passed"
