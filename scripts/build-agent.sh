#!/usr/bin/env bash
# Builds the portable runicorn-agent for servers: x86_64 Linux, needing at most glibc 2.17
# (CentOS 7 and everything newer), stripped, with LTO (the `agent-release` profile of
# the root Cargo.toml). Prints the path of the binary, its size and the highest GLIBC symbol
# version it needs, and fails if that is above 2.17.
#
# It links with zig (the `ziglang` package from PyPI) through cargo-zigbuild (crates.io), both
# installed once into .ci-cache/ (ignored by git). Needs python3 with venv, cargo and readelf
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
mkdir -p "$cache" "$out_dir"

# zig, from PyPI, in its own venv.
zig_venv="$cache/zig-venv"
if ! "$zig_venv/bin/python-zig" version >/dev/null 2>&1; then
  echo "installing zig (PyPI ziglang) into $zig_venv" >&2
  python3 -m venv "$zig_venv"
  "$zig_venv/bin/pip" install -q --disable-pip-version-check ziglang
fi

# cargo-zigbuild, from crates.io, with its own install root.
zigbuild_root="$cache/cargo-zigbuild"
if [ ! -x "$zigbuild_root/bin/cargo-zigbuild" ]; then
  echo "installing cargo-zigbuild into $zigbuild_root" >&2
  cargo install --quiet --locked --root "$zigbuild_root" cargo-zigbuild
fi

# The target's standard library (x86_64: the host's, so usually present; aarch64: rustup
# downloads it once).
if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx "$target"; then
  rustup target add "$target"
fi

# cargo-zigbuild finds zig on PATH or through the Python package of the venv on PATH.
export PATH="$zig_venv/bin:$zigbuild_root/bin:$PATH"
cargo zigbuild --quiet --locked -p runicorn-agent --bin runicorn-agent \
  --profile agent-release --target "$target.$max_glibc"

built="$repo/target/$target/agent-release/runicorn-agent"
cp "$built" "$out_dir/runicorn-agent.tmp"
mv "$out_dir/runicorn-agent.tmp" "$out_dir/runicorn-agent"
binary="$out_dir/runicorn-agent"

scripts/check-glibc.sh "$binary" "$max_glibc"
echo "$binary"
