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


@pytest.mark.parametrize("mode", ["smart", "all", "none"])
def test_carriage_return_at_the_end_of_a_write(root, mode):
    # print(..., end="\r") writes the text, then "\r" on its own; a later print() or a "\r\n"
    # split over two writes ends that line: its last state must not be lost.
    out = io.StringIO()
    saved = sys.stdout
    sys.stdout = out
    try:
        run = rn.init(storage=str(root), capture_console=True, tqdm_mode=mode)
        for pct in (50, 100):
            print("epoch 1 %d%%" % pct, end="\r")
        print()
        sys.stdout.write("dos line\r")
        sys.stdout.write("\n")
        sys.stdout.write("old\r")
        sys.stdout.write("new\n")
        sys.stdout.write("left open\r")
        run.finish()
    finally:
        sys.stdout = saved
    lines = [STAMP.sub("", line) for line in read_lines(run.dir / "logs.txt")]
    expected = {
        "smart": ["epoch 1 100%", "dos line", "new", "left open"],
        "all": ["epoch 1 50%", "epoch 1 100%", "dos line", "old", "new", "left open"],
        "none": ["dos line", "left open"],
    }[mode]
    assert lines == expected


def test_bytes_written_to_a_stream_that_takes_them_are_logged_as_text(root):
    class AnyStream(io.StringIO):
        def write(self, text):
            if isinstance(text, bytes):
                text = text.decode("utf-8")
            return super().write(text)

    saved = sys.stdout
    sys.stdout = AnyStream()
    try:
        run = rn.init(storage=str(root), capture_console=True)
        sys.stdout.write("café ".encode("utf-8"))
        sys.stdout.write("text\n")
        run.finish()
    finally:
        sys.stdout = saved
    assert [STAMP.sub("", line) for line in read_lines(run.dir / "logs.txt")] == ["café text"]


def test_finish_from_another_thread_while_threads_print_does_not_crash(tmp_path, root):
    # print() holds a borrowed reference to sys.stdout while it writes (CPython 3.11 and
    # earlier): when finish() restores the streams from another thread, the tee it replaces
    # must stay alive, or that print() uses freed memory and the process segfaults.
    done = run_script(tmp_path, """
        import sys, threading, time, runicorn as rn
        for _ in range(10):
            run = rn.init(storage=%r, capture_console=True)
            stop = []
            def printer():
                while not stop:
                    print("line")
            t = threading.Thread(target=printer)
            t.start()
            time.sleep(0.03)
            ender = threading.Thread(target=run.finish)
            ender.start()
            ender.join()
            stop.append(1)
            t.join()
        print("survived", file=sys.stderr)
    """ % str(root), timeout=60)
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert "survived" in done.stderr
