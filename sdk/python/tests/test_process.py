"""How a run ends when the process ends: normally without finish(), by an uncaught exception,
SIGTERM, SIGINT, SIGKILL (then the agent must call it crashed), and in a forked child."""

import os
import signal
import time

import pytest

from conftest import agent_ls, read_events, read_json, read_lines, run_script, start_script

FAST = {"RUNICORN_FLUSH_INTERVAL": "0.05"}

LOOP = """
    import sys, time, runicorn as rn
    run = rn.init(path="proc", storage=%r, capture_console=True)
    for i in range(5):
        run.log({"loss": 1.0 / (i + 1)})
    print("ready", run.dir, flush=True)
    i = 5
    while True:
        run.log({"loss": 1.0 / (i + 1)})
        i += 1
        time.sleep(0.01)
"""


def wait_ready(proc):
    line = proc.stdout.readline()
    assert line.startswith("ready "), (line, proc.stderr.read() if proc.poll() is not None else "")
    return line.split(" ", 1)[1].strip()


def test_exit_without_finish_is_finished(tmp_path, root):
    done = run_script(tmp_path, """
        import runicorn as rn
        run = rn.init(storage=%r)
        run.log({"a": 1})
        run.summary({"s": 2})
        print(run.dir)
    """ % str(root))
    assert done.returncode == 0, done.stderr
    run_dir = done.stdout.strip()
    assert read_json(run_dir + "/status.json")["status"] == "finished"
    assert len(read_events(run_dir)) == 1 and read_json(run_dir + "/summary.json") == {"s": 2}


def test_uncaught_exception_is_failed(tmp_path, root):
    done = run_script(tmp_path, """
        import runicorn as rn
        run = rn.init(storage=%r, capture_console=True)
        print(run.dir, flush=True)
        run.log({"a": 1})
        raise KeyError("missing")
    """ % str(root))
    assert done.returncode == 1
    assert "KeyError: 'missing'" in done.stderr  # the original hook still prints the traceback
    run_dir = done.stdout.strip()
    status = read_json(run_dir + "/status.json")
    assert status["status"] == "failed" and status["exit_reason"] == "exception: KeyError"
    assert len(read_events(run_dir)) == 1
    logs = "\n".join(read_lines(run_dir + "/logs.txt"))
    assert "Traceback (most recent call last):" in logs and "KeyError: 'missing'" in logs


def test_sigterm_is_interrupted_and_still_kills(tmp_path, root):
    proc = start_script(tmp_path, LOOP % str(root), **FAST)
    run_dir = wait_ready(proc)
    time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == -signal.SIGTERM  # died of SIGTERM, as without the SDK
    status = read_json(run_dir + "/status.json")
    assert status["status"] == "interrupted" and status["exit_reason"] == "signal: SIGTERM"
    events = read_events(run_dir)
    assert len(events) >= 5
    assert [e["data"]["global_step"] for e in events] == list(range(1, len(events) + 1))
    assert "ready" in read_lines(run_dir + "/logs.txt")[0]


def test_sigint_is_interrupted_and_raises_keyboardinterrupt(tmp_path, root):
    code = """
    import sys, time, runicorn as rn
    run = rn.init(path="proc", storage=%r)
    print("ready", run.dir, flush=True)
    try:
        while True:
            run.log({"x": 1})
            time.sleep(0.01)
    except KeyboardInterrupt:
        print("caught KeyboardInterrupt", flush=True)
        raise
    """ % str(root)
    proc = start_script(tmp_path, code, **FAST)
    run_dir = wait_ready(proc)
    time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=10)
    out = proc.stdout.read()
    assert "caught KeyboardInterrupt" in out
    assert code == -signal.SIGINT  # what Python does without the SDK
    status = read_json(run_dir + "/status.json")
    assert status["status"] == "interrupted" and status["exit_reason"] == "signal: SIGINT"


def test_caught_keyboardinterrupt_then_normal_exit_is_interrupted(tmp_path, root):
    code = """
    import time, runicorn as rn
    run = rn.init(storage=%r)
    try:  # "ready" inside the try: a Ctrl-C right after it is caught too
        print("ready", run.dir, flush=True)
        while True:
            time.sleep(0.01)
    except KeyboardInterrupt:
        print("saving a checkpoint", flush=True)
    later = rn.init(storage=%r)   # opened after the Ctrl-C: ends normally
    print(later.dir, flush=True)
    """ % (str(root), str(root))
    proc = start_script(tmp_path, code, **FAST)
    run_dir = wait_ready(proc)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 0
    status = read_json(run_dir + "/status.json")
    assert status["status"] == "interrupted" and status["exit_reason"] == "signal: SIGINT"
    later_dir = proc.stdout.read().split()[-1]
    assert read_json(later_dir + "/status.json")["status"] == "finished"


def test_custom_sigterm_handler_is_respected(tmp_path, root):
    code = """
    import signal, sys, time, runicorn as rn
    signal.signal(signal.SIGTERM, lambda s, f: (print("user handler", flush=True), sys.exit(7)))
    run = rn.init(storage=%r)
    print("ready", run.dir, flush=True)
    while True:
        time.sleep(0.01)
    """ % str(root)
    proc = start_script(tmp_path, code, **FAST)
    run_dir = wait_ready(proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 7
    assert "user handler" in proc.stdout.read()
    # sys.exit(7) ends the run at exit; the SDK did not replace the user's handler.
    assert read_json(run_dir + "/status.json")["status"] == "finished"


def test_sigkill_leaves_running_and_agent_says_crashed(tmp_path, root):
    proc = start_script(tmp_path, LOOP % str(root), **FAST)
    run_dir = wait_ready(proc)
    time.sleep(0.3)
    proc.kill()
    assert proc.wait(timeout=10) == -signal.SIGKILL
    status = read_json(run_dir + "/status.json")
    assert status["status"] == "running" and status["pid"] == proc.pid
    assert len(read_events(run_dir)) >= 5  # flushed in the background before the kill
    run_id = os.path.basename(run_dir)
    listing = agent_ls(root)
    assert listing[run_id]["status"] == "crashed", listing[run_id]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_does_not_end_the_parents_run(tmp_path, root):
    done = run_script(tmp_path, """
        import os, runicorn as rn
        run = rn.init(storage=%r)
        run.log({"parent": 1})
        run.flush()
        pid = os.fork()
        if pid == 0:
            run.log({"child": 1})   # ignored in the child
            run.finish("failed")    # ignored in the child
            os._exit(0)
        os.waitpid(pid, 0)
        pid = os.fork()
        if pid == 0:
            import sys
            sys.exit(0)             # atexit in a child must not finish the parent's run
        os.waitpid(pid, 0)
        import json
        print(json.load(open(str(run.dir / "status.json")))["status"])
        run.log({"parent": 2})
        run.finish()
        print(run.dir)
    """ % str(root))
    assert done.returncode == 0, done.stderr
    first, run_dir = done.stdout.split()
    assert first == "running"
    assert [e["data"].get("parent") for e in read_events(run_dir)] == [1, 2]
    assert read_json(run_dir + "/status.json")["status"] == "finished"


@pytest.mark.parametrize("error, status, reason", [
    ("ValueError('x')", "failed", "exception: ValueError"),
    ("KeyboardInterrupt()", "interrupted", "exception: KeyboardInterrupt"),
])
def test_uncaught_exception_after_the_excepthook_was_replaced(tmp_path, root, error, status,
                                                              reason):
    # Libraries such as rich.traceback.install() replace sys.excepthook without chaining to
    # ours; an uncaught exception must still not be recorded as "finished".
    done = run_script(tmp_path, """
        import sys, runicorn as rn
        run = rn.init(storage=%r)
        print(run.dir, flush=True)
        sys.excepthook = lambda t, v, tb: print("pretty", t.__name__, file=sys.stderr)
        run.log({"a": 1})
        raise %s
    """ % (str(root), error))
    assert done.returncode != 0 and "pretty" in done.stderr
    run_dir = done.stdout.strip()
    found = read_json(run_dir + "/status.json")
    assert (found["status"], found.get("exit_reason")) == (status, reason)
    assert len(read_events(run_dir)) == 1


def test_exception_shown_by_a_replaced_hook_but_survived_is_not_a_failure(tmp_path, root):
    # sys.last_value is also set when an exception is only shown (code.interact, IPython) and
    # the program goes on: only an exception that ended the program fails the run.
    done = run_script(tmp_path, """
        import code, sys, runicorn as rn
        run = rn.init(storage=%r)
        sys.excepthook = lambda t, v, tb: None
        code.InteractiveInterpreter().runsource("1 / 0")
        assert sys.last_type is ZeroDivisionError
        print(run.dir, flush=True)
    """ % str(root))
    assert done.returncode == 0, done.stderr
    assert read_json(done.stdout.strip() + "/status.json")["status"] == "finished"


def test_sigterm_handler_that_chains_to_ours_keeps_its_graceful_stop(tmp_path, root):
    # PyTorch Lightning installs its own SIGTERM handler in trainer.fit() and also calls the
    # handler that was there before (ours) so that it can stop gracefully. Without the SDK
    # the previous handler is SIG_DFL, which it does not call, and the program goes on: calling
    # ours must not kill it either. The run then ends as interrupted when the program exits.
    code = """
    import signal, time, runicorn as rn
    run = rn.init(storage=%r)
    stop = []
    previous = signal.getsignal(signal.SIGTERM)

    def composed(signum, frame):
        stop.append(signum)
        if previous not in (None, signal.SIG_DFL, signal.SIG_IGN):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, composed)
    print("ready", run.dir, flush=True)
    while not stop:
        run.log({"x": 1})
        time.sleep(0.01)
    run.log({"checkpoint": 1})
    print("graceful stop", flush=True)
    """ % str(root)
    proc = start_script(tmp_path, code, **FAST)
    run_dir = wait_ready(proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0, proc.stderr.read()
    assert "graceful stop" in proc.stdout.read()
    status = read_json(run_dir + "/status.json")
    assert status["status"] == "interrupted" and status["exit_reason"] == "signal: SIGTERM"
    assert read_events(run_dir)[-1]["data"]["checkpoint"] == 1
