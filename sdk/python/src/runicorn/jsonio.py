"""JSON in and out: encoding any Python value the way upstream's files hold it, atomic
replacement of whole JSON files, and tolerant reading.

Encoding rules: ``ensure_ascii=False`` (UTF-8 files), non-finite floats as ``NaN``/``Infinity``
like :func:`json.dumps`, numpy/torch scalars through ``.item()``, other mappings and sequences
(e.g. OmegaConf's ``DictConfig``/``ListConfig``) as objects and arrays, anything else unknown as
its ``str()``. Lone surrogates (which strict JSON readers reject, even escaped) are written as
U+FFFD, so every file stays valid UTF-8 and valid JSON.
"""

import datetime
import enum
import json
import os
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePath
from typing import Any, Dict, Optional


def _default(obj: Any) -> Any:
    """``json`` fallback for values it does not know."""
    if isinstance(obj, PurePath):
        return str(obj)
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, (datetime.datetime, datetime.date, datetime.time)):
        return obj.isoformat()
    if isinstance(obj, (set, frozenset)):
        return list(obj)
    if isinstance(obj, (bytes, bytearray)):
        return bytes(obj).decode("utf-8", errors="replace")
    if isinstance(obj, (Mapping, Sequence)) and not isinstance(obj, memoryview):
        try:  # a lazy config may fail to produce a value (OmegaConf's "???")
            return dict(obj) if isinstance(obj, Mapping) else list(obj)
        except Exception:
            return str(obj)
    for method in ("item", "tolist"):  # numpy / torch scalars and arrays
        fn = getattr(obj, method, None)
        if callable(fn):
            try:
                return fn()
            except Exception:
                pass
    return str(obj)


_COMPACT = json.JSONEncoder(ensure_ascii=False, allow_nan=True, default=_default)
_PRETTY = json.JSONEncoder(ensure_ascii=False, allow_nan=True, default=_default, indent=2)


def json_safe(obj: Any, _depth: int = 0) -> Any:
    """A copy of ``obj`` made only of JSON types (keys become strings, cycles are cut)."""
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if _depth > 64:
        return str(obj)
    if isinstance(obj, dict):
        return {k if isinstance(k, str) else str(k): json_safe(v, _depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [json_safe(v, _depth + 1) for v in obj]
    converted = _default(obj)
    if converted is obj:  # e.g. an .item() that returns the object itself
        return str(obj)
    if isinstance(converted, str):
        return converted
    return json_safe(converted, _depth + 1)


def dumps(obj: Any, pretty: bool = False) -> str:
    """``obj`` as JSON text; never raises for odd values (they are converted)."""
    encoder = _PRETTY if pretty else _COMPACT
    try:
        return encoder.encode(obj)
    except (TypeError, ValueError, RecursionError):
        return encoder.encode(json_safe(obj))


def to_bytes(text: str) -> bytes:
    """UTF-8 bytes of ``text``; a surrogate pair becomes its character, a lone surrogate U+FFFD."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return (text.encode("utf-16-le", "surrogatepass")
                .decode("utf-16-le", "replace").encode("utf-8"))


def write_json_atomic(path: Path, obj: Any) -> None:
    """Replace ``path`` with ``obj`` as indented JSON: temp file, fsync, rename. Raises OSError."""
    path = Path(path)
    tmp = path.with_name(".%s.tmp-%d-%s" % (path.name, os.getpid(), secrets.token_hex(4)))
    data = to_bytes(dumps(obj, pretty=True))
    fd = os.open(str(tmp), os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(str(tmp), str(path))
    except BaseException:
        try:
            os.unlink(str(tmp))
        except OSError:
            pass
        raise


def overwrite_json_in_place(path: Path, obj: Any) -> None:
    """Rewrite an existing ``path`` in place (no new file, so no new disk blocks for a small
    file). Not atomic: only a fallback for when the disk is too full for a temporary file."""
    data = to_bytes(dumps(obj, pretty=True))
    fd = os.open(str(path), os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.ftruncate(fd, len(data))
        os.fsync(fd)
    finally:
        os.close(fd)


def read_json_object(path: Path) -> Optional[Dict[str, Any]]:
    """The JSON object stored in ``path``, or None when missing, unreadable or not an object."""
    try:
        with open(str(path), "rb") as f:
            value = json.loads(f.read().decode("utf-8", errors="replace"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None
