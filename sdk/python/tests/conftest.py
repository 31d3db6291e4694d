"""Shared helpers of the SDK tests: a clean environment per test, readers of run files, running
scripts in a subprocess, and finding the agent binary and the upstream package."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

SDK_DIR = Path(__file__).resolve().parents[1]
SRC_DIR = SDK_DIR / "src"
REPO = SDK_DIR.parents[1]

if str(SRC_DIR) not in sys.path:
    sys.path.insert(0, str(SRC_DIR))

import runicorn  # noqa: E402
from runicorn import lifecycle  # noqa: E402

_RUNICORN_ENV = ("RUNICORN_DIR", "RUNICORN_ON", "RUNICORN_RUN_DIR", "RUNICORN_STRICT",
                 "RUNICORN_HEARTBEAT_INTERVAL", "RUNICORN_FLUSH_INTERVAL")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No RUNICORN_* variable leaks in; HOME points into the test's directory."""
    for name in _RUNICORN_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    runicorn.reset_enabled()
    yield
    # Never leave a run open (it would be finished by atexit at the end of the session).
    lifecycle.end_open_runs("finished", None)
    runicorn.reset_enabled()


@pytest.fixture
def root(tmp_path):
    return tmp_path / "root"


# ---- reading run files -----------------------------------------------------------------------
def read_json(path):
    with open(str(path), encoding="utf-8") as f:
        return json.load(f)


def read_events(run_dir, kind="metrics"):
    events = []
    path = Path(run_dir) / "events.jsonl"
    if not path.exists():
        return events
    with open(str(path), encoding="utf-8") as f:
        for line in f:
            event = json.loads(line)
            if kind is None or event["type"] == kind:
                events.append(event)
    return events


def read_lines(path):
    with open(str(path), encoding="utf-8") as f:
        return f.read().splitlines()


def wait_for(predicate, timeout=5.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def make_joined_run(root, meta_extra):
    """A running run as `runicorn-agent run` creates it (its meta.json plus `meta_extra`), for an
    SDK inside the wrapped command to join through RUNICORN_RUN_DIR."""
    run_dir = root / "runs" / "agent" / "20261126_130000_abcdef"
    run_dir.mkdir(parents=True)
    meta = {"id": run_dir.name, "path": "agent", "storage_dir": str(root), **meta_extra}
    (run_dir / "meta.json").write_text(json.dumps(meta))
    (run_dir / "status.json").write_text(json.dumps({"status": "running"}))
    return run_dir


def find_run_dirs(root):
    """Every directory under ``root/runs`` holding meta.json."""
    return sorted(p.parent for p in Path(root, "runs").rglob("meta.json"))


# ---- subprocesses ----------------------------------------------------------------------------
def child_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNICORN_")}
    env["PYTHONPATH"] = str(SRC_DIR) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    for key, value in extra.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = str(value)
    return env


def write_script(tmp_path, code, name="script.py"):
    path = Path(tmp_path) / name
    path.write_text(textwrap.dedent(code), encoding="utf-8")
    return path


def run_script(tmp_path, code, timeout=30, python=None, binary=False, **env):
    script = write_script(tmp_path, code)
    return subprocess.run([python or sys.executable, str(script)], env=child_env(**env),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                          universal_newlines=not binary, cwd=str(tmp_path))


def _default_sigint():
    # A script started at a terminal has Ctrl-C's default action. A test run launched in the
    # background by a non-interactive shell inherits SIGINT ignored, and Python then never
    # raises KeyboardInterrupt: give the child the terminal's disposition either way.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_script(tmp_path, code, **env):
    script = write_script(tmp_path, code)
    return subprocess.Popen([sys.executable, str(script)], env=child_env(**env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True, cwd=str(tmp_path),
                            preexec_fn=_default_sigint)


# ---- the agent binary ------------------------------------------------------------------------
def agent_binary():
    """The agent binary, or a test failure (a skip only with RUNICORN_SKIP_AGENT_TESTS=1)."""
    path = os.environ.get("RUNICORN_AGENT_BIN") or str(REPO / "target" / "debug" / "runicorn-agent")
    if os.path.isfile(path) and os.access(path, os.X_OK):
        return path
    message = ("runicorn-agent binary not found at %s: build it (cargo build -p runicorn-agent) or "
               "point RUNICORN_AGENT_BIN at it" % path)
    if os.environ.get("RUNICORN_SKIP_AGENT_TESTS") == "1":
        pytest.skip(message + " (skipped: RUNICORN_SKIP_AGENT_TESTS=1)")
    pytest.fail(message + "; set RUNICORN_SKIP_AGENT_TESTS=1 to skip while developing")


def agent_ls(root, *args):
    """``runicorn-agent ls --root ROOT --json``, as a dict id -> entry."""
    binary = agent_binary()
    done = subprocess.run([binary, "ls", "--root", str(root), "--json"] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60,
                          universal_newlines=True, env=child_env())
    assert done.returncode == 0, "agent ls failed (%d): %s" % (done.returncode, done.stderr)
    entries = json.loads(done.stdout)
    assert isinstance(entries, list), done.stdout
    return {entry["run_id"]: entry for entry in entries}


def expected_listing(run_dir):
    """What the format doc says a reader derives from a run's events: points, keys, last step."""
    points, keys, last_step = 0, set(), None
    for event in read_events(run_dir):
        data = event["data"]
        last_step = data["global_step"]
        for key, value in data.items():
            if key in ("global_step", "time", "stage"):
                continue
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                points += 1
                keys.add(key)
    return {"points": points, "keys": sorted(keys), "last_step": last_step}
