#!/usr/bin/env bash
# Writes the dashboard's generated TypeScript declarations (web/src/typescript.rs) to
# web/ui/src/generated/api.ts, or to the file given as the first argument (CI writes a
# temporary copy and compares). Run it after changing a type the API sends, and commit the file.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-web/ui/src/generated/api.ts}")
# The generator needs no UI, and the UI may not type-check until the file is regenerated (a
# renamed field): build runicorn-web with a placeholder page instead of running npm.
placeholder="$(pwd)/target/gen-ts-ui"
mkdir -p "$placeholder"
echo '<!doctype html><title>placeholder for scripts/gen-ts.sh</title>' >"$placeholder/index.html"
RUNICORN_UI_DIST="$placeholder" RUNICORN_TS_OUT="$out" cargo test -p runicorn-web --lib --quiet \
  typescript::tests::generated_file_is_current -- --exact
