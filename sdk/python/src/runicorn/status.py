"""The contents of ``status.json``: the run's state plus who owns it (pid, host, start ticks) and
the heartbeat, so readers can tell a live run from a crashed one (``docs/run-format.md``,
"Liveness").
"""

import os
import socket
from typing import Any, Dict, Optional

DEFAULT_HEARTBEAT_INTERVAL = 10.0

# finish(status) accepts upstream's aliases.
_STATUS_ALIASES = {
    "completed": "finished",
    "success": "finished",
    "error": "failed",
    "crashed": "failed",
    "killed": "interrupted",
    "cancelled": "interrupted",
    "aborted": "interrupted",
}
FINAL_STATUSES = frozenset(("finished", "failed", "interrupted"))


def normalize_final_status(status: Any) -> Optional[str]:
    """``finished``/``failed``/``interrupted`` for ``status`` or one of its aliases, else None."""
    text = str(status or "").strip().lower()
    if text in FINAL_STATUSES:
        return text
    return _STATUS_ALIASES.get(text)


def proc_start_ticks(pid: Optional[int] = None) -> Optional[int]:
    """Field 22 (start time in clock ticks) of ``/proc/<pid>/stat``; None where there is no /proc."""
    path = "/proc/%s/stat" % ("self" if pid is None else pid)
    try:
        with open(path, "rb") as f:
            text = f.read().decode("ascii", errors="replace")
        # The command name (field 2) is in parentheses and may hold spaces: split after it.
        fields = text[text.rindex(")") + 2:].split()
        return int(fields[19])
    except (OSError, ValueError, IndexError):
        return None


def owner_fields() -> Dict[str, Any]:
    """``pid``, ``host`` and (on Linux) ``proc_start_ticks`` of the calling process."""
    fields = {"pid": os.getpid(), "host": socket.gethostname()}  # type: Dict[str, Any]
    ticks = proc_start_ticks()
    if ticks is not None:
        fields["proc_start_ticks"] = ticks
    return fields


def heartbeat_interval_from(value: Optional[float]) -> float:
    """The heartbeat interval: ``value`` if given, else ``$RUNICORN_HEARTBEAT_INTERVAL``, else 10 s."""
    if value is None:
        env = os.environ.get("RUNICORN_HEARTBEAT_INTERVAL", "").strip()
        if not env:
            return DEFAULT_HEARTBEAT_INTERVAL
        try:
            value = float(env)
        except ValueError:
            return DEFAULT_HEARTBEAT_INTERVAL
        if not value > 0 or value != value or value == float("inf"):
            return DEFAULT_HEARTBEAT_INTERVAL
        return value
    value = float(value)
    if not value > 0 or value == float("inf"):
        raise ValueError("heartbeat_interval must be a positive number of seconds, got %r" % value)
    return value


class StatusRecord:
    """The status of a run this process owns; ``as_json()`` is what ``status.json`` holds."""

    def __init__(self, started_at: float, heartbeat_interval: float) -> None:
        self.status = "running"
        self.started_at = started_at
        self.ended_at = None  # type: Optional[float]
        self.exit_reason = None  # type: Optional[str]
        self.heartbeat_at = started_at
        self.heartbeat_interval = heartbeat_interval
        self.owner = owner_fields()

    def end(self, status: str, ended_at: float, exit_reason: Optional[str]) -> None:
        self.status = status
        self.ended_at = ended_at
        self.exit_reason = exit_reason
        self.heartbeat_at = ended_at

    def as_json(self) -> Dict[str, Any]:
        data = {"status": self.status, "started_at": self.started_at}  # type: Dict[str, Any]
        if self.ended_at is not None:
            data["ended_at"] = self.ended_at
        if self.exit_reason is not None:
            data["exit_reason"] = self.exit_reason
        data.update(self.owner)
        data["heartbeat_at"] = self.heartbeat_at
        data["heartbeat_interval"] = self.heartbeat_interval
        return data
