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
  mixed       - a working agent whose answers hold one bad item next to good ones: a run
                directory with a backslash, a file path with a backslash, a run's points with
                ragged columns and a log chunk that runs backwards, a summary nested 100
                levels deep, and the agent's own lists of skipped runs and files (the hub must
                store the good items and record the bad ones with their reasons)
It accepts and ignores the agent's usual arguments (serve --stdio --root DIR ...).
BROKEN_AGENT_STDERR, when set, is written to stderr first (terminal-safety tests).
"""
import json
import os
import struct
import sys

MODE = os.environ.get("BROKEN_AGENT_MODE", "invalid")
if os.environ.get("BROKEN_AGENT_STDERR"):
    sys.stderr.write(os.environ["BROKEN_AGENT_STDERR"] + "\n")
    sys.stderr.flush()
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

def run_state(dir_, events_bytes=0, log_bytes=0):
    return {
        "dir": dir_, "seq": 1, "id": dir_.rsplit("/", 1)[-1], "path": dir_.split("/")[1],
        "layout": "current", "alias": None, "tags": [], "status": "finished", "reason": None,
        "created_at": 1.0, "ended_at": 2.0, "hostname": "broken", "deleted": False,
        "meta": {}, "status_record": {}, "summary": None, "config": None, "environment": None,
        "events": {"bytes": events_bytes, "lines": events_bytes // 10,
                   "points": events_bytes // 10, "keys": ["loss"], "last_step": None,
                   "last_event_at": None, "corrupt_lines": 0},
        "log_bytes": log_bytes, "files": [{"path": "meta.json", "size": 2, "mtime": 1.0}],
    }


def nested(depth):
    v = 1
    for _ in range(depth):
        v = {"a": v}
    return v


if MODE == "mixed":
    good = run_state("runs/good/1", events_bytes=20, log_bytes=6)
    good["files"].append({"path": "a\\b.txt", "size": 1, "mtime": 1.0})
    good["skipped_files"] = [{"name": "c\\x1b.txt", "reason": "cannot be named on the wire"}]
    good["skipped_files_total"] = 1
    ragged = run_state("runs/ragged/1", events_bytes=20, log_bytes=6)
    deep = run_state("runs/deep/1")
    deep["summary"] = nested(100)
    bad_dir = run_state("runs/x\\y/1")
    batch = {"reset": True, "runs": [good, bad_dir, ragged, deep], "removed": [],
             "cursor": {"epoch": "e1", "seq": 4}, "more": False,
             "skipped": [{"name": "runs/odd\\xff", "reason": "the name is not UTF-8"},
                         {"name": "runs/\x1b]0;owned\x07bell\u202e",
                          "reason": "a control character \x1b[2J"}]}
    while True:
        req = read()
        rid = req["id"]
        (kind, body), = req["body"].items()
        if kind == "changes":
            if body.get("since"):
                send({"id": rid, "body": {"change_batch": {
                    "reset": False, "runs": [], "removed": [],
                    "cursor": {"epoch": "e1", "seq": 4}, "more": False}}})
            else:
                send({"id": rid, "body": {"change_batch": batch}})
        elif kind == "points":
            runs = []
            for want in body["runs"]:
                rows = 1 if want["dir"] == "runs/ragged/1" else 2
                runs.append({"dir": want["dir"], "from": 0, "to": 20, "next_line": 3,
                             "eof": True, "steps": [0, 1], "times": [1.0, 2.0][:rows],
                             "series": [{"key": "loss", "values": [0.5, 0.25]}]})
            send({"id": rid, "body": {"point_batch": {"runs": runs}}})
        elif kind == "log":
            runs = []
            for want in body["runs"]:
                backwards = want["dir"] == "runs/ragged/1"
                runs.append({"dir": want["dir"], "from": 6 if backwards else 0,
                             "to": 0 if backwards else 6, "text": "hello\n", "eof": True})
            send({"id": rid, "body": {"log_batch": {"runs": runs}}})
        elif kind == "subscribe":
            send({"id": rid, "body": {"subscribed": {}}})

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
