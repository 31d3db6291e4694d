#!/usr/bin/env bash
# The README's main job: builds runicorn-agent and runicorn-hub (release) and runs
# `runicorn-hub demo`: sample runs, one still training, a local agent serving them, synced into a
# temporary store and shown in the dashboard at http://127.0.0.1:23300/ (Ctrl-C stops).
#
# The dashboard's TypeScript is compiled by npm while cargo builds the hub (web/build.rs) and
# embedded in the binary; Node.js is needed to build, never to run. On a fresh Debian machine
# (as root) this installs nodejs and npm when they are missing. Extra arguments go to `demo`
# (for example `--open`, or `--port 8080`).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> installing nodejs and npm (needed to build the dashboard)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  else
    echo "error: the dashboard is built with Node.js and npm; install them (Debian/Ubuntu: sudo apt-get install nodejs npm) and run this again" >&2
    exit 1
  fi
fi

echo "==> building runicorn-agent and runicorn-hub (release; the first build takes a few minutes)"
cargo build --release -q -p runicorn-agent -p runicorn-hub
exec target/release/runicorn-hub demo "$@"
