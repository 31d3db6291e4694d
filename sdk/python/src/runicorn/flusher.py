"""The background thread of a run: flushes its buffers at least every second and, for runs
this process owns, rewrites ``status.json`` with a fresh ``heartbeat_at`` every heartbeat
interval. It is a daemon thread, so it never keeps a finished script alive; ``finish()`` and
the exit hooks stop it and flush one last time.

The flush period is 1 s; ``RUNICORN_FLUSH_INTERVAL`` (seconds, at most 1) makes it shorter.
"""

import os
import threading
import time
from typing import Callable, Optional

MAX_FLUSH_INTERVAL = 1.0


def flush_interval_from_env() -> float:
    try:
        value = float(os.environ.get("RUNICORN_FLUSH_INTERVAL", "") or MAX_FLUSH_INTERVAL)
    except ValueError:
        return MAX_FLUSH_INTERVAL
    if not value > 0:
        return MAX_FLUSH_INTERVAL
    return min(value, MAX_FLUSH_INTERVAL)


class Flusher:
    """Calls ``flush()`` every ``interval`` s and ``heartbeat()`` every ``heartbeat_interval`` s."""

    def __init__(self, flush: Callable[[], object], interval: float,
                 heartbeat: Optional[Callable[[], object]] = None,
                 heartbeat_interval: float = 10.0, name: str = "runicorn-flusher") -> None:
        self._flush = flush
        self._interval = interval
        self._heartbeat = heartbeat
        self._heartbeat_interval = heartbeat_interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        next_beat = time.monotonic() + self._heartbeat_interval
        while True:
            wait = self._interval
            if self._heartbeat is not None:
                wait = min(wait, max(0.0, next_beat - time.monotonic()))
            if self._stop.wait(wait):
                return
            try:
                self._flush()
            except Exception:  # never let the thread die; errors are reported by the writer
                pass
            if self._heartbeat is not None and time.monotonic() >= next_beat:
                next_beat = time.monotonic() + self._heartbeat_interval
                try:
                    self._heartbeat()
                except Exception:
                    pass

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread and wait for its current flush to end (not when called from it)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
