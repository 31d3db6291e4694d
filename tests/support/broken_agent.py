#!/usr/bin/env python3
"""A deliberately broken runicorn agent, for the hub's refusal tests.

It answers the hub's hello correctly, then misbehaves in the way BROKEN_AGENT_MODE says:
  oversized   - a frame whose length prefix is far beyond the limit
  invalid     - a frame that is not JSON
  dotdot      - a change batch naming a run directory with '..'
  abs-file    - a change batch whose file manifest holds an absolute path
  wrong-type  - answers `changes` with a `subscribed`
  greeting    - prints a shell greeting before anything else (no frames at all)
  old-version - says hello with protocol version 99 only
It accepts and ignores the agent's usual arguments (serve --stdio --root DIR ...).
"""
import json
import os
import struct
import sys

MODE = os.environ.get("BROKEN_AGENT_MODE", "invalid")
out = sys.stdout.buffer
inp = sys.stdin.buffer


def send_raw(payload: bytes) -> None:
    out.write(struct.pack(">I", len(payload)) + payload)
    out.flush()


def send(obj) -> None:
    send_raw(json.dumps(obj).encode())


def read():
    head = inp.read(4)
    if len(head) < 4:
        sys.exit(0)
    (n,) = struct.unpack(">I", head)
    return json.loads(inp.read(n))


if MODE == "greeting":
    out.write(b"Welcome to gpu-01! You have new mail.\n")
    out.flush()
    read()
    sys.exit(0)

hello = read()
send({"id": hello["id"], "body": {"hello": {
    "protocol": "runicorn-sync",
    "versions": [99] if MODE == "old-version" else [1],
    "capabilities": [],
    "software": "broken-agent/0",
    "max_frame_bytes": 16 << 20,
    "root": "/nowhere",
    "host": "broken",
    "epoch": "e1",
}}})

req = read()
rid = req["id"]
run = {
    "dir": "runs/a/1", "seq": 1, "id": "1", "path": "a", "layout": "current",
    "alias": None, "tags": [], "status": "finished", "reason": None,
    "created_at": 1.0, "ended_at": 2.0, "hostname": "broken", "deleted": False,
    "meta": {}, "status_record": {}, "summary": None, "config": None, "environment": None,
    "events": {"bytes": 0, "lines": 0, "points": 0, "keys": [], "last_step": None,
               "last_event_at": None, "corrupt_lines": 0},
    "log_bytes": 0, "files": [],
}
if MODE == "oversized":
    out.write(struct.pack(">I", 0x7FFFFFF0) + b"x" * 64)
    out.flush()
elif MODE == "invalid":
    send_raw(b"{this is not json")
elif MODE == "dotdot":
    run["dir"] = "runs/../../../etc"
    send({"id": rid, "body": {"change_batch": {"reset": True, "runs": [run], "removed": [],
          "cursor": {"epoch": "e1", "seq": 1}, "more": False}}})
elif MODE == "abs-file":
    run["files"] = [{"path": "/etc/passwd", "size": 1, "mtime": 1.0}]
    send({"id": rid, "body": {"change_batch": {"reset": True, "runs": [run], "removed": [],
          "cursor": {"epoch": "e1", "seq": 1}, "more": False}}})
elif MODE == "wrong-type":
    send({"id": rid, "body": {"subscribed": {}}})
# Wait for the hub to hang up.
try:
    while True:
        read()
except Exception:
    pass
