#!/usr/bin/env bash
# Builds the two wheels into target/wheels/ (`pip install` of a wheel file gives the binaries,
# the way ruff and uv ship; no Python code inside, no Rust toolchain needed where installed):
#   - runicorn_agent-...-manylinux2014_x86_64.whl, for servers: `runicorn-agent` (the portable
#     agent, glibc 2.17 and newer), built by scripts/build-agent.sh;
#   - runicorn_hub-...-manylinux2014_x86_64.whl, for the laptop: `runicorn-hub` with the
#     dashboard compiled in, and beside it `runicorn-agent-x86_64-linux` (the same portable
#     agent), which `runicorn-hub connect --install-agent` uploads to servers.
# Both are linked with zig for manylinux2014 (glibc 2.17). Prints each wheel's path and size.
# Tools (maturin, zig) are installed once into .ci-cache/zig-venv by scripts/build-agent.sh.
#
#   scripts/build-wheels.sh
#   pip install target/wheels/runicorn_hub-*.whl      # on the laptop
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
wheels="$repo/target/wheels"

agent=$(scripts/build-agent.sh)

# The hub wheel's data folder (packaging/hub/pyproject.toml, `data`): its scripts/ are installed
# into the environment's bin/, beside runicorn-hub.
data="$repo/target/wheel-data/hub"
rm -rf "$data"
mkdir -p "$data/scripts"
cp "$agent" "$data/scripts/runicorn-agent-x86_64-linux"
chmod 755 "$data/scripts/runicorn-agent-x86_64-linux"

export PATH="$repo/.ci-cache/zig-venv/bin:$PATH"
rm -f "$wheels"/runicorn_hub-*.whl
(cd packaging/hub && maturin build --quiet --locked --zig --target x86_64-unknown-linux-gnu \
  --out "$wheels") >&2
scripts/check-glibc.sh "$repo/target/x86_64-unknown-linux-gnu/release/runicorn-hub" 2.17 >&2

for wheel in "$wheels"/runicorn_agent-*x86_64*.whl "$wheels"/runicorn_hub-*.whl; do
  size=$(stat -c %s "$wheel")
  echo "$wheel ($size bytes, $(awk -v b="$size" 'BEGIN { printf "%.1f", b / 1048576 }') MiB)"
done
