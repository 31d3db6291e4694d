"""The process-wide on/off switch: ``RUNICORN_ON`` and ``set_enabled()``.

When tracking is off, ``init()`` returns a :class:`~runicorn.noop.NoOpRun` and nothing is written.
An explicit ``set_enabled()`` wins over the environment; ``reset_enabled()`` goes back to it.
"""

import contextlib
import os
from typing import Iterator, Optional

_override = None  # type: Optional[bool]

_TRUE = frozenset(("1", "true", "yes", "y", "on"))
_FALSE = frozenset(("0", "false", "no", "n", "off"))


def env_flag(name: str) -> Optional[bool]:
    """The boolean value of environment variable ``name``, or None when unset or not a boolean."""
    value = os.environ.get(name, "").strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return None


def is_enabled() -> bool:
    """Whether ``init()`` creates real runs (default: yes, unless ``RUNICORN_ON`` is 0/false/no/off)."""
    if _override is not None:
        return _override
    return env_flag("RUNICORN_ON") is not False


def set_enabled(enabled: bool) -> None:
    """Turn tracking on or off for this process, whatever ``RUNICORN_ON`` says."""
    global _override
    _override = bool(enabled)


def reset_enabled() -> None:
    """Forget ``set_enabled()``; ``RUNICORN_ON`` decides again."""
    global _override
    _override = None


@contextlib.contextmanager
def enabled(value: bool) -> Iterator[None]:
    """``with runicorn.enabled(False): ...`` switches tracking for the block only."""
    global _override
    previous = _override
    _override = bool(value)
    try:
        yield
    finally:
        _override = previous
