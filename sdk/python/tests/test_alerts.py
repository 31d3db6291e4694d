"""``init(watch=..., gpu_idle_after=...)``: the settings reach ``meta.json``'s ``alerts``
(docs/run-format.md, "Alerts"), are checked, and a joined run keeps the agent's."""

import math

import pytest

import runicorn as rn

from conftest import find_run_dirs, make_joined_run, read_json


def meta_of(run):
    return read_json(run.dir / "meta.json")


def test_settings_reach_meta_json(root):
    run = rn.init(path="a/both", storage=str(root), watch=["loss", "val/acc"], gpu_idle_after=60)
    assert meta_of(run)["alerts"] == {"watch": ["loss", "val/acc"], "gpu_idle_after_s": 60.0}
    run.finish()
    run = rn.init(path="a/one", storage=str(root), watch="grad_norm")
    assert meta_of(run)["alerts"] == {"watch": ["grad_norm"]}
    run.finish()
    run = rn.init(path="a/none", storage=str(root))
    assert "alerts" not in meta_of(run)
    run.finish()


@pytest.mark.parametrize("kwargs", [
    {"watch": 3}, {"watch": [1]}, {"watch": [""]},
    {"gpu_idle_after": 0}, {"gpu_idle_after": -5}, {"gpu_idle_after": math.nan},
    {"gpu_idle_after": math.inf}, {"gpu_idle_after": "soon"}, {"gpu_idle_after": True},
])
def test_absurd_values_are_refused_naming_the_parameter(root, kwargs):
    (name,) = kwargs
    with pytest.raises(ValueError, match=name):
        rn.init(storage=str(root), **kwargs)
    assert find_run_dirs(root) == []


def test_a_joined_run_takes_them_only_when_the_agent_recorded_none(root, monkeypatch):
    run_dir = make_joined_run(root, {})
    monkeypatch.setenv("RUNICORN_RUN_DIR", str(run_dir))
    rn.init(watch=["acc"]).finish()
    assert read_json(run_dir / "meta.json")["alerts"] == {"watch": ["acc"]}


def test_the_agents_settings_win_in_a_joined_run(root, monkeypatch):
    run_dir = make_joined_run(root, {"alerts": {"watch": ["loss"]}})
    monkeypatch.setenv("RUNICORN_RUN_DIR", str(run_dir))
    rn.init(watch=["acc"], gpu_idle_after=5).finish()
    assert read_json(run_dir / "meta.json")["alerts"] == {"watch": ["loss"]}
