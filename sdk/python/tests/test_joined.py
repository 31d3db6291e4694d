"""Joined mode: ``RUNICORN_RUN_DIR`` names a run created by ``runicorn-agent run``; the SDK appends
to it and leaves status.json, the heartbeat and console capture to the wrapper."""

import io
import json
import os
import sys
import time

import pytest

import runicorn as rn

from conftest import read_events, read_json, read_lines, run_script


def make_agent_run(root, alias=None, run_id="20261126_130000_abcdef", path="agent/job"):
    run_dir = root / "runs" / path / run_id
    run_dir.mkdir(parents=True)
    meta = {"id": run_id, "path": path, "alias": alias, "created_at": 1795696136.3, "python": None,
            "platform": "Linux", "hostname": "h", "pid": 1, "storage_dir": str(root),
            "writer": "runicorn-agent/0.1.0"}
    (run_dir / "meta.json").write_text(json.dumps(meta, indent=2))
    status = {"status": "running", "started_at": 1795696136.31, "pid": 1, "host": "h",
              "heartbeat_at": 1795696136.31, "heartbeat_interval": 10.0}
    (run_dir / "status.json").write_text(json.dumps(status, indent=2))
    (run_dir / "events.jsonl").write_text(
        '{"ts": 1.0, "type": "metrics", "data": {"pre": 1, "global_step": 1, "time": 1.0}}\n')
    (run_dir / "summary.json").write_text('{"from_agent": true}')
    return run_dir


def test_joined_run_appends_and_leaves_status_alone(root, monkeypatch):
    run_dir = make_agent_run(root)
    status_before = (run_dir / "status.json").read_bytes()
    mtime_before = os.stat(str(run_dir / "status.json")).st_mtime_ns
    monkeypatch.setenv("RUNICORN_RUN_DIR", str(run_dir))
    monkeypatch.setenv("RUNICORN_DIR", str(root))
    out = io.StringIO()
    saved = sys.stdout
    sys.stdout = out
    try:
        run = rn.init(path="ignored/path", storage=str(root / "elsewhere"), alias="joined-alias",
                      capture_console=True, heartbeat_interval=0.05)
        assert sys.stdout is out  # no console capture in joined mode
        assert run.joined and run.dir == run_dir
        assert run.id == "20261126_130000_abcdef" and run.path == "agent/job"
        print("printed while joined")
        run.log({"loss": 0.5}, stage="train")
        run.log({"loss": 0.25})
        run.log_text("text")
        run.summary({"final": 1})
        run.log_config(extra={"e": 1})
        time.sleep(0.3)  # several heartbeat intervals: none may be written
        run.finish()
        run.finish()
    finally:
        sys.stdout = saved
    assert (run_dir / "status.json").read_bytes() == status_before
    assert os.stat(str(run_dir / "status.json")).st_mtime_ns == mtime_before
    events = read_events(run_dir)
    assert [e["data"].get("pre") for e in events] == [1, None, None]
    assert [e["data"].get("loss") for e in events[1:]] == [0.5, 0.25]
    assert [e["data"]["global_step"] for e in events[1:]] == [1, 2]
    assert read_json(run_dir / "summary.json") == {"from_agent": True, "final": 1}
    assert read_json(run_dir / "meta.json")["alias"] == "joined-alias"
    assert read_json(run_dir / "assets.json")["config"] == {"extra": {"e": 1}}
    logs = read_lines(run_dir / "logs.txt")
    assert len(logs) == 1 and logs[0].endswith("| text")
    assert not (root / "elsewhere").exists() and not (root / "runs" / "ignored").exists()
    assert rn.get_active_run() is None


def test_joined_run_keeps_an_existing_alias(root, monkeypatch):
    run_dir = make_agent_run(root, alias="set-by-agent")
    monkeypatch.setenv("RUNICORN_RUN_DIR", str(run_dir))
    run = rn.init(alias="mine")
    run.finish()
    assert read_json(run_dir / "meta.json")["alias"] == "set-by-agent"
    assert run.alias == "set-by-agent"


def test_joined_missing_directory_falls_back_to_a_new_run(root, monkeypatch):
    monkeypatch.setenv("RUNICORN_RUN_DIR", str(root / "nope"))
    with pytest.warns(RuntimeWarning, match="not a directory"):
        run = rn.init(path="p", storage=str(root))
    run.finish()
    assert not run.joined and read_json(run.dir / "status.json")["status"] == "finished"


def test_joined_process_exit_paths_do_not_touch_status(tmp_path, root):
    """A joined script that fails, or exits without finish(): events are flushed, status kept."""
    run_dir = make_agent_run(root)
    before = (run_dir / "status.json").read_bytes()
    code = """
        import runicorn as rn
        run = rn.init(capture_console=True)
        for i in range(3):
            run.log({"x": i})
        raise ValueError("boom")
    """
    done = run_script(tmp_path, code, RUNICORN_RUN_DIR=run_dir, RUNICORN_DIR=root)
    assert done.returncode == 1 and "ValueError: boom" in done.stderr
    assert (run_dir / "status.json").read_bytes() == before
    assert [e["data"].get("x") for e in read_events(run_dir)] == [None, 0, 1, 2]
    assert not (run_dir / "logs.txt").exists()
