"""``examples/train.py``: standalone (with the SDK found through its fallback import) and under
``runicorn-agent run`` (joined mode)."""

import re
import subprocess
import sys
import time

from conftest import REPO, agent_binary, agent_ls, child_env, find_run_dirs, read_events, \
    read_json, read_lines

TRAIN = str(REPO / "examples" / "train.py")


def test_example_standalone(root, tmp_path):
    started = time.monotonic()
    # -S: no site-packages, so the example must find the SDK through its sys.path fallback.
    done = subprocess.run([sys.executable, "-S", TRAIN], env=child_env(PYTHONPATH=None,
                          RUNICORN_DIR=root), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=30, cwd=str(tmp_path))
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert elapsed < 3.0
    [run_dir] = find_run_dirs(root)
    assert run_dir.parent == root / "runs" / "demo" / "fake"
    events = read_events(run_dir)
    assert [e["data"]["global_step"] for e in events] == list(range(1, 51))
    assert all(set(e["data"]) == {"loss", "acc", "lr", "global_step", "time", "stage"}
               for e in events)
    assert read_json(run_dir / "status.json")["status"] == "finished"
    summary = read_json(run_dir / "summary.json")
    assert summary["steps"] == 50 and summary["best_metric_name"] == "acc"
    assert read_json(run_dir / "assets.json")["config"]["args"]["steps"] == 50
    logs = read_lines(run_dir / "logs.txt")
    progress = [line for line in logs if "train " in line and "%|" in line]
    assert len(progress) == 1 and "50/50" in progress[0]  # only the last \r state
    assert any(re.match(r"^\[\d\d:\d\d:\d\d\] final loss", line) for line in logs)
    assert any(line.endswith("| training done after 50 steps") for line in logs)
    assert "\r" in done.stdout or "50/50" in done.stdout


def test_example_under_the_agent(root, tmp_path):
    binary = agent_binary()
    done = subprocess.run(
        [binary, "run", "--root", str(root), "--path", "demo/agent", "--alias", "wrapped", "--",
         sys.executable, "-S", TRAIN, "--steps", "20", "--sleep", "0.005"],
        env=child_env(PYTHONPATH=None), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        universal_newlines=True, timeout=60, cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr
    [run_dir] = find_run_dirs(root)  # the SDK joined the agent's run, it made none of its own
    meta = read_json(run_dir / "meta.json")
    assert meta["path"] == "demo/agent" and meta["alias"] == "wrapped"
    assert not meta.get("writer", "").startswith("runicorn-rs-python")
    assert [e["data"]["global_step"] for e in read_events(run_dir)] == list(range(1, 21))
    assert read_json(run_dir / "summary.json")["steps"] == 20
    entry = agent_ls(root)[run_dir.name]
    assert entry["status"] == "finished" and entry["points"] == 60
    assert entry["keys"] == ["acc", "loss", "lr"] and entry["last_step"] == 20
    logs = read_lines(run_dir / "logs.txt")
    # The agent captured the console once (the SDK did not capture it a second time).
    assert sum("final loss" in line for line in logs) == 1
    assert any(line.endswith("| training done after 20 steps") for line in logs)
