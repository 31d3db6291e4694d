"""The files a run writes besides events: meta, status, summary, assets, logs, media; the run's
lifecycle inside one process (finish, context manager, active run, heartbeat, flushing)."""

import argparse
import json
import logging
import os
import re
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

import runicorn as rn

from conftest import read_events, read_json, read_lines, wait_for


def test_layout_meta_and_status(root):
    run = rn.init(path="cv/resnet", storage=str(root), alias="first")
    assert run.dir == root / "runs" / "cv" / "resnet" / run.id
    assert re.match(r"^\d{8}_\d{6}_[0-9a-f]{6}$", run.id)
    meta = read_json(run.dir / "meta.json")
    assert list(meta) == ["id", "path", "alias", "created_at", "python", "platform", "hostname",
                          "pid", "storage_dir", "workspace_root", "writer"]
    assert meta["id"] == run.id and meta["path"] == "cv/resnet" and meta["alias"] == "first"
    assert meta["pid"] == os.getpid() and meta["hostname"] == socket.gethostname()
    assert meta["storage_dir"] == str(root)
    assert meta["writer"] == "runicorn-rs-python/" + rn.__version__
    assert meta["python"] == sys.version.split()[0]
    status = read_json(run.dir / "status.json")
    assert status["status"] == "running" and "ended_at" not in status
    assert status["pid"] == os.getpid() and status["host"] == socket.gethostname()
    assert status["heartbeat_interval"] == 10.0 and status["heartbeat_at"] >= status["started_at"]
    if sys.platform.startswith("linux"):
        stat = Path("/proc/self/stat").read_text()
        assert status["proc_start_ticks"] == int(stat[stat.rindex(")") + 2:].split()[19])
    assert read_json(run.dir / "assets.json") == {"code": {}, "config": {}, "datasets": [],
                                                   "pretrained": [], "outputs": []}
    run.finish()
    status = read_json(run.dir / "status.json")
    assert status["status"] == "finished" and status["ended_at"] >= status["started_at"]
    assert "exit_reason" not in status
    # No temporary files are left behind.
    assert not [p for p in os.listdir(str(run.dir)) if p.startswith(".")]


def test_default_and_root_paths(root, monkeypatch):
    monkeypatch.setenv("RUNICORN_DIR", str(root))
    a = rn.init()
    b = rn.init(path="/")
    a.finish()
    b.finish()
    assert a.dir.parent == root / "runs" / "default" and a.path == "default"
    assert b.dir.parent == root / "runs" and read_json(b.dir / "meta.json")["path"] == ""


def test_default_root_is_home(tmp_path):
    run = rn.init(path="p")
    run.finish()
    assert run.dir.parent == tmp_path / "home" / ".runicorn" / "runs" / "p"


def test_given_run_id(root):
    run = rn.init(storage=str(root), run_id="my-run.1")
    run.log({"a": 1})
    run.summary({"s": 1})
    run.finish()
    assert run.dir.name == "my-run.1" and read_json(run.dir / "meta.json")["id"] == "my-run.1"
    # Reusing the id reopens the run (upstream behaviour): the summary is merged, not lost.
    again = rn.init(storage=str(root), run_id="my-run.1")
    again.summary({"t": 2})
    again.finish()
    assert read_json(run.dir / "summary.json") == {"s": 1, "t": 2}


def test_summary_merges_and_is_replaced_atomically(root):
    run = rn.init(storage=str(root))
    run.summary({"a": 1, "b": {"x": 1}})
    run.summary({"b": 2, "c": float("nan")})
    run.summary(d="kw")
    run.summary(None)
    run.finish()
    text = (run.dir / "summary.json").read_text()
    summary = json.loads(text)
    assert summary["a"] == 1 and summary["b"] == 2 and summary["d"] == "kw"
    assert summary["c"] != summary["c"]
    assert text.startswith("{\n  ")  # indented like upstream
    with pytest.raises(TypeError):
        rn.init(storage=str(root)).summary([1, 2])


def test_log_text_lines(root):
    run = rn.init(storage=str(root))
    run.log_text("hello")
    run.log_text("two\nlines\n\nend")
    run.finish()
    lines = read_lines(run.dir / "logs.txt")
    stamp = r"\d\d:\d\d:\d\d"
    assert re.match(stamp + r" \| hello$", lines[0])
    assert re.match(stamp + r" \| two$", lines[1]) and re.match(stamp + r" \| lines$", lines[2])
    assert lines[3] == "" and re.match(stamp + r" \| end$", lines[4])


def test_log_config(root):
    run = rn.init(storage=str(root))
    args = argparse.Namespace(lr=0.1, layers=[1, 2], out=Path("/tmp/x"))
    run.log_config(args=args, extra={"e": 1}, config_files=["a.yaml", Path("b.yaml")])
    run.log_config(extra={"e": 2})
    run.finish()
    assets = read_json(run.dir / "assets.json")
    assert assets["config"] == {"args": {"lr": 0.1, "layers": [1, 2], "out": "/tmp/x"},
                                "extra": {"e": 2}, "config_files": ["a.yaml", "b.yaml"]}
    assert assets["datasets"] == [] and assets["code"] == {}
    with pytest.raises(TypeError):
        rn.init(storage=str(root)).log_config(args=42)


def test_log_image_from_bytes_and_path(root, tmp_path):
    source = tmp_path / "pic.png"
    source.write_bytes(b"\x89PNG fake")
    run = rn.init(storage=str(root))
    run.log({"x": 1})
    first = run.log_image("img", b"\x89PNG bytes", step=3, caption="c")
    second = run.log_image("val/sample", str(source))
    third = run.log_image("p", source, format="JPG")
    with pytest.raises(TypeError):
        run.log_image("bad", 12345)
    run.finish()
    assert re.match(r"^media/\d{13}_[0-9a-f]{6}_img\.png$", first)
    assert re.match(r"^media/\d{13}_[0-9a-f]{6}_val_sample\.png$", second)
    assert third.endswith("_p.jpg")
    assert (run.dir / first).read_bytes() == b"\x89PNG bytes"
    assert (run.dir / second).read_bytes() == b"\x89PNG fake"
    images = read_events(run.dir, "image")
    assert [e["data"] for e in images] == [
        {"key": "img", "path": first, "step": 3, "caption": "c"},
        {"key": "val/sample", "path": second, "step": None, "caption": None},
        {"key": "p", "path": third, "step": None, "caption": None},
    ]
    kinds = [e["type"] for e in read_events(run.dir, None)]
    assert kinds == ["metrics", "image", "image", "image"]


def test_log_image_with_pillow_if_available(root):
    pil = pytest.importorskip("PIL.Image")
    run = rn.init(storage=str(root))
    rel = run.log_image("pil", pil.new("RGB", (4, 4)))
    run.finish()
    assert (run.dir / rel).read_bytes()[:4] == b"\x89PNG"


def test_finish_is_idempotent_and_calls_after_finish_are_ignored(root):
    run = rn.init(storage=str(root))
    run.log({"a": 1})
    run.finish()
    first = (run.dir / "status.json").read_bytes()
    started = time.monotonic()
    run.finish()
    run.finish("failed")
    assert time.monotonic() - started < 1.0
    assert (run.dir / "status.json").read_bytes() == first
    run.log({"a": 2})
    run.summary({"late": 1})
    run.log_text("late")
    assert run.log_image("late", b"x") == ""
    assert len(read_events(run.dir)) == 1
    assert not (run.dir / "summary.json").exists() and not (run.dir / "logs.txt").exists()
    assert run.is_finished


def test_finish_status_values(root):
    for given, written in [("failed", "failed"), ("interrupted", "interrupted"),
                           ("completed", "finished"), ("killed", "interrupted")]:
        run = rn.init(storage=str(root))
        run.finish(given)
        assert read_json(run.dir / "status.json")["status"] == written
    run = rn.init(storage=str(root))
    with pytest.warns(RuntimeWarning, match="unknown status"):
        run.finish("weird")
    assert read_json(run.dir / "status.json")["status"] == "finished"


def test_context_manager_statuses(root):
    with rn.init(storage=str(root)) as ok:
        ok.log({"a": 1})
    assert read_json(ok.dir / "status.json")["status"] == "finished"

    with pytest.raises(ZeroDivisionError):
        with rn.init(storage=str(root)) as bad:
            1 / 0
    status = read_json(bad.dir / "status.json")
    assert status["status"] == "failed" and status["exit_reason"] == "exception: ZeroDivisionError"

    with pytest.raises(KeyboardInterrupt):
        with rn.init(storage=str(root)) as stopped:
            raise KeyboardInterrupt
    status = read_json(stopped.dir / "status.json")
    assert status["status"] == "interrupted"
    assert status["exit_reason"] == "exception: KeyboardInterrupt"

    with pytest.raises(SystemExit):
        with rn.init(storage=str(root)) as exited:
            sys.exit(3)
    status = read_json(exited.dir / "status.json")
    assert status["status"] == "failed" and status["exit_reason"] == "exit code 3"

    with pytest.raises(SystemExit):
        with rn.init(storage=str(root)) as clean:
            sys.exit(0)
    assert read_json(clean.dir / "status.json")["status"] == "finished"


def test_active_run(root):
    assert rn.get_active_run() is None
    a = rn.init(storage=str(root))
    assert rn.get_active_run() is a
    b = rn.init(storage=str(root))
    assert rn.get_active_run() is b
    b.finish()
    assert rn.get_active_run() is None
    a.finish()


def test_logging_handler_lines(root):
    run = rn.init(storage=str(root))
    logger = logging.getLogger("rn.test.handler")
    logger.setLevel(logging.DEBUG)
    handler = run.get_logging_handler()
    logger.addHandler(handler)
    custom = run.get_logging_handler(level=logging.WARNING, fmt="%(levelname)s:%(message)s")
    logger.addHandler(custom)
    try:
        logger.debug("not at INFO")
        logger.info("hello %s", "world")
        logger.warning("careful")
    finally:
        logger.removeHandler(handler)
        logger.removeHandler(custom)
    run.finish()
    lines = read_lines(run.dir / "logs.txt")
    assert len(lines) == 3, lines
    assert re.match(r"^\d\d:\d\d:\d\d \| INFO \| rn\.test\.handler \| hello world$", lines[0])
    assert re.match(r"^\d\d:\d\d:\d\d \| WARNING \| rn\.test\.handler \| careful$", lines[1])
    assert lines[2] == "WARNING:careful"


def test_standalone_handler_follows_the_active_run(root):
    handler = rn.RunicornLoggingHandler()
    logger = logging.getLogger("rn.test.active")
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        logger.info("nobody listens")  # no active run: dropped, no error
        run = rn.init(storage=str(root))
        logger.info("to the run")
        run.finish()
    finally:
        logger.removeHandler(handler)
    lines = read_lines(run.dir / "logs.txt")
    assert len(lines) == 1 and lines[0].endswith("| INFO | rn.test.active | to the run")


def test_background_flush_within_a_second(root):
    run = rn.init(storage=str(root))
    run.log({"a": 1})
    run.log_text("soon")
    run.summary({"s": 1})
    started = time.monotonic()
    assert wait_for(lambda: len(read_events(run.dir)) == 1, timeout=3)
    assert wait_for(lambda: (run.dir / "summary.json").exists(), timeout=3)
    assert wait_for(lambda: (run.dir / "logs.txt").exists(), timeout=3)
    assert time.monotonic() - started < 1.9
    run.finish()


def test_heartbeat_rewrites_status(root):
    run = rn.init(storage=str(root), heartbeat_interval=0.1)
    first = read_json(run.dir / "status.json")
    assert first["heartbeat_interval"] == 0.1
    assert wait_for(lambda: read_json(run.dir / "status.json")["heartbeat_at"]
                    > first["heartbeat_at"] + 0.15, timeout=3)
    run.finish()
    final = read_json(run.dir / "status.json")
    time.sleep(0.3)
    assert read_json(run.dir / "status.json") == final  # no heartbeat after the end


def test_heartbeat_interval_from_env(root, monkeypatch):
    monkeypatch.setenv("RUNICORN_HEARTBEAT_INTERVAL", "2.5")
    run = rn.init(storage=str(root))
    assert read_json(run.dir / "status.json")["heartbeat_interval"] == 2.5
    run.finish()
    with pytest.raises(ValueError):
        rn.init(storage=str(root), heartbeat_interval=0)


def test_log_from_many_threads(root):
    run = rn.init(storage=str(root))

    def work(offset):
        for i in range(2000):
            run.log({"v": offset + i}, step=offset + i)

    threads = [threading.Thread(target=work, args=(k * 10000,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    run.finish()
    values = sorted(e["data"]["v"] for e in read_events(run.dir))
    assert values == sorted(k * 10000 + i for k in range(4) for i in range(2000))


def test_disabled_gives_noop_runs(root, monkeypatch):
    monkeypatch.setenv("RUNICORN_ON", "off")
    assert not rn.is_enabled()
    run = rn.init(path="x", storage=str(root), alias="a")
    assert isinstance(run, rn.NoOpRun) and run.id == "disabled" and run.dir is None
    assert rn.get_active_run() is None
    with run:
        run.log({"a": 1}, step=2, stage="s", extra=1)
        run.summary({"a": 1})
        run.log_text("t")
        assert run.log_image("k", b"x") == ""
        run.log_config(args={"a": 1}, extra={}, config_files=[])
        run.set_primary_metric("a", "min")
        assert isinstance(run.get_logging_handler(logging.INFO, None), logging.Handler)
        run.flush()
    run.finish()
    run.finish()
    assert not root.exists()
    rn.set_enabled(True)
    assert rn.is_enabled()
    real = rn.init(storage=str(root))
    assert isinstance(real, rn.Run)
    real.finish()
    rn.reset_enabled()
    with rn.enabled(True):
        assert rn.is_enabled()
    assert not rn.is_enabled()


def test_noop_has_every_public_method_of_run():
    public = {name for name in dir(rn.Run) if not name.startswith("_")}
    missing = {name for name in public if not hasattr(rn.NoOpRun, name)}
    assert not missing
    for name in ("__enter__", "__exit__"):
        assert hasattr(rn.NoOpRun, name)


def test_capture_env(root, tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.chdir(tmp_path)
    run = rn.init(storage=str(root), capture_env=True)
    run.finish()
    env = read_json(run.dir / "environment.json")
    assert env["python_version"] == sys.version
    assert env["platform"] == read_json(run.dir / "meta.json")["platform"]
    assert env["env_variables"]["CUDA_VISIBLE_DEVICES"] == "0"
    assert env["cwd"] == str(tmp_path) and env["argv"] == sys.argv
    assert env["git_info"] is None  # tmp_path is not in a git work tree
    assert isinstance(env["pip_packages"], list)
    assert any(p.lower().startswith("pytest==") for p in env["pip_packages"])
    assert "gpu_info" in env


def test_optional_libraries_are_never_imported_eagerly(tmp_path, root):
    """Stand-ins for numpy/PIL/torch record that they were imported (then fail like a missing
    package): only passing an array to log_image may import them."""
    from conftest import run_script

    fake = tmp_path / "fake"
    fake.mkdir()
    for name in ("numpy", "PIL", "torch"):
        (fake / (name + ".py")).write_text(
            "open(%r, 'w').close()\nraise ImportError('fake %s')\n"
            % (str(tmp_path / (name + ".imported")), name))
    done = run_script(tmp_path, """
        import os, sys
        sys.path.insert(0, %r)
        import runicorn as rn
        run = rn.init(storage=%r, capture_env=True, capture_console=True)
        run.log({"a": 1.0})
        run.log_image("img", b"png")
        run.summary({"s": 1})
        print("eager:", sorted(f for f in os.listdir(%r) if f.endswith(".imported")))
        class Arr:
            def __array__(self):
                return []
        try:
            run.log_image("arr", Arr())
        except TypeError as error:
            print("TypeError:", error)
        run.finish()
    """ % (str(fake), str(root), str(tmp_path)))
    assert done.returncode == 0, done.stderr
    assert "eager: []" in done.stdout
    assert "needs Pillow and numpy" in done.stdout


def test_upstream_only_init_arguments(root, tmp_path):
    run = rn.init(storage=str(root), workspace_root=str(tmp_path), snapshot_code=False,
                  snapshot_format="zip", force_snapshot=False)
    run.finish()
    assert read_json(run.dir / "meta.json")["workspace_root"] == str(tmp_path)
    assert not (run.dir / "code_snapshot.zip").exists()
    with pytest.raises(ValueError, match="snapshot_format"):
        rn.init(storage=str(root), snapshot_code=True, snapshot_format="tar")


def test_summary_records_values_as_they_were_at_the_call(root):
    # Like upstream (which writes summary.json during the call), a later change to an object
    # passed to summary() must not change what is recorded.
    run = rn.init(storage=str(root))
    best = {"acc": 0.9, "epochs": [1, 2]}
    run.summary({"best": best}, last=best["epochs"])
    best["acc"] = 0.1
    best["epochs"].append(3)
    run.finish()
    assert read_json(run.dir / "summary.json") == {"best": {"acc": 0.9, "epochs": [1, 2]},
                                                   "last": [1, 2]}


def test_logging_handler_on_a_disabled_run_never_raises(root, monkeypatch):
    monkeypatch.setenv("RUNICORN_ON", "0")
    run = rn.init(storage=str(root))
    handler = rn.RunicornLoggingHandler(run=run)
    logger = logging.getLogger("rn.test.noop")
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        logger.info("training goes on")  # must not raise into the caller
    finally:
        logger.removeHandler(handler)
    run.finish()
    assert not root.exists()


def test_log_config_keeps_nested_mapping_types_as_objects(root):
    # Config objects such as OmegaConf's DictConfig/ListConfig (used by Hydra) are Mappings and
    # Sequences without being dicts and lists; their nested sections must stay JSON objects.
    from collections.abc import Mapping, Sequence

    class Config(Mapping):
        def __init__(self, **items):
            self._items = items

        def __getitem__(self, key):
            return self._items[key]

        def __iter__(self):
            return iter(self._items)

        def __len__(self):
            return len(self._items)

    class Items(Sequence):
        def __init__(self, *items):
            self._items = items

        def __getitem__(self, index):
            return self._items[index]

        def __len__(self):
            return len(self._items)

    class Missing(Config):  # OmegaConf raises on reading a "???" value
        def __getitem__(self, key):
            raise LookupError("missing mandatory value")

        def __str__(self):
            return "{'lr': '???'}"

    cfg = Config(model=Config(name="resnet", depth=50), data=Config(sizes=Items(224, 256)))
    run = rn.init(storage=str(root))
    run.log_config(args=cfg, extra={"optim": Config(lr=0.1), "sched": Missing(lr=1)})
    run.summary({"cfg": Config(a=Items(1))})
    run.log({"loss": 0.5, "cfg": Config(a=1)})
    run.finish()
    config = read_json(run.dir / "assets.json")["config"]
    assert config["args"] == {"model": {"name": "resnet", "depth": 50},
                              "data": {"sizes": [224, 256]}}
    assert config["extra"] == {"optim": {"lr": 0.1}, "sched": "{'lr': '???'}"}
    assert read_json(run.dir / "summary.json") == {"cfg": {"a": [1]}}
    assert read_events(run.dir)[0]["data"]["cfg"] == {"a": 1}


def test_init_takes_upstreams_positional_arguments(root, tmp_path):
    # upstream: init(path, storage, run_id, alias, capture_env, snapshot_code, workspace_root,
    #                snapshot_format, force_snapshot, capture_console, tqdm_mode)
    from runicorn.console import TeeStream

    workspace = tmp_path / "ws"
    workspace.mkdir()
    saved = sys.stdout
    try:
        run = rn.init("p", str(root), "pos", "a", False, False, str(workspace), "zip", False,
                      True, "all")
        assert isinstance(sys.stdout, TeeStream)
        print("captured")
        run.finish()
    finally:
        sys.stdout = saved
    meta = read_json(run.dir / "meta.json")
    assert (meta["path"], meta["id"], meta["alias"]) == ("p", "pos", "a")
    assert meta["workspace_root"] == str(workspace)
    assert read_lines(run.dir / "logs.txt")[0].endswith("] captured")
