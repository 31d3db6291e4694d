#!/usr/bin/env bash
# Prints a binary's size and the highest GLIBC_x.y symbol version it needs (from `readelf -V`,
# Debian package binutils), and fails if that is above MAX.
#
#   scripts/check-glibc.sh BINARY [MAX]      # MAX defaults to 2.17
set -euo pipefail
binary=${1:?usage: scripts/check-glibc.sh BINARY [MAX]}
max=${2:-2.17}
if ! command -v readelf >/dev/null 2>&1; then
  echo "readelf not found: install binutils (Debian: apt-get install binutils)" >&2
  exit 1
fi
[ -f "$binary" ] || { echo "$binary: no such file (build it with scripts/build-agent.sh)" >&2; exit 1; }
size=$(stat -c %s "$binary")
highest=$(readelf -V --wide "$binary" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' \
  | sort -t. -k1,1n -k2,2n -k3,3n | tail -n1 || true)
mib=$(awk -v b="$size" 'BEGIN { printf "%.1f", b / 1048576 }')
echo "$binary: $size bytes ($mib MiB), highest GLIBC symbol version ${highest:-none (static)}"
if [ -n "$highest" ] && [ "$(printf '%s\n%s\n' "$highest" "$max" | sort -t. -k1,1n -k2,2n -k3,3n | tail -n1)" != "$max" ]; then
  echo "$binary needs GLIBC_$highest, above the $max this build promises" >&2
  exit 1
fi
