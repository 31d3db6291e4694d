#!/usr/bin/env bash
# Builds the portable runicorn-agent for servers: x86_64 Linux, needing at most glibc 2.17
# (CentOS 7 and everything newer), stripped, with LTO (the `agent-release` profile of the root
# Cargo.toml). One build makes both:
#   - the agent wheel, target/wheels/runicorn_agent-VERSION-py3-none-manylinux2014_x86_64...whl
#     (`pip install` it on a server: runicorn-agent lands on PATH; packaging/agent/pyproject.toml);
#   - the bare binary, target/portable/runicorn-agent (the same bytes as in the wheel), for
#     copying by hand and for the hub's wheel (scripts/build-wheels.sh).
# Prints the binary's path, its size and the highest GLIBC symbol version it needs, and fails if
# that is above 2.17.
#
# It builds with maturin and links with zig (`maturin build --zig`: both from PyPI, installed
# once into .ci-cache/zig-venv, ignored by git). Needs python3 with venv, cargo and readelf
# (Debian: binutils).
#
#   scripts/build-agent.sh            # -> target/portable/runicorn-agent (x86_64)
#   scripts/build-agent.sh aarch64    # -> target/portable/aarch64/runicorn-agent (ARM servers;
#                                     #    not built by CI, and not run here: no ARM machine)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
cache="$repo/.ci-cache"
max_glibc="2.17"
case "${1:-x86_64}" in
  x86_64) target="x86_64-unknown-linux-gnu"; out_dir="$repo/target/portable" ;;
  aarch64) target="aarch64-unknown-linux-gnu"; out_dir="$repo/target/portable/aarch64" ;;
  *) echo "usage: scripts/build-agent.sh [x86_64|aarch64] (got '$1')" >&2; exit 2 ;;
esac
wheels="$repo/target/wheels"
mkdir -p "$cache" "$out_dir" "$wheels"

# zig and maturin, from PyPI, in their own venv (pinned below 2: the pyproject's build backend).
tools="$cache/zig-venv"
if ! "$tools/bin/python-zig" version >/dev/null 2>&1 || ! "$tools/bin/maturin" --version >/dev/null 2>&1; then
  echo "installing zig (PyPI ziglang) and maturin into $tools" >&2
  [ -x "$tools/bin/pip" ] || python3 -m venv "$tools"
  "$tools/bin/pip" install -q --disable-pip-version-check ziglang 'maturin>=1.9,<2'
fi

# The target's standard library (x86_64: the host's, so usually present; aarch64: rustup
# downloads it once).
if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx "$target"; then
  rustup target add "$target"
fi

# maturin finds zig through the venv's Python (`python -m ziglang`), so the venv goes first on
# PATH. Its report goes to stderr: stdout is the binary's path alone. A wheel of an older
# version would sit beside the new one: remove them first.
export PATH="$tools/bin:$PATH"
rm -f "$wheels"/runicorn_agent-*"${target%%-*}"*.whl
(cd packaging/agent && maturin build --quiet --locked --zig --target "$target" --out "$wheels") >&2

built="$repo/target/$target/agent-release/runicorn-agent"
cp "$built" "$out_dir/runicorn-agent.tmp"
mv "$out_dir/runicorn-agent.tmp" "$out_dir/runicorn-agent"
binary="$out_dir/runicorn-agent"

scripts/check-glibc.sh "$binary" "$max_glibc" >&2
echo "$binary"
