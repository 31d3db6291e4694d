"""Process-level bookkeeping: the active run, the runs still open in this process, and the hooks
that end those runs when the process ends.

- ``atexit``: an open run is finished as ``finished`` (``interrupted`` if a SIGINT arrived while
  it was open, e.g. a KeyboardInterrupt the script caught before exiting).
- ``sys.excepthook`` (chained): an uncaught exception ends open runs as ``failed`` with
  ``exit_reason`` ``"exception: <TypeName>"`` (``interrupted`` for KeyboardInterrupt), after the
  previous hook printed the traceback (so console capture keeps it). If a library replaced our
  hook without chaining (``rich.traceback.install()``...), ``atexit`` finds the exception that
  ended the program in ``sys.last_value`` and ends the runs the same way.
- SIGTERM: open runs end ``interrupted`` / ``"signal: SIGTERM"``, then the original disposition is
  restored and the signal raised again, so the process dies of SIGTERM as it would have.
  When our handler is called by a handler installed after it (PyTorch Lightning chains the
  previous handler to stop gracefully), the signal is only noted: the program goes on as it
  would without us, and its runs end ``interrupted`` / ``"signal: SIGTERM"`` at exit.
- SIGINT: noted, then handed to the original handler (Python's raises KeyboardInterrupt).

Signal handlers are installed only from the main thread and only over the default handler,
and put back when the last open run ends. A forked child drops the parent's runs: it never
writes or finishes them.
"""

import atexit
import os
import signal
import sys
import threading
from typing import Any, Dict, List, Optional

_lock = threading.RLock()
_open_runs = []  # type: List[Any]
_active_run = None  # type: Optional[Any]
_process_hooks_installed = False
_previous_excepthook = None
_saved_handlers = {}  # type: Dict[int, Any]
_hooked_exception = None  # type: Optional[BaseException]  # the last one _excepthook handled


def get_active_run() -> Optional[Any]:
    """The run of the last ``init()`` in this process, until it finishes (None if disabled)."""
    return _active_run


def set_active_run(run: Optional[Any]) -> None:
    global _active_run
    _active_run = run


def run_opened(run: Any) -> None:
    """Track ``run`` as open and active; install the process hooks."""
    global _active_run
    with _lock:
        _open_runs.append(run)
        _active_run = run
    _install_process_hooks()
    _install_signal_handlers()


def run_closed(run: Any) -> None:
    """``run`` ended: forget it; put the signal handlers back when no run is open."""
    global _active_run
    with _lock:
        if run in _open_runs:
            _open_runs.remove(run)
        if _active_run is run:
            _active_run = None
        last = not _open_runs
    if last:
        _restore_signal_handlers()


def end_open_runs(status: Optional[str], exit_reason: Optional[str]) -> None:
    """End every open run of this process, newest first; never raises. ``status`` None means
    a normal exit, ``"interrupted"`` without a reason a KeyboardInterrupt (the run tells which
    reason applies)."""
    with _lock:
        runs = list(reversed(_open_runs))
    for run in runs:
        try:
            run._end_from_hook(status, exit_reason)
        except BaseException:
            pass


# ---- process hooks ---------------------------------------------------------------------------
def _install_process_hooks() -> None:
    global _process_hooks_installed, _previous_excepthook
    with _lock:
        if _process_hooks_installed:
            return
        _process_hooks_installed = True
        atexit.register(_at_exit)
        _previous_excepthook = sys.excepthook
        sys.excepthook = _excepthook
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=_after_fork_in_child)


def _at_exit() -> None:
    exc = _fatal_exception_not_hooked()
    if exc is None:
        end_open_runs(None, None)
    elif isinstance(exc, KeyboardInterrupt):
        end_open_runs("interrupted", None)
    else:
        end_open_runs("failed", "exception: " + type(exc).__name__)


def _fatal_exception_not_hooked() -> Optional[BaseException]:
    """The uncaught exception that ended the program when our excepthook was not called for it
    (another hook replaced ours), else None. Python stores it in ``sys.last_value`` before
    calling whatever hook is installed; it ended the program if it went up to the outermost
    frame (code.interact and IPython also set it, for exceptions caught in inner frames)."""
    exc = getattr(sys, "last_value", None)
    if not isinstance(exc, BaseException) or exc is _hooked_exception \
            or sys.excepthook is _excepthook or hasattr(sys, "ps1"):
        return None
    tb = exc.__traceback__
    if tb is None or tb.tb_frame.f_back is not None:
        return None
    return exc


def _excepthook(exc_type, exc, tb) -> None:
    global _hooked_exception
    _hooked_exception = exc
    try:
        previous = _previous_excepthook or sys.__excepthook__
        previous(exc_type, exc, tb)
    finally:
        if isinstance(exc_type, type) and issubclass(exc_type, KeyboardInterrupt):
            end_open_runs("interrupted", None)
        else:
            end_open_runs("failed", "exception: " + getattr(exc_type, "__name__", str(exc_type)))


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.RLock()  # another thread of the parent may have held it at fork time
    runs = list(_open_runs)
    del _open_runs[:]
    for run in runs:
        try:
            run._orphan()
        except BaseException:
            pass
    _saved_handlers.clear()  # the child keeps whatever handlers it inherited, untouched


# ---- signals ----------------------------------------------------------------------------------
def _is_default(signum: int, handler: Any) -> bool:
    if handler is signal.SIG_DFL:
        return True
    return signum == signal.SIGINT and handler is signal.default_int_handler


def _install_signal_handlers() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for signum, ours in _OUR_HANDLERS.items():
        if signum in _saved_handlers:
            continue
        try:
            current = signal.getsignal(signum)
            if not _is_default(signum, current):
                continue
            signal.signal(signum, ours)
        except (ValueError, OSError, RuntimeError):
            continue
        _saved_handlers[signum] = current


def _restore_signal_handlers() -> None:
    if threading.current_thread() is not threading.main_thread():
        return
    for signum, previous in list(_saved_handlers.items()):
        try:
            if signal.getsignal(signum) is _OUR_HANDLERS[signum]:
                signal.signal(signum, previous)
        except (ValueError, OSError, RuntimeError):
            pass
        _saved_handlers.pop(signum, None)


def _die_as_before(signum: int) -> None:
    """Put the default disposition of ``signum`` back and raise it again: the process dies of
    the signal exactly as it would have without us."""
    _saved_handlers.pop(signum, None)
    signal.signal(signum, signal.SIG_DFL)
    raise_signal = getattr(signal, "raise_signal", None)
    if raise_signal is not None:
        raise_signal(signum)
    else:  # pragma: no cover - Python < 3.8
        os.kill(os.getpid(), signum)


def _note_signal(attribute: str) -> None:
    with _lock:
        for run in _open_runs:
            setattr(run, attribute, True)


def _chained(signum: int, ours: Any) -> bool:
    """Whether our handler runs because a later handler called it (it is not installed)."""
    try:
        return signal.getsignal(signum) is not ours
    except (ValueError, OSError, RuntimeError):
        return False


def _on_sigterm(signum, frame) -> None:
    if _chained(signum, _on_sigterm):
        _note_signal("_saw_sigterm")
        return
    end_open_runs("interrupted", "signal: SIGTERM")
    _die_as_before(signum)


def _on_sigint(signum, frame) -> None:
    _note_signal("_saw_sigint")
    previous = _saved_handlers.get(signum, signal.default_int_handler)
    if previous is not signal.SIG_DFL:
        # Python's own behaviour: KeyboardInterrupt, which the context manager, the excepthook
        # or atexit turn into an "interrupted" run.
        signal.default_int_handler(signum, frame)
        return
    if _chained(signum, _on_sigint):  # SIG_DFL cannot be chained: without us nothing happens
        return
    end_open_runs("interrupted", "signal: SIGINT")
    _die_as_before(signum)


_OUR_HANDLERS = {signal.SIGTERM: _on_sigterm, signal.SIGINT: _on_sigint}
