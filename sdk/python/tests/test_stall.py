"""``init(stall_after=..., stall_factor=...)``: the settings reach ``meta.json``'s ``stall``
(docs/run-format.md, "Stalls"), are checked, and the agent judges a paused run ``stalled`` with
them."""

import math
import time

import pytest

import runicorn as rn

from conftest import agent_ls, find_run_dirs, make_joined_run, read_json


def meta_of(run):
    return read_json(run.dir / "meta.json")


def test_settings_reach_meta_json(root):
    run = rn.init(path="s/both", storage=str(root), stall_after=90, stall_factor=3)
    assert meta_of(run)["stall"] == {"factor": 3.0, "after_s": 90.0}
    run.finish()
    run = rn.init(path="s/floor", storage=str(root), stall_after=1.5)
    assert meta_of(run)["stall"] == {"after_s": 1.5}
    run.finish()
    run = rn.init(path="s/none", storage=str(root))
    assert "stall" not in meta_of(run)
    run.finish()


@pytest.mark.parametrize("name", ["stall_after", "stall_factor"])
@pytest.mark.parametrize("value", [0, -1, math.nan, math.inf, "soon", True])
def test_absurd_values_are_refused_naming_the_parameter(root, name, value):
    with pytest.raises(ValueError, match=name):
        rn.init(storage=str(root), **{name: value})
    assert find_run_dirs(root) == []


def test_a_joined_run_takes_them_only_when_the_agent_recorded_none(root, monkeypatch):
    run_dir = make_joined_run(root, {})
    monkeypatch.setenv("RUNICORN_RUN_DIR", str(run_dir))
    run = rn.init(stall_factor=2)
    run.finish()
    assert read_json(run_dir / "meta.json")["stall"] == {"factor": 2.0}
    assert read_json(run_dir / "meta.json")["id"] == run_dir.name


def test_the_agents_settings_win_in_a_joined_run(root, monkeypatch):
    run_dir = make_joined_run(root, {"stall": {"after_s": 30}})
    monkeypatch.setenv("RUNICORN_RUN_DIR", str(run_dir))
    run = rn.init(stall_factor=2, stall_after=5)
    run.finish()
    assert read_json(run_dir / "meta.json")["stall"] == {"after_s": 30}


def test_the_agent_marks_a_paused_run_stalled_and_a_new_step_clears_it(root):
    run = rn.init(path="s/live", storage=str(root), stall_after=1, stall_factor=5)
    for _ in range(5):
        run.log({"loss": 1.0})
        time.sleep(0.1)
    run.flush()
    time.sleep(1.5)
    entry = agent_ls(root)[run.id]
    assert entry["status"] == "stalled", entry
    assert entry["reason"].startswith("no new step for "), entry
    assert "floor 1s" in entry["reason"] or "the floor" in entry["reason"], entry
    run.log({"loss": 0.5})
    run.flush()
    assert agent_ls(root)[run.id]["status"] == "running"
    run.finish()
    assert agent_ls(root)[run.id]["status"] == "finished"
