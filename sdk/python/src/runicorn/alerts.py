"""A run's alert settings, ``meta.json``'s ``alerts`` (docs/run-format.md, "Alerts"): the agent
raises a ``nonfinite`` alert when a watched metric logs NaN or an infinity (without ``watch``:
every metric whose name contains ``loss``), and a ``gpu_idle`` alert when every GPU the run uses
stays under 5 % utilisation for ``gpu_idle_after_s`` seconds (default 900) while it runs."""

from typing import Any, Dict, Optional


def alert_settings(watch: Any, gpu_idle_after: Any) -> Optional[Dict[str, Any]]:
    """The ``alerts`` object for ``meta.json`` (only what is set), or None when nothing is set.

    Raises ValueError for a ``watch`` that is not a list of metric names (a single name is
    taken as a list of one) or a ``gpu_idle_after`` that is not a finite number above 0."""
    settings = {}  # type: Dict[str, Any]
    if watch is not None:
        keys = [watch] if isinstance(watch, str) else watch
        try:
            keys = list(keys)
        except TypeError:
            keys = None
        if keys is None or not all(isinstance(k, str) and k for k in keys):
            raise ValueError("watch must be a list of metric names, got %r" % (watch,))
        settings["watch"] = keys
    if gpu_idle_after is not None:
        try:
            number = float(gpu_idle_after) if not isinstance(gpu_idle_after, bool) \
                else float("nan")
        except (TypeError, ValueError):
            number = float("nan")
        if not number > 0 or number == float("inf"):
            raise ValueError("gpu_idle_after must be a number of seconds above 0, got %r"
                             % (gpu_idle_after,))
        settings["gpu_idle_after_s"] = number
    return settings or None
