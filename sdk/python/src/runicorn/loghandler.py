"""A :mod:`logging` handler that writes records into a run's ``logs.txt``.

Lines look like ``HH:MM:SS | LEVEL | logger | message`` (upstream's default format). Without an
explicit run the handler writes to the active run, if any. Records emitted after the run
finished are dropped.
"""

import logging
from typing import Any, Optional

DEFAULT_FORMAT = "%(asctime)s | %(levelname)s | %(name)s | %(message)s"
DEFAULT_DATEFMT = "%H:%M:%S"


class RunicornLoggingHandler(logging.Handler):
    """``logger.addHandler(run.get_logging_handler())``."""

    DEFAULT_FORMAT = DEFAULT_FORMAT
    DEFAULT_DATEFMT = DEFAULT_DATEFMT

    def __init__(self, run: Optional[Any] = None, level: int = logging.INFO,
                 fmt: Optional[str] = None) -> None:
        super().__init__(level)
        self._run = run
        if fmt:
            self.setFormatter(logging.Formatter(fmt))
        else:
            self.setFormatter(logging.Formatter(DEFAULT_FORMAT, datefmt=DEFAULT_DATEFMT))

    @property
    def run(self) -> Optional[Any]:
        if self._run is not None:
            return self._run
        from .lifecycle import get_active_run

        return get_active_run()

    def emit(self, record: logging.LogRecord) -> None:
        run = self.run
        if run is None:
            return
        try:
            run._append_log(self.format(record) + "\n")
        except Exception:  # a handler never raises into the code that logs
            self.handleError(record)
