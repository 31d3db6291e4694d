"""What happens when the SDK cannot write a run's files (disk full, permission denied, directory
deleted...).

Default: training goes on. The first failure of a run is reported with ONE ``RuntimeWarning``
(what failed, the path, the error, and that training continues); later failures of the same run
are only counted, and every later flush tries again. ``strict=True`` (or ``RUNICORN_STRICT=1``)
raises instead: at once when the failing call runs in the caller's thread, else at the caller's
next SDK call (failures found by the background flusher).
"""

import threading
import warnings
from pathlib import Path
from typing import Callable, Optional


class WriteProblems:
    """The write-error policy of one run."""

    def __init__(self, strict: bool, on_deferred: Optional[Callable[[], None]] = None) -> None:
        self.strict = strict
        self._on_deferred = on_deferred
        self.count = 0
        self.last_error = None  # type: Optional[BaseException]
        self._warned = False
        self._deferred = None  # type: Optional[BaseException]
        self._lock = threading.Lock()

    def report(self, what: str, path: Path, error: BaseException, in_caller: bool = False) -> None:
        """Record that ``what`` (e.g. "append events") on ``path`` failed with ``error``.

        Raises ``error`` when strict and ``in_caller``; otherwise returns.
        """
        with self._lock:
            self.count += 1
            self.last_error = error
            first = not self._warned
            self._warned = True
            if self.strict and not in_caller:
                self._deferred = error
        if self.strict and not in_caller and self._on_deferred is not None:
            self._on_deferred()
        if self.strict:
            if in_caller:
                raise error
            return
        if first:
            message = (
                "runicorn: could not %s at %s (%s: %s); training continues, the run's files may be "
                "incomplete; later write errors of this run are not reported again"
                % (what, path, type(error).__name__, error)
            )
            try:
                warnings.warn_explicit(message, RuntimeWarning, "runicorn", 0, module="runicorn")
            except Exception:
                # Warnings turned into errors (-W error) must not break the flusher thread.
                pass

    def take_deferred(self) -> Optional[BaseException]:
        """The strict-mode error found in the background since the last call, if any."""
        with self._lock:
            error, self._deferred = self._deferred, None
            return error
