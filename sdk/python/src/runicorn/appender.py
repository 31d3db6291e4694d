"""Appending bytes to an append-only run file (``events.jsonl``, ``logs.txt``) without losing or
tearing lines when the disk misbehaves.

Writes go straight to an ``O_APPEND`` file descriptor, so each flush is one ``write()`` whose
progress is known: after a short write or an error (disk full, file too large, directory gone)
the bytes that did not reach the file are kept and written first on the next attempt. A line cut
in half by a failure is therefore completed later, never duplicated. What is kept is bounded;
past the bound whole lines are dropped (and counted).

On request (``events.jsonl``), a file that already ends inside a line when it is first opened (a
previous writer of a reopened run was killed mid-write) gets a ``\\n`` first, so our first line
is not glued to that torn tail.
"""

import errno
import os
from pathlib import Path

MAX_PENDING_BYTES = 64 * 1024 * 1024

_OPEN_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)


class Appender:
    """One append-only file of a run."""

    def __init__(self, path: Path, end_torn_tail: bool = False) -> None:
        self.path = Path(path)
        self._fd = -1
        self._pending = b""
        self._mid_line = False  # the file currently ends inside a line we still hold the rest of
        self._check_tail = end_torn_tail  # until the first open: end a line left open by others
        self.dropped_bytes = 0

    @property
    def has_pending(self) -> bool:
        return bool(self._pending)

    def _descriptor(self) -> int:
        if self._fd >= 0:
            try:
                if os.fstat(self._fd).st_nlink == 0:  # the file was deleted under us
                    self._close_fd()
            except OSError:
                self._close_fd()
        if self._fd < 0:
            self._fd = os.open(str(self.path), _OPEN_FLAGS, 0o644)
        return self._fd

    def _ends_inside_line(self) -> bool:
        """Whether the file, as we first find it, ends with a line that has no ``\\n``."""
        self._check_tail = False
        try:
            with open(str(self.path), "rb") as f:
                f.seek(0, os.SEEK_END)
                if f.tell() == 0:
                    return False
                f.seek(-1, os.SEEK_END)
                return f.read(1) != b"\n"
        except OSError:
            return False

    def write(self, data: bytes) -> None:
        """Append ``data`` after anything held back from earlier failures. Raises OSError."""
        if self._pending:
            data = self._pending + data
            self._pending = b""
        if not data:
            return
        done = 0
        try:
            fd = self._descriptor()
            if self._check_tail and self._ends_inside_line():
                data = b"\n" + data
            view = memoryview(data)
            while done < len(data):
                written = os.write(fd, view[done:])
                if written <= 0:
                    raise OSError(errno.EIO, "write returned %d" % written)
                done += written
        except OSError:
            self._keep(data, done)
            raise
        self._mid_line = False

    def _keep(self, data: bytes, done: int) -> None:
        if done:
            self._mid_line = data[done - 1:done] != b"\n"
        rest = data[done:]
        if len(rest) > MAX_PENDING_BYTES:
            # Keep only the end of a line already half on disk; drop the rest, whole lines.
            cut = rest.find(b"\n") + 1 if self._mid_line else 0
            self.dropped_bytes += len(rest) - cut
            rest = rest[:cut]
        self._pending = rest

    def _close_fd(self) -> None:
        if self._fd >= 0:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = -1

    def close(self) -> None:
        """Close the descriptor (pending bytes stay held; a later write reopens the file)."""
        self._close_fd()
