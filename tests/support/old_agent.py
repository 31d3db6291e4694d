#!/usr/bin/env python3
"""An agent from before the `host` capability, for the fleet tests: the real runicorn-agent
(OLD_AGENT_REAL, run with this script's arguments) behind a relay that takes `host` out of the
capabilities its hello announces, and answers a `host` request as an older agent does (a
message it does not know: a `bad_request` error, then the session ends with exit code 2).
Every other frame passes through unchanged, both ways.
"""
import json
import os
import struct
import subprocess
import sys
import threading

agent = subprocess.Popen(
    [os.environ["OLD_AGENT_REAL"]] + sys.argv[1:],
    stdin=subprocess.PIPE,
    stdout=subprocess.PIPE,
)
out = sys.stdout.buffer
out_lock = threading.Lock()


def read_frame(stream):
    head = stream.read(4)
    if len(head) < 4:
        return None
    (n,) = struct.unpack(">I", head)
    return stream.read(n)


def send(payload: bytes) -> None:
    with out_lock:
        out.write(struct.pack(">I", len(payload)) + payload)
        out.flush()


def from_agent() -> None:
    first = True
    while True:
        payload = read_frame(agent.stdout)
        if payload is None:
            break
        if first:
            first = False
            message = json.loads(payload)
            hello = message["body"].get("hello")
            if hello is not None:
                hello["capabilities"] = [c for c in hello["capabilities"] if c != "host"]
                payload = json.dumps(message).encode()
        send(payload)
    os._exit(agent.wait() or 0)


threading.Thread(target=from_agent, daemon=True).start()
while True:
    payload = read_frame(sys.stdin.buffer)
    if payload is None:
        agent.stdin.close()
        break
    message = json.loads(payload)
    if "host" in message.get("body", {}):
        error = {"code": "bad_request", "message": "unknown variant `host`"}
        send(json.dumps({"id": message["id"], "body": {"error": error}}).encode())
        agent.kill()
        os._exit(2)
    agent.stdin.write(struct.pack(">I", len(payload)) + payload)
    agent.stdin.flush()
agent.wait()
threading.Event().wait(5)
