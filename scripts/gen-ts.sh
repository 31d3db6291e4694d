#!/usr/bin/env bash
# Writes the dashboard's generated TypeScript declarations (web/src/typescript.rs) to
# web/ui/src/generated/api.ts, or to the file given as the first argument (CI writes a
# temporary copy and compares). Run it after changing a type the API sends, and commit the file.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-web/ui/src/generated/api.ts}")
RUNICORN_TS_OUT="$out" cargo test -p runicorn-web --lib --quiet \
  typescript::tests::generated_file_is_current -- --exact
