"""Console capture: the terminal sees exactly what was written; logs.txt gets ``[HH:MM:SS] line``
lines with ``\\r`` progress redraws handled per ``tqdm_mode``."""

import io
import re
import sys

import pytest

import runicorn as rn

from conftest import read_lines, run_script

STAMP = re.compile(r"^\[\d\d:\d\d:\d\d\] ")

PROGRESS = ["epoch 1\n", "\r  0%|", "\r 50%|#####", "\r100%|##########", "\n",
            "\x1b[32mgreen\x1b[0m\n", "partial ", "line\n", "\n", "   \n", "a\r\nb\n",
            "dos\r\n", "mid\rdone\n", "tail without newline"]


def captured(root, mode):
    out, err = io.StringIO(), io.StringIO()
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        run = rn.init(storage=str(root), capture_console=True, tqdm_mode=mode)
        assert sys.stdout is not out
        for chunk in PROGRESS:
            sys.stdout.write(chunk)
        print("to stderr", file=sys.stderr)
        sys.stdout.flush()
        run.finish()
        assert sys.stdout is out and sys.stderr is err  # streams restored
    finally:
        sys.stdout, sys.stderr = saved
    assert out.getvalue() == "".join(PROGRESS)  # the terminal is unchanged
    assert err.getvalue() == "to stderr\n"
    lines = read_lines(run.dir / "logs.txt")
    for line in lines:
        assert STAMP.match(line), line
    return [STAMP.sub("", line) for line in lines]


def test_smart_mode_keeps_last_state(root):
    assert captured(root, "smart") == [
        "epoch 1", "100%|##########", "\x1b[32mgreen\x1b[0m", "partial line", "a", "b", "dos",
        "done", "to stderr", "tail without newline"]


def test_all_mode_keeps_every_redraw(root):
    assert captured(root, "all") == [
        "epoch 1", "  0%|", " 50%|#####", "100%|##########", "\x1b[32mgreen\x1b[0m",
        "partial line", "a", "b", "dos", "mid", "done", "to stderr", "tail without newline"]


def test_none_mode_drops_redrawn_lines(root):
    assert captured(root, "none") == [
        "epoch 1", "\x1b[32mgreen\x1b[0m", "partial line", "a", "b", "dos", "to stderr",
        "tail without newline"]


def test_bad_tqdm_mode(root):
    with pytest.raises(ValueError):
        rn.init(storage=str(root), capture_console=True, tqdm_mode="fancy")


def test_tee_proxies_stream_attributes(root):
    out = io.StringIO()
    saved = sys.stdout
    sys.stdout = out
    try:
        run = rn.init(storage=str(root), capture_console=True)
        assert sys.stdout.writable() and not sys.stdout.isatty()
        assert sys.stdout.getvalue() == ""  # unknown attributes reach the real stream
        run.finish()
    finally:
        sys.stdout = saved


def test_replaced_tee_is_left_in_place_but_stops_logging(root):
    out = io.StringIO()
    saved = sys.stdout
    sys.stdout = out
    try:
        run = rn.init(storage=str(root), capture_console=True)
        ours = sys.stdout
        wrapper = io.StringIO()
        sys.stdout = wrapper  # someone else replaced it meanwhile
        run.finish()
        assert sys.stdout is wrapper
        ours.write("after finish\n")
        assert out.getvalue() == "after finish\n"
    finally:
        sys.stdout = saved
    assert not (run.dir / "logs.txt").exists()


def test_console_capture_in_a_real_process_keeps_terminal_bytes(tmp_path, root):
    code = """
        import sys, runicorn as rn
        run = rn.init(storage=%r, capture_console=True)
        print("hello")
        for i in range(3):
            sys.stdout.write("\\rstep %%d" %% i)
        sys.stdout.write("\\n")
        print("\\x1b[1mbold\\x1b[0m", file=sys.stderr)
        run.log_text("from log_text")
        run.finish()
        print("after finish")
        print(run.dir)
    """ % str(root)
    done = run_script(tmp_path, code, binary=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(b"hello\n\rstep 0\rstep 1\rstep 2\nafter finish\n")
    assert done.stderr == b"\x1b[1mbold\x1b[0m\n"
    out = done.stdout.decode().split("\n")
    lines = [STAMP.sub("", line) if STAMP.match(line) else line
             for line in read_lines(out[3] + "/logs.txt")]
    assert lines[:3] == ["hello", "step 2", "\x1b[1mbold\x1b[0m"]
    assert lines[3].endswith("| from log_text") and len(lines) == 4
