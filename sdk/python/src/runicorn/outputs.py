"""Archiving a run's outputs (checkpoints, logs, plots) as training writes them:
``run.scan_outputs_once()`` and the ``run.watch_outputs()`` thread, with upstream 0.7's
arguments, defaults and files.

A scan walks ``output_dirs`` for files matching ``patterns`` (``fnmatch``: ``*`` crosses ``/``;
``**/x`` also matches ``x``; a pattern ending in ``/`` matches directories). A file is archived
once it is *stable*: the same size and mtime for ``stable_required`` scans in a row and at least
``min_age_sec`` old. ``mode="rolling"`` keeps one copy per output under
``archive/outputs/rolling/<run_id>/``; any other mode stores it in the blob store (deduplicated),
``"overwrite_versions"`` adding an assets.json entry per change instead of replacing it. Logs
(``.log .txt .jsonl .csv``, ``tfevents``) are copied as they are at most every
``log_snapshot_interval_sec``. What each output looked like is kept in the run's
``.outputs_state.json``; entries unseen for ``state_gc_after_sec`` are dropped.

Ours beyond upstream: a stable output is not copied again while its size and mtime stay what
they were at its last archiving (upstream copies it on every scan, then notices nothing
changed); nothing inside the storage root is ever archived (an output dir containing the root
would archive its own archive); and when the run finishes with a watcher running, one last scan
archives what changed since, stable or not (the script has stopped writing).
"""

import fnmatch
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from .archive import (ARCHIVE_DIR, archive_dir, archive_dir_rolling, archive_file,
                      archive_file_rolling)
from .jsonio import read_json_object, write_json_atomic

STATE_FILE = ".outputs_state.json"
DEFAULT_PATTERNS = tuple(p for ext in ("pth", "pt", "ckpt", "onnx", "log", "json", "txt", "csv",
                                       "png") for p in ("*." + ext, "**/*." + ext))
_LOG_SUFFIXES = {".log", ".txt", ".jsonl", ".csv"}


def _matches(rel: str, patterns: Iterable[str]) -> bool:
    for pattern in patterns:
        if fnmatch.fnmatchcase(rel, pattern):
            return True
        if pattern.startswith("**/") and fnmatch.fnmatchcase(rel, pattern[3:]):
            return True
    return False


def _is_log(path: Path) -> bool:
    return "tfevents" in path.name or path.suffix.lower() in _LOG_SUFFIXES


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


class OutputScanner:
    """The scans of one run (a lock makes the watcher's and the caller's take turns)."""

    def __init__(self, run_id: str, run_dir: Path, storage_root: Path, workspace: Path,
                 update_assets: Callable[[Callable[[Dict[str, Any]], None]], Any]) -> None:
        self.run_id = run_id
        self.state_path = run_dir / STATE_FILE
        self.storage_root = Path(os.path.realpath(str(storage_root)))
        self.archive_root = storage_root / ARCHIVE_DIR
        self.workspace = Path(os.path.realpath(str(workspace)))
        self._update_assets = update_assets
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None  # type: Optional[threading.Thread]
        self._watch_args = None  # type: Optional[Dict[str, Any]]

    # ---- one scan -------------------------------------------------------------------------
    def scan(self, output_dirs: Iterable[Any], patterns: Optional[List[str]] = None,
             stable_required: int = 2, min_age_sec: float = 1.0, mode: str = "rolling",
             log_snapshot_interval_sec: float = 60.0,
             state_gc_after_sec: float = 7 * 24 * 3600,
             should_stop: Callable[[], bool] = lambda: False) -> Dict[str, Any]:
        with self._lock:
            state = read_json_object(self.state_path) or {}
            items = state.get("items")
            if not isinstance(items, dict):
                items = state["items"] = {}
            result = {"run_id": self.run_id, "scanned": 0, "archived": 0, "changed": 0,
                      "archived_entries": []}  # type: Dict[str, Any]
            all_patterns = list(patterns or DEFAULT_PATTERNS)
            file_patterns = [p for p in all_patterns if not p.endswith("/")]
            dir_patterns = [p for p in all_patterns if p.endswith("/")]
            now = time.time()
            try:
                for found, rel, is_dir in self._candidates(output_dirs, file_patterns,
                                                           dir_patterns):
                    if should_stop():
                        break
                    result["scanned"] += 1
                    entry = self._consider(found, is_dir, items, now, stable_required,
                                           min_age_sec, mode, log_snapshot_interval_sec)
                    if entry is not None:
                        result["archived_entries"].append(entry)
                        result["archived"] += 1
                        result["changed"] += 1
                if state_gc_after_sec and state_gc_after_sec > 0:
                    cutoff = now - float(state_gc_after_sec)
                    for key in [k for k, v in items.items() if not isinstance(v, dict)
                                or float(v.get("last_seen_at") or 0) < cutoff]:
                        del items[key]
            finally:
                write_json_atomic(self.state_path, state)
            return result

    def _candidates(self, output_dirs: Iterable[Any], file_patterns: List[str],
                    dir_patterns: List[str]) -> Iterable[Tuple[Path, str, bool]]:
        for given in output_dirs:
            top = Path(os.path.realpath(os.path.expanduser(str(given))))
            if not top.is_dir():
                continue
            for dirpath, dirnames, filenames in os.walk(str(top)):
                here = Path(dirpath)
                if _inside(here, self.storage_root):
                    dirnames[:] = []
                    continue
                dirnames.sort()
                rel_dir = here.relative_to(top).as_posix()
                prefix = "" if rel_dir == "." else rel_dir + "/"
                for name in dirnames:
                    if dir_patterns and _matches(prefix + name + "/", dir_patterns) and \
                            not _inside(here / name, self.storage_root):
                        yield here / name, prefix + name, True
                for name in sorted(filenames):
                    if _matches(prefix + name, file_patterns):
                        yield here / name, prefix + name, False

    def _key_and_display(self, path: Path) -> Tuple[str, str]:
        real = Path(os.path.realpath(str(path)))
        if _inside(real, self.workspace):
            rel = real.relative_to(self.workspace).as_posix()
            return rel, "./" + rel
        return path.as_posix(), path.as_posix()

    def _consider(self, path: Path, is_dir: bool, items: Dict[str, Any], now: float,
                  stable_required: int, min_age_sec: float, mode: str,
                  log_interval: float) -> Optional[Dict[str, Any]]:
        """Updates the output's state; the new assets.json entry when it was archived."""
        try:
            st = os.stat(str(path))
        except OSError:
            return None
        key, display = self._key_and_display(path)
        item = items.get(key)
        if not isinstance(item, dict):
            item = {}
        items[key] = item
        item["last_seen_at"] = now
        log_like = not is_dir and _is_log(path)
        if log_like:
            last = float(item.get("last_log_snapshot_at") or 0)
            if log_interval > 0 and now - last < log_interval:
                return None
        else:
            same = (item.get("last_mtime_ns") == st.st_mtime_ns
                    and (is_dir or item.get("last_size") == st.st_size))
            item["stable_count"] = int(item.get("stable_count") or 0) + 1 if same else 1
            item["last_mtime_ns"] = st.st_mtime_ns
            if not is_dir:
                item["last_size"] = st.st_size
            if max(0.0, now - st.st_mtime) < min_age_sec or item["stable_count"] < stable_required:
                return None
            if (item.get("archived_mtime_ns") == st.st_mtime_ns
                    and (is_dir or item.get("archived_size") == st.st_size)):
                return None  # archived as it is now
        try:
            archived = self._archive(path, is_dir, key, mode, log_like)
        except (OSError, ValueError) as error:
            item["last_error"] = str(error)
            return None
        item.pop("last_error", None)
        if log_like:
            item["last_log_snapshot_at"] = now
        else:
            item["archived_mtime_ns"] = st.st_mtime_ns
            if not is_dir:
                item["archived_size"] = st.st_size
        if archived["fingerprint"] == item.get("last_archived_fingerprint"):
            return None
        item["last_archived_fingerprint"] = archived["fingerprint"]
        item["last_archived_at"] = now
        used_mode = "rolling" if log_like else mode
        entry = {
            "key": key, "name": Path(display).name, "kind": "dir" if is_dir else "file",
            "path": display, "saved": True, "archive_path": archived["archive_path"],
            "fingerprint_kind": archived["fingerprint_kind"],
            "fingerprint": archived["fingerprint"], "mode": used_mode, "archived_at": int(now),
        }

        def upsert(assets: Dict[str, Any]) -> None:
            outputs = assets.get("outputs")
            if not isinstance(outputs, list):
                outputs = assets["outputs"] = []
            if used_mode != "overwrite_versions":
                for i, old in enumerate(outputs):
                    if isinstance(old, dict) and old.get("key") == key:
                        outputs[i] = entry
                        return
            outputs.append(entry)

        self._update_assets(upsert)
        return entry

    def _archive(self, path: Path, is_dir: bool, key: str, mode: str,
                 log_like: bool) -> Dict[str, Any]:
        if log_like:
            return archive_file_rolling(path, self.archive_root, self.run_id, key, stat_only=True)
        if is_dir:
            if mode == "rolling":
                return archive_dir_rolling(path, self.archive_root, self.run_id, key)
            return archive_dir(path, self.archive_root, "outputs")
        if mode == "rolling":
            return archive_file_rolling(path, self.archive_root, self.run_id, key)
        return archive_file(path, self.archive_root)

    # ---- the watcher thread -----------------------------------------------------------------
    def watch(self, interval_sec: float, scan_args: Dict[str, Any],
              on_error: Callable[[BaseException], None]) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._watch_args = scan_args

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.scan(should_stop=self._stop.is_set, **scan_args)
                except Exception as error:  # a scan gone wrong must not end the thread
                    on_error(error)
                self._stop.wait(max(0.05, float(interval_sec)))

        self._thread = threading.Thread(target=loop, name="runicorn-outputs-" + self.run_id,
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> Optional[Dict[str, Any]]:
        """Stops the watcher (waiting up to ``timeout`` for a copy in progress); the arguments
        it scanned with, or None when none was running."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is None:
            return None
        thread.join(timeout)
        args, self._watch_args = self._watch_args, None
        return args

    def final_scan(self, scan_args: Dict[str, Any]) -> None:
        """The scan at finish: whatever changed since its last archiving, stable or not."""
        args = dict(scan_args)
        args.update(stable_required=1, min_age_sec=0.0, log_snapshot_interval_sec=0.0)
        self.scan(**args)
