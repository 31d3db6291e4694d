"""Console capture: tee ``sys.stdout``/``sys.stderr`` into the run's ``logs.txt``.

The terminal gets exactly what the program wrote. The log gets complete lines, each prefixed
``[HH:MM:SS] ``, ANSI escapes kept, blank lines left out. Progress bars that redraw a line with
``\\r`` are handled by ``tqdm_mode``:

- ``"smart"`` (default): ``\\r`` restarts the line; only its last state before ``\\n`` is kept.
- ``"all"``: every ``\\r``-terminated state becomes a line of its own.
- ``"none"``: lines that were redrawn with ``\\r`` are left out.

``\\r\\n`` counts as a plain line end, also when the ``\\r`` ends one write and the ``\\n`` starts
the next (``print(..., end="\\r")`` then ``print()``): a ``\\r`` that ends a write is held until the
next write tells which it is. A line still open when capture stops is written as is. Bytes
written to a stream that accepts them are logged as UTF-8 text.

A tee taken off ``sys.stdout``/``sys.stderr`` is kept alive for the life of the process:
``print()`` in another thread may still be writing to it through a borrowed reference (CPython
3.11 and earlier), and freeing it under that ``print()`` would crash the interpreter.
"""

import re
import sys
import threading
import time
from typing import Callable, List

TQDM_MODES = ("smart", "all", "none")

_LINE_BREAKS = re.compile(r"[\r\n]")

# Tees taken off sys.stdout/sys.stderr: never freed (see the module docstring). They no longer
# hold their run.
_retired = []  # type: List[TeeStream]


def _ignore(text: str) -> None:
    return None


def _as_text(data) -> str:
    if isinstance(data, (bytes, bytearray)):
        return bytes(data).decode("utf-8", errors="replace")
    return str(data)


class _Clock:
    """``HH:MM:SS`` of now, recomputed at most once a second."""

    def __init__(self) -> None:
        self._second = -1
        self._text = ""

    def text(self) -> str:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._text = time.strftime("%H:%M:%S", time.localtime(now))
        return self._text


class TeeStream:
    """Stands in for a text stream: writes through to it and turns what passes into log lines."""

    def __init__(self, original, emit: Callable[[str], None], tqdm_mode: str, clock: _Clock) -> None:
        self._original = original
        self._emit = emit
        self._mode = tqdm_mode
        self._clock = clock
        self._lock = threading.RLock()
        self._current = ""  # the line being built
        self._redrawn = False  # "none" mode: the current line contained a \r
        self._cr = False  # the last write ended with a \r not yet applied
        self.active = True

    @property
    def original(self):
        return self._original

    def write(self, text):
        result = self._original.write(text)
        if self.active and text:
            try:
                with self._lock:
                    self._capture(text if isinstance(text, str) else _as_text(text))
            except Exception:
                pass
        return result

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._original.flush()

    def _line(self, line: str) -> None:
        if line.strip():
            self._emit("[%s] %s\n" % (self._clock.text(), line))

    def _capture(self, text: str) -> None:
        if self._cr:
            self._cr = False
            text = "\r" + text
        if text.endswith("\r"):  # a line end if the next write starts with \n, else a redraw
            self._cr = True
            text = text[:-1]
            if not text:
                return
        if "\r\n" in text:
            text = text.replace("\r\n", "\n")
        mode = self._mode
        if mode == "all":
            pieces = _LINE_BREAKS.split(text)
            if len(pieces) > 1:
                self._line(self._current + pieces[0])
                for piece in pieces[1:-1]:
                    self._line(piece)
                self._current = pieces[-1]
            else:
                self._current += text
            return
        pieces = text.split("\n")
        for index, piece in enumerate(pieces):
            if "\r" in piece:
                self._redrawn = True
                if mode == "smart":
                    self._current = piece[piece.rindex("\r") + 1:]
            else:
                self._current += piece
            if index < len(pieces) - 1:  # the piece ended with \n
                if not (mode == "none" and self._redrawn):
                    self._line(self._current)
                self._current = ""
                self._redrawn = False

    def close_line(self) -> None:
        """Log the line still open, if any (called when capture stops)."""
        with self._lock:
            self._cr = False  # the line ended with \r: it stays on the terminal as it is
            if self._current and not (self._mode == "none" and self._redrawn):
                self._line(self._current)
            self._current = ""
            self._redrawn = False

    # The rest of the stream interface is the original stream's.
    def isatty(self) -> bool:
        return self._original.isatty()

    def fileno(self) -> int:
        return self._original.fileno()

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    @property
    def encoding(self):
        return getattr(self._original, "encoding", "utf-8")

    @property
    def errors(self):
        return getattr(self._original, "errors", None)

    def __getattr__(self, name):
        return getattr(self._original, name)


class ConsoleCapture:
    """Installs the tees on ``sys.stdout``/``sys.stderr`` and takes them away again."""

    def __init__(self, emit: Callable[[str], None], tqdm_mode: str = "smart") -> None:
        if tqdm_mode not in TQDM_MODES:
            raise ValueError("tqdm_mode must be one of %s, got %r" % (", ".join(TQDM_MODES), tqdm_mode))
        self._emit = emit
        self._mode = tqdm_mode
        self._tees = []  # type: List[TeeStream]

    def start(self) -> None:
        clock = _Clock()
        for name in ("stdout", "stderr"):
            original = getattr(sys, name)
            if original is None:
                continue
            tee = TeeStream(original, self._emit, self._mode, clock)
            setattr(sys, name, tee)
            self._tees.append(tee)

    def stop(self) -> None:
        """Log open lines and restore the streams (unless someone replaced ours meanwhile: then
        ours stays in their chain as a plain pass-through)."""
        for tee in self._tees:
            tee.close_line()
        self.detach()

    def detach(self) -> None:
        """Stop logging and restore the streams without touching any lock (after a fork)."""
        for tee in self._tees:
            tee.active = False
            _retired.append(tee)  # before it leaves sys: a print() may still be using it
            for name in ("stdout", "stderr"):
                if getattr(sys, name) is tee:
                    setattr(sys, name, tee.original)
            tee._emit = _ignore
        self._tees = []

