"""The ``events.jsonl`` line format, and the fast path that builds metrics lines.

A metrics line is exactly what upstream writes with ``json.dumps``::

    {"ts": T, "type": "metrics", "data": {<user keys...>, "global_step": S, "time": T, "stage"?: X}}

The common case (string keys, plain ``int``/``float`` values, finite) is formatted from a
template cached per key tuple, which is several times cheaper than building the nested dicts
and calling ``json.dumps``. Everything else goes through the general path, which mirrors
upstream's dict handling (``step``/``global_step`` dropped, ``stage`` taken from the dict,
a user ``time`` key overwritten in place) and ``json.dumps``. Both give the same text.
"""

import json
from typing import Any, Dict, Optional, Tuple

from .jsonio import dumps

# Keys that the general path must see: they are dropped, moved or overwritten.
_SPECIAL_KEYS = frozenset(("step", "global_step", "stage", "time"))
_MAX_TEMPLATES = 256

_float_repr = float.__repr__


def event_line(event: Dict[str, Any]) -> str:
    """Any event as one ``\\n``-terminated JSON line."""
    return dumps(event) + "\n"


def _general_metrics_line(ts: float, step: int, data: Any, stage: Any) -> str:
    payload = dict(data) if data else {}
    payload.pop("global_step", None)
    payload.pop("step", None)
    stage_in_data = payload.pop("stage", None)
    if stage is None:
        stage = stage_in_data
    payload["global_step"] = step
    payload["time"] = ts
    if stage is not None:
        payload["stage"] = stage
    return dumps({"ts": ts, "type": "metrics", "data": payload}) + "\n"


class MetricsEncoder:
    """Builds metrics lines; one per run (it caches templates for the keys it has seen)."""

    __slots__ = ("_templates", "_stage_cache")

    def __init__(self) -> None:
        self._templates = {}  # type: Dict[Tuple[Any, ...], Optional[str]]
        # (last str stage, its text): one attribute, so threads logging with different stages
        # never see one stage paired with another's text.
        self._stage_cache = (None, "")  # type: Tuple[Any, str]

    def _template(self, keys: Tuple[Any, ...]) -> Optional[str]:
        """The %-template for ``keys``, or None when they need the general path."""
        for key in keys:
            if type(key) is not str or key in _SPECIAL_KEYS:
                template = None
                break
        else:
            parts = ['{"ts": %s, "type": "metrics", "data": {']
            for key in keys:
                parts.append(json.dumps(key, ensure_ascii=False).replace("%", "%%") + ": %r, ")
            parts.append('"global_step": %d, "time": %s%s}}\n')
            template = "".join(parts)
        if len(self._templates) >= _MAX_TEMPLATES:
            self._templates.clear()
        self._templates[keys] = template
        return template

    def _stage_suffix(self, stage: Any) -> str:
        cached, text = self._stage_cache
        if stage is cached:
            return text
        text = ', "stage": ' + dumps(stage)
        if type(stage) is str:
            self._stage_cache = (stage, text)
        return text

    def metrics_line(self, ts: float, step: int, data: Any, stage: Any) -> str:
        """The line for one ``run.log()`` call; ``data`` is the merged user dict (may be None)."""
        if type(data) is dict:
            keys = tuple(data)
            template = self._templates.get(keys, False)
            if template is False:
                template = self._template(keys)
            if template is not None:
                values = tuple(data.values())
                for value in values:
                    kind = type(value)
                    if kind is not float and kind is not int:
                        break
                else:
                    try:
                        total = sum(values)
                        finite = total - total == 0
                    except OverflowError:
                        finite = False
                    if finite:
                        ts_text = _float_repr(ts)
                        suffix = "" if stage is None else self._stage_suffix(stage)
                        return template % (ts_text, *values, step, ts_text, suffix)
        return _general_metrics_line(ts, step, data, stage)
