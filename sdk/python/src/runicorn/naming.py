"""Names that become file-system paths: the storage root, run paths, run ids, media file names.

The rules are those of ``docs/run-format.md`` ("Names that become paths"). A name that breaks
them is a programming error and raises ``ValueError``.
"""

import os
import re
import secrets
import time
from pathlib import Path
from typing import Optional

MAX_PATH_CHARS = 200
MAX_FILE_NAME_BYTES = 255

_SEGMENT = re.compile(r"[A-Za-z0-9_-]+\Z")
_RUN_ID = re.compile(r"[A-Za-z0-9_.-]{1,128}\Z")
_FILE_CHAR = re.compile(r"[^A-Za-z0-9_.-]")
_EXTENSION = re.compile(r"[a-z0-9]{1,16}\Z")


def storage_root(storage: Optional[str] = None) -> Path:
    """The storage root: ``storage`` if given, else ``$RUNICORN_DIR``, else ``~/.runicorn``."""
    chosen = storage if storage else os.environ.get("RUNICORN_DIR") or "~/.runicorn"
    return Path(os.path.abspath(os.path.expanduser(str(chosen))))


def normalize_run_path(path: Optional[str]) -> str:
    """The run path as written to ``meta.json``.

    ``None`` is ``"default"``; ``""`` and ``"/"`` are the root of ``runs/`` (returned as ``""``).
    Backslashes count as ``/`` and leading or trailing slashes are dropped, as upstream does.
    """
    if path is None:
        return "default"
    if not isinstance(path, str):
        raise ValueError("run path must be a string, got %s" % type(path).__name__)
    text = path.replace("\\", "/").strip("/")
    if text == "":
        return ""
    if len(text) > MAX_PATH_CHARS:
        raise ValueError(
            "run path is %d characters long; at most %d are allowed" % (len(text), MAX_PATH_CHARS)
        )
    for segment in text.split("/"):
        if not _SEGMENT.match(segment):
            raise ValueError(
                "invalid run path %r: use segments of letters, digits, '_' and '-' "
                "separated by '/'" % path
            )
    return text


def new_run_id(now: Optional[float] = None) -> str:
    """A fresh run id ``YYYYMMDD_HHMMSS_<6 lowercase hex>`` in local time."""
    stamp = time.strftime("%Y%m%d_%H%M%S", time.localtime(now))
    return stamp + "_" + secrets.token_hex(3)


def check_run_id(run_id: str) -> str:
    """``run_id`` if it is a valid given id, else ``ValueError``."""
    if not isinstance(run_id, str) or not _RUN_ID.match(run_id) or run_id.startswith("."):
        raise ValueError(
            "invalid run id %r: use 1 to 128 characters from [A-Za-z0-9_.-], "
            "not starting with '.'" % (run_id,)
        )
    return run_id


def media_file_name(key: str, extension: str, now: float) -> str:
    """``<epoch_ms>_<6 hex>_<key>.<ext>`` with the key reduced to the allowed characters."""
    ext = str(extension).lower()
    if not _EXTENSION.match(ext):
        raise ValueError("invalid image format %r" % (extension,))
    head = "%d_%s_" % (int(now * 1000), secrets.token_hex(3))
    room = MAX_FILE_NAME_BYTES - len(head) - len(ext) - 1
    safe_key = _FILE_CHAR.sub("_", str(key))[:room] or "image"
    return "%s%s.%s" % (head, safe_key, ext)
