"""Write errors never stop training: a full disk (a real tiny tmpfs when we may mount one, else
``RLIMIT_FSIZE``), a deleted run directory, a read-only directory. One warning per run; strict
mode raises."""

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time

import pytest

import runicorn as rn

from conftest import child_env, read_json, write_script

TRAIN = """
    import sys, time, runicorn as rn
    run = rn.init(path="full", storage=sys.argv[1], capture_console=True)
    for i in range(3000):
        run.log({"loss": 1.0 / (i + 1), "acc": i / 3000.0, "lr": 0.001})
        if i % 100 == 0:
            run.log_text("step %d" % i)
            print("progress", i)
        if i % 300 == 0:
            time.sleep(0.06)   # let the background flusher run into the full disk
            run.summary({"at": i})
    run.finish()
    print("loop done", i, flush=True)
"""


def _try_mount_tmpfs(target):
    if not sys.platform.startswith("linux") or os.geteuid() != 0 or not shutil.which("mount"):
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(target)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return done.returncode == 0


def _limit_file_size():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))


def _runicorn_warnings(stderr):
    return [line for line in stderr.splitlines()
            if "runicorn" in line and "RuntimeWarning" in line]


@pytest.mark.parametrize("how", ["tmpfs", "rlimit"])
def test_full_disk_does_not_stop_training(tmp_path, how):
    storage = tmp_path / "mnt"
    storage.mkdir()
    mounted = how == "tmpfs" and _try_mount_tmpfs(storage)
    preexec = None
    try:
        if mounted:
            # Fill most of it, leaving room to create the run and a few flushes.
            with open(str(storage / "filler"), "wb") as f:
                try:
                    f.write(b"x" * (40 * 1024))
                except OSError:
                    pass
        else:
            preexec = _limit_file_size
        script = write_script(tmp_path, TRAIN)
        done = subprocess.run([sys.executable, str(script), str(storage)],
                              env=child_env(RUNICORN_FLUSH_INTERVAL="0.05"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60,
                              universal_newlines=True, preexec_fn=preexec)
        assert done.returncode == 0, done.stderr
        assert "loop done 2999" in done.stdout
        warnings = _runicorn_warnings(done.stderr)
        assert len(warnings) == 1, done.stderr
        assert "training continues" in warnings[0] and str(storage) in warnings[0]
        # Whatever reached the disk is whole lines of valid JSON (no torn or doubled line
        # in the middle; only the very end may be cut).
        for events in storage.rglob("events.jsonl"):
            lines = events.read_bytes().split(b"\n")
            for line in lines[:-1]:
                json.loads(line.decode())
            assert len(lines) > 2
        # The final status is recorded even on the full disk.
        statuses = [read_json(p)["status"] for p in storage.rglob("status.json")]
        assert statuses == ["finished"]
    finally:
        if mounted:
            subprocess.run(["umount", str(storage)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_deleted_run_directory_warns_once_and_keeps_going(root):
    run = rn.init(storage=str(root))
    run.log({"a": 1})
    run.flush()
    shutil.rmtree(str(run.dir))
    with pytest.warns(RuntimeWarning) as caught:
        for i in range(50):
            run.log({"a": i})
            run.log_text("x")
            run.summary({"i": i})
            run.flush()
        assert run.log_image("img", b"data") == ""
        run.finish()
    ours = [w for w in caught if "runicorn" in str(w.message)]
    assert len(ours) == 1
    message = str(ours[0].message)
    assert str(run.dir) in message and "training continues" in message
    assert not run.dir.exists()


def test_recovers_when_the_directory_comes_back(root):
    run = rn.init(storage=str(root))
    run.log({"a": 0})
    run.flush()
    shutil.rmtree(str(run.dir))
    with pytest.warns(RuntimeWarning, match="events.jsonl"):
        run.log({"a": 1})
        run.flush()
    run.dir.mkdir()
    run.log({"a": 2})
    run.finish()
    values = [json.loads(l)["data"]["a"] for l in (run.dir / "events.jsonl").read_text().splitlines()]
    assert values == [1, 2]  # what failed to be written was kept and written later
    assert read_json(run.dir / "status.json")["status"] == "finished"


@pytest.mark.skipif(os.name != "posix", reason="posix permissions")
def test_unwritable_root_warns_at_init(tmp_path):
    if os.geteuid() == 0:
        # root ignores permissions: use a path below a regular file instead
        blocker = tmp_path / "file"
        blocker.write_text("x")
        storage = blocker / "root"
    else:
        storage = tmp_path / "ro"
        storage.mkdir(mode=0o500)
    with pytest.warns(RuntimeWarning, match="could not create the run directory"):
        run = rn.init(storage=str(storage))
    run.log({"a": 1})
    run.finish()


def test_strict_mode_raises(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError):
        rn.init(storage=str(blocker / "root"), strict=True)
    monkeypatch.setenv("RUNICORN_STRICT", "1")
    with pytest.raises(OSError):
        rn.init(storage=str(blocker / "root2"))


def test_strict_mode_raises_background_errors_at_the_next_call(root):
    run = rn.init(storage=str(root), strict=True)
    shutil.rmtree(str(run.dir))
    run.log({"a": 1})
    with pytest.raises(OSError):
        for _ in range(300):  # the background flusher finds the error within a second
            run.log({"a": 2})
            time.sleep(0.01)
    with pytest.raises(OSError):
        run.finish()


def test_reopened_run_does_not_glue_its_first_line_to_a_torn_tail(root):
    # A writer killed in the middle of a write (OOM killer, full disk at exit) leaves a last
    # line without its newline; resuming the run with the same id must start on a new line.
    first = rn.init(storage=str(root), run_id="resume")
    first.log({"a": 1})
    first.finish()
    events = first.dir / "events.jsonl"
    with open(str(events), "ab") as f:
        f.write(b'{"ts": 1795696136.31, "type": "metr')
    again = rn.init(storage=str(root), run_id="resume")
    again.log({"a": 2})
    again.finish()
    lines = events.read_bytes().split(b"\n")
    assert lines[1] == b'{"ts": 1795696136.31, "type": "metr'  # now a complete, corrupt line
    assert json.loads(lines[2].decode())["data"]["a"] == 2
    assert lines[3:] == [b""]
