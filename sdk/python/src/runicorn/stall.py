"""A run's stall settings, ``meta.json``'s ``stall``: readers mark a running run ``stalled`` when
no new step arrived for longer than max(``after_s``, ``factor`` x its median step interval)
(docs/run-format.md, "Stalls"). Unset settings are the readers' defaults (factor 5, 600 s)."""

from typing import Any, Dict, Optional


def stall_settings(stall_after: Any, stall_factor: Any) -> Optional[Dict[str, float]]:
    """The ``stall`` object for ``meta.json`` (only what is set), or None when nothing is set.

    Raises ValueError for a value that is not a finite number above 0."""
    settings = {}  # type: Dict[str, float]
    for key, name, value in (("factor", "stall_factor", stall_factor),
                             ("after_s", "stall_after", stall_after)):
        if value is None:
            continue
        try:
            number = float(value) if not isinstance(value, bool) else float("nan")
        except (TypeError, ValueError):
            number = float("nan")
        if not number > 0 or number == float("inf"):
            raise ValueError("%s must be a number above 0 (%s), got %r"
                             % (name, "seconds" if key == "after_s" else "times the median step "
                                "interval", value))
        settings[key] = number
    return settings or None
