"""The files of one run directory and the order they are written in.

``RunWriter`` holds the in-memory buffers (event lines, log lines, the summary) that the
training thread fills cheaply, and writes them out on ``flush()``: appended lines through
:class:`~runicorn.appender.Appender`, whole JSON files (``summary.json``, ``status.json``,
``meta.json``, ``assets.json``) by atomic replacement. Every OSError goes to the run's
:class:`~runicorn.problems.WriteProblems` policy; nothing here raises into training unless the
run is strict.
"""

import errno
import threading
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

from .appender import Appender
from .jsonio import overwrite_json_in_place, read_json_object, to_bytes, write_json_atomic
from .problems import WriteProblems


_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG}


class RunWriter:
    """Buffers and writes the files of the run in ``run_dir``."""

    def __init__(self, run_dir: Path, problems: WriteProblems) -> None:
        self.dir = run_dir
        self.problems = problems
        # Filled by the training thread with complete lines; drained by flush(). Only ever
        # appended to and trimmed from the front, so no lock is needed to append.
        self.event_lines = []  # type: List[str]
        self.log_lines = []  # type: List[str]
        self._events = Appender(run_dir / "events.jsonl", end_torn_tail=True)
        self._logs = Appender(run_dir / "logs.txt")
        self._summary = {}  # type: Dict[str, Any]
        self._summary_dirty = False
        self._io_lock = threading.Lock()
        self._status_lock = threading.Lock()
        self._status_final = False

    # ---- buffered files ---------------------------------------------------------------
    def load_summary(self) -> None:
        """Start from the ``summary.json`` already in the directory (a joined or reused run)."""
        existing = read_json_object(self.dir / "summary.json")
        if existing:
            existing.update(self._summary)
            self._summary = existing

    def update_summary(self, update: Dict[str, Any]) -> None:
        self._summary.update(update)
        self._summary_dirty = True

    def flush(self, timeout: float = -1) -> bool:
        """Write out everything buffered; False if the lock was not free within ``timeout``."""
        if not self._io_lock.acquire(timeout=timeout):
            return False
        try:
            self._drain(self.event_lines, self._events, "append to events.jsonl")
            self._drain(self.log_lines, self._logs, "append to logs.txt")
            if self._summary_dirty:
                self._summary_dirty = False
                snapshot = dict(self._summary)
                try:
                    write_json_atomic(self.dir / "summary.json", snapshot)
                except OSError as error:
                    self._summary_dirty = True
                    self.problems.report("write summary.json", self.dir / "summary.json", error)
        finally:
            self._io_lock.release()
        return True

    def _drain(self, lines: List[str], target: Appender, what: str) -> None:
        count = len(lines)
        if not count and not target.has_pending:
            return
        chunk = "".join(lines[:count])
        del lines[:count]
        try:
            target.write(to_bytes(chunk))
        except OSError as error:
            self.problems.report(what, target.path, error)

    def close(self) -> None:
        self._events.close()
        self._logs.close()

    # ---- whole JSON files ---------------------------------------------------------------
    def write_status(self, status: Dict[str, Any], final: bool = False, in_caller: bool = False,
                     timeout: float = -1) -> None:
        """Replace ``status.json``. Once a final status is written, heartbeats are ignored."""
        if not self._status_lock.acquire(timeout=timeout):
            return
        try:
            if self._status_final:
                return
            if final:
                self._status_final = True
                self._write_final_status(status, in_caller)
            else:
                self._write_json("status.json", status, in_caller)
        finally:
            self._status_lock.release()

    def _write_final_status(self, status: Dict[str, Any], in_caller: bool) -> None:
        path = self.dir / "status.json"
        try:
            write_json_atomic(path, status)
        except OSError as error:
            # A full disk has no room for the temporary file, but the old status.json has room
            # for the new one: how the run ended matters more than atomicity here.
            if error.errno in _NO_SPACE and path.exists():
                try:
                    overwrite_json_in_place(path, status)
                    return
                except OSError:
                    pass
            self.problems.report("write status.json", path, error, in_caller=in_caller)

    def write_json(self, name: str, data: Dict[str, Any], in_caller: bool = True) -> bool:
        """Replace ``<run>/<name>`` with ``data``; True on success."""
        return self._write_json(name, data, in_caller)

    def update_json(self, name: str, update: Callable[[Dict[str, Any]], None],
                    default: Optional[Dict[str, Any]] = None, in_caller: bool = True) -> bool:
        """Read ``<run>/<name>`` (or ``default``), apply ``update`` in place, replace the file."""
        with self._io_lock:
            data = read_json_object(self.dir / name)
            if data is None:
                data = dict(default or {})
            update(data)
            return self._write_json(name, data, in_caller)

    def _write_json(self, name: str, data: Dict[str, Any], in_caller: bool) -> bool:
        path = self.dir / name
        try:
            write_json_atomic(path, data)
            return True
        except OSError as error:
            self.problems.report("write " + name, path, error, in_caller=in_caller)
            return False
