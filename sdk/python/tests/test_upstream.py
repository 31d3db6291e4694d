"""Compatibility with the upstream ``runicorn`` package (0.7.2 from PyPI), both ways.

- the same training script, run once with upstream and once with ours, writes the same files
  (events line by line with key order, summary, assets, log lines; ours adds fields);
- runs written by upstream are listed correctly by ``runicorn-agent ls --json``;
- runs written by ours are listed and charted by upstream's own viewer API (its FastAPI app,
  driven in-process with its TestClient).

The upstream interpreter is ``$RUNICORN_UPSTREAM_PYTHON``, else a venv created once in
``sdk/python/.upstream-venv`` with ``pip install runicorn==0.7.2`` (needs PyPI the first time).
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import runicorn as rn

from conftest import SDK_DIR, agent_ls, child_env, expected_listing, read_json, read_lines, \
    write_script

UPSTREAM_VERSION = "0.7.2"


def _python_for_venv():
    if sys.version_info >= (3, 10):
        return sys.executable
    for name in ("python3.13", "python3.12", "python3.11", "python3.10"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("upstream runicorn needs Python >= 3.10 to build its venv; none found "
                "(set RUNICORN_UPSTREAM_PYTHON)")


@pytest.fixture(scope="session")
def upstream_python():
    given = os.environ.get("RUNICORN_UPSTREAM_PYTHON")
    if given:
        return given
    venv = SDK_DIR / ".upstream-venv"
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    check = [str(python), "-c", "import runicorn, sys; "
             "sys.exit(runicorn.__version__ != %r)" % UPSTREAM_VERSION]
    if python.exists() and subprocess.run(check, env=child_env(PYTHONPATH=None)).returncode == 0:
        return str(python)
    steps = [[_python_for_venv(), "-m", "venv", "--clear", str(venv)],
             [str(python), "-m", "pip", "install", "-q", "runicorn==" + UPSTREAM_VERSION]]
    for step in steps:
        done = subprocess.run(step, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True, timeout=900, env=child_env(PYTHONPATH=None))
        if done.returncode != 0:
            pytest.fail("could not set up upstream runicorn==%s (%s): %s"
                        % (UPSTREAM_VERSION, " ".join(step), done.stdout[-2000:]))
    return str(python)


def run_upstream(python, tmp_path, code, *args):
    script = write_script(tmp_path, code, name="upstream_script.py")
    env = child_env(PYTHONPATH=None, HOME=tmp_path / "upstream-home",
                    XDG_CONFIG_HOME=tmp_path / "upstream-home" / ".config")
    done = subprocess.run([python, str(script)] + [str(a) for a in args], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=120, cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


# The same script for both packages (only call shapes both support).
SAME_SCRIPT = '''
import argparse, logging, sys
import runicorn as rn
if sys.argv[2] == "upstream":
    assert "site-packages" in rn.__file__, rn.__file__
nan, inf = float("nan"), float("inf")
run = rn.init(path="same/script", storage=sys.argv[1], alias="twin")
run.log({"loss": 1.0, "acc": 0.5})
run.log({"loss": 0.5, "name": "x"}, stage="train")
run.log({"a": 1, "b": True, "c": None, "d": [1, 2.5], "e": {"k": 1}})
run.log({"loss": nan, "x": inf, "y": -inf})
run.log({"step": 100, "loss": 0.3})
run.log({"global_step": 7, "loss": 0.2}, step=20)
run.log({"stage": "val", "acc": 0.9})
run.log({"stage": "val", "acc": 0.9}, stage="test")
run.log({"time": 3.0, "loss": 0.1})
run.log({"\\u00fc-key": "h\\u00e9llo", "emoji": "\\U0001F984"})
run.log(kw=1)
run.log()
run.log({"loss": 0.1}, step="5")
run.log({"big": 10 ** 20, "neg": -0.0, "tiny": 1e-300, "i": -3, "third": 1 / 3})
run.log_text("hello\\nworld")
run.summary({"final": 1, "nested": {"a": [1, 2]}})
run.summary({"final": 2})
run.set_primary_metric("loss", mode="min")
run.log({"loss": 0.05})
run.log({"loss": 0.07})
run.log_config(args=argparse.Namespace(lr=0.1, name="n"), extra={"e": 1}, config_files=["a.yaml"])
handler = run.get_logging_handler()
logger = logging.getLogger("twin")
logger.setLevel(logging.INFO)
logger.addHandler(handler)
logger.info("via logging")
logger.removeHandler(handler)
run.log_image("img", b"\\x89PNG fake", step=3, caption="c")
run.finish()
print(run.run_dir)
'''


def _normalized_events(run_dir):
    events = []
    for line in (Path(run_dir) / "events.jsonl").read_text(encoding="utf-8").splitlines():
        pairs = json.loads(line, object_pairs_hook=list)
        normalized = []
        for key, value in pairs:
            if key == "ts":
                value = "<ts>"
            elif key == "data":
                data = []
                for k, v in value:
                    if k == "time":
                        v = "<time>"
                    elif k == "path" and isinstance(v, str) and v.startswith("media/"):
                        assert re.match(r"^media/\d{13}_[0-9a-f]{6}_img\.png$", v), v
                        assert (Path(run_dir) / v).read_bytes() == b"\x89PNG fake"
                        v = "<media>"
                    data.append((k, v))
                value = data
            normalized.append((key, value))
        events.append(normalized)
    return events


def _nan_safe(value):
    return json.dumps(value, sort_keys=False)


def test_same_script_writes_the_same_files(upstream_python, tmp_path):
    up_dir = run_upstream(upstream_python, tmp_path, SAME_SCRIPT, tmp_path / "up", "upstream")
    up_dir = up_dir.strip().splitlines()[-1]
    script = write_script(tmp_path, SAME_SCRIPT, name="ours_script.py")
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "ours"), "ours"],
                          env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=60, cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr
    our_dir = done.stdout.strip()

    up_events, our_events = _normalized_events(up_dir), _normalized_events(our_dir)
    assert len(our_events) == len(up_events) == 17
    for up, ours in zip(up_events, our_events):
        assert _nan_safe(ours) == _nan_safe(up)

    assert read_json(Path(our_dir) / "summary.json") == read_json(Path(up_dir) / "summary.json")
    assert read_json(Path(our_dir) / "assets.json") == read_json(Path(up_dir) / "assets.json")

    def log_lines(run_dir):
        # Upstream 0.7.2 also logs its NaN "anomaly monitor" alerts; we do not have that monitor.
        return [re.sub(r"\d\d:\d\d:\d\d", "T", line)
                for line in read_lines(Path(run_dir) / "logs.txt") if "Alert:" not in line]

    assert log_lines(our_dir) == log_lines(up_dir) == [
        "T | hello", "T | world", "T | INFO | twin | via logging"]

    up_meta, our_meta = read_json(Path(up_dir) / "meta.json"), read_json(Path(our_dir) / "meta.json")
    assert list(our_meta) == list(up_meta) + ["writer"]
    for key in ("path", "alias", "platform", "hostname", "workspace_root"):
        assert our_meta[key] == up_meta[key], key
    up_status, our_status = (read_json(Path(up_dir) / "status.json"),
                             read_json(Path(our_dir) / "status.json"))
    assert set(up_status) <= set(our_status) and our_status["status"] == up_status["status"]


UPSTREAM_RUNS = '''
import json, sys
import runicorn as rn
assert "site-packages" in rn.__file__
root = sys.argv[1]
ids = {}
run = rn.init(path="cv/resnet", storage=root, alias="first")
for i in range(5):
    run.log({"loss": 1.0 / (i + 1), "acc": i / 10, "name": "x"}, stage="train")
run.log({"loss": 0.1}, step=10)
run.summary({"final": 1})
run.finish()
ids["first"] = run.id
run = rn.init(path="nlp/bert/base", storage=root)
for i in range(3):
    run.log(loss=0.5 / (i + 1), lr=0.01)
run.log({"val_loss": float("nan"), "flag": True}, stage="val")
run.finish()
ids["second"] = run.id
try:
    with rn.init(path="cv/failing", storage=root, alias="boom") as run:
        ids["failed"] = run.id
        run.log({"loss": 1.0})
        raise RuntimeError("boom")
except RuntimeError:
    pass
run = rn.init(path="", storage=root)
run.log({"x": 1})
run.finish()
ids["rootpath"] = run.id
run = rn.init(path="left/open", storage=root)
run.log({"y": 2})
ids["open"] = run.id
print(json.dumps(ids))
'''


def test_agent_lists_runs_written_by_upstream(upstream_python, tmp_path):
    root = tmp_path / "uproot"
    ids = json.loads(run_upstream(upstream_python, tmp_path, UPSTREAM_RUNS, root).splitlines()[-1])
    listing = agent_ls(root)
    expected = {
        "first": dict(path="cv/resnet", alias="first", status="finished", points=11,
                      keys=["acc", "loss"], last_step=10),
        "second": dict(path="nlp/bert/base", alias=None, status="finished", points=7,
                       keys=["loss", "lr", "val_loss"], last_step=4),
        "failed": dict(path="cv/failing", alias="boom", status="failed", points=1,
                       keys=["loss"], last_step=1),
        "rootpath": dict(path="", alias=None, status="finished", points=1, keys=["x"],
                         last_step=1),
        # upstream has no exit hook: the run stays "running" with a dead pid on this host
        "open": dict(path="left/open", alias=None, status="crashed", points=1, keys=["y"],
                     last_step=1),
    }
    assert set(listing) == set(ids.values())
    for name, want in expected.items():
        entry = listing[ids[name]]
        got = {key: entry.get(key) for key in want}
        assert got == want, (name, entry)
        run_dir = Path(entry["dir"])
        assert run_dir.name == ids[name]
        assert expected_listing(run_dir) == {k: want[k] for k in ("points", "keys", "last_step")}
        meta = read_json(run_dir / "meta.json")
        assert entry["created_at"] == pytest.approx(meta["created_at"], abs=1e-3)


# The upstream viewer driver is shared with the Rust compatibility tests.
UPSTREAM_VIEWER = (Path(__file__).resolve().parents[3] / "tests" / "support"
                   / "upstream_viewer.py").read_text()


def test_upstream_viewer_reads_runs_written_by_us(upstream_python, tmp_path, root):
    first = rn.init(path="cv/ours", storage=str(root), alias="ours-1")
    first.set_primary_metric("acc", "max")
    for i in range(5):
        first.log({"loss": 1.0 / (i + 1), "acc": i / 10}, stage="train")
    first.log({"acc": float("nan"), "loss": 0.05}, step=10)
    first.summary({"final": 1})
    first.finish()
    second = rn.init(path="", storage=str(root))
    second.log(x=1)
    second.finish("failed")

    out = json.loads(run_upstream(upstream_python, tmp_path, UPSTREAM_VIEWER, root)
                     .splitlines()[-1])
    assert set(out) == {first.id, second.id}
    one = out[first.id]
    assert one["list"]["path"] == "cv/ours" and one["list"]["alias"] == "ours-1"
    assert one["list"]["status"] == "finished" and one["status"] == "finished"
    assert one["list"]["best_metric_name"] == "acc" and one["list"]["best_metric_value"] == 0.4
    assert one["list"]["run_dir"] == str(first.dir)
    metrics = one["metrics"]
    assert metrics["columns"] == ["global_step", "acc", "loss", "stage", "time"]
    assert [row["global_step"] for row in metrics["rows"]] == [1, 2, 3, 4, 5, 10]
    assert [row["loss"] for row in metrics["rows"]] == [1.0, 0.5, 1 / 3, 0.25, 0.2, 0.05]
    assert metrics["rows"][-1]["acc"] is None  # upstream turns NaN into null
    assert metrics["rows"][0]["stage"] == "train"
    two = out[second.id]
    assert two["list"]["status"] == "failed"
    assert [row["x"] for row in two["metrics"]["rows"]] == [1]
