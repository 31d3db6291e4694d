"""``Run``: the object ``init()`` returns, and the semantics of its calls.

Creating a run writes ``meta.json``, ``status.json`` and ``assets.json`` at once. After that the
training thread only touches memory: ``log()`` turns its arguments into a finished
``events.jsonl`` line and appends it to a list; ``summary()``, ``log_text()``, console capture and
the logging handler do the same for ``summary.json`` and ``logs.txt``. A background
:class:`~runicorn.flusher.Flusher` writes the buffers at least every second and keeps the
heartbeat in ``status.json``; ``finish()`` flushes, writes the final status and is idempotent.

A *joined* run (``RUNICORN_RUN_DIR`` set by ``runicorn-agent run``) appends to a run created by
the wrapper, which owns ``status.json`` and console capture: no status, no heartbeat, no
capture, and ``finish()`` only flushes.
"""

import argparse
import dataclasses
import logging
import numbers
import os
import platform
import socket
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Mapping, Optional, Union

if TYPE_CHECKING:  # pragma: no cover
    from .artifacts import Artifact, ArtifactVersion

from . import lifecycle
from ._version import WRITER
from .console import ConsoleCapture
from .encode import MetricsEncoder, event_line
from .environment import capture as capture_environment, workspace_root
from .flusher import Flusher, flush_interval_from_env
from .jsonio import json_safe, read_json_object
from .loghandler import RunicornLoggingHandler
from .media import save_image
from .naming import media_file_name, new_run_id
from .outputs import OutputScanner
from .problems import WriteProblems
from .status import StatusRecord, normalize_final_status
from .writer import RunWriter

_log = logging.getLogger("runicorn")
_time = time.time

_HOOK_TIMEOUT = 2.0


def default_assets() -> Dict[str, Any]:
    """An empty ``assets.json`` as upstream creates it."""
    return {"code": {}, "config": {}, "datasets": [], "pretrained": [], "outputs": []}


def _config_dict(args: Any) -> Dict[str, Any]:
    if isinstance(args, Mapping):
        return dict(args)
    if isinstance(args, argparse.Namespace):
        return dict(vars(args))
    if dataclasses.is_dataclass(args) and not isinstance(args, type):
        return dataclasses.asdict(args)
    if hasattr(args, "__dict__"):
        return dict(vars(args))
    raise TypeError("log_config(args=...) takes a dict, an argparse.Namespace or a dataclass, "
                    "not %s" % type(args).__name__)


class Run:
    """One experiment run. Create it with :func:`runicorn.init`."""

    def __init__(self, *, root: Path, path: str, run_id: Optional[str], alias: Optional[str],
                 strict: bool, heartbeat_interval: float, capture_console: bool, tqdm_mode: str,
                 capture_env: bool, workspace: Optional[Path] = None,
                 snapshot_code: bool = False, force_snapshot: bool = False,
                 stall: Optional[Dict[str, float]] = None,
                 alerts: Optional[Dict[str, Any]] = None,
                 joined_dir: Optional[Path] = None,
                 joined_meta: Optional[Dict[str, Any]] = None) -> None:
        self._pid = os.getpid()
        self._gate = None  # type: Optional[bool]  # not None: calls take the slow path
        self._finished = False
        self._ending = False
        self._end_lock = threading.Lock()
        self._step = 0
        self._encoder = MetricsEncoder()
        self._primary = None  # type: Optional[str]
        self._primary_mode = "max"
        self._best_value = None  # type: Optional[float]
        self._best_step = None  # type: Optional[int]
        self._console = None  # type: Optional[ConsoleCapture]
        self._status = None  # type: Optional[StatusRecord]
        self._heartbeat_interval = heartbeat_interval
        self._stall = dict(stall) if stall else None
        self._alerts = dict(alerts) if alerts else None
        self._workspace = workspace or workspace_root()
        self._outputs = None  # type: Optional[OutputScanner]
        self._warned_after_finish = False
        self._saw_sigint = False  # set by the SIGINT handler while this run is open
        self._saw_sigterm = False  # set by our SIGTERM handler when another handler chained it
        self.joined = joined_dir is not None
        self.storage_root = root

        parent = None  # type: Optional[Path]
        if joined_dir is not None:
            meta = joined_meta or {}
            self.dir = joined_dir
            self.id = str(meta.get("id") or joined_dir.name)
            self.path = str(meta.get("path") if meta.get("path") is not None else "default")
            self.alias = meta.get("alias") or alias
        else:
            self.path = path
            self.alias = alias
            parent = root / "runs" / path if path else root / "runs"
            self.id = run_id or new_run_id()
            self.dir = parent / self.id

        self._problems = WriteProblems(strict, on_deferred=self._close_gate)
        reopened = parent is not None and self._create_directory(run_id is not None, parent)
        self._writer = RunWriter(self.dir, self._problems)
        self._events = self._writer.event_lines

        if joined_dir is not None or reopened:
            self._writer.load_summary()
        if joined_dir is not None:
            if alias and joined_meta and not joined_meta.get("alias"):
                def set_alias(meta: Dict[str, Any]) -> None:
                    if not meta.get("alias"):
                        meta["alias"] = alias
                self._writer.update_json("meta.json", set_alias)
            if self._stall and joined_meta and "stall" not in joined_meta:
                stall_settings = dict(self._stall)

                def set_stall(meta: Dict[str, Any]) -> None:
                    meta.setdefault("stall", stall_settings)
                self._writer.update_json("meta.json", set_stall)
            if self._alerts and joined_meta and "alerts" not in joined_meta:
                alert_settings = dict(self._alerts)

                def set_alerts(meta: Dict[str, Any]) -> None:
                    meta.setdefault("alerts", alert_settings)
                self._writer.update_json("meta.json", set_alerts)
        else:
            self._write_new_run_files()
        if snapshot_code:
            self._snapshot_code(force_snapshot)
        if capture_env:
            self._write_environment()
        if capture_console and joined_dir is None:
            self._console = ConsoleCapture(self._append_log, tqdm_mode)
            self._console.start()

        beat = None if self.joined else self._heartbeat
        self._flusher = Flusher(self._writer.flush, flush_interval_from_env(), beat,
                                heartbeat_interval, name="runicorn-flusher-" + self.id)
        self._flusher.start()
        lifecycle.run_opened(self)

    # ---- creation -----------------------------------------------------------------------------
    def _create_directory(self, given_id: bool, parent: Path) -> bool:
        """Create the run directory; True if a given id named an existing run (it is reopened)."""
        try:
            parent.mkdir(parents=True, exist_ok=True)
            if given_id:
                existed = self.dir.is_dir()
                self.dir.mkdir(exist_ok=True)
                return existed
            while True:
                try:
                    self.dir.mkdir()
                    return False
                except FileExistsError:  # a generated id already taken: draw another
                    self.id = new_run_id()
                    self.dir = parent / self.id
        except OSError as error:
            self._problems.report("create the run directory", self.dir, error, in_caller=True)
        return False

    def _write_new_run_files(self) -> None:
        created_at = _time()
        meta = {
            "id": self.id,
            "path": self.path,
            "alias": self.alias,
            "created_at": created_at,
            "python": sys.version.split(" ")[0],
            "platform": "%s %s (%s)" % (platform.system(), platform.release(), platform.machine()),
            "hostname": socket.gethostname(),
            "pid": self._pid,
            "storage_dir": str(self.storage_root),
            "workspace_root": str(self._workspace),
            "writer": WRITER,
        }
        if self._stall:
            meta["stall"] = dict(self._stall)
        if self._alerts:
            meta["alerts"] = dict(self._alerts)
        self._writer.write_json("meta.json", meta)
        self._status = StatusRecord(_time(), self._heartbeat_interval)
        self._writer.write_status(self._status.as_json(), in_caller=True)
        if not (self.dir / "assets.json").exists():
            self._writer.write_json("assets.json", default_assets())

    def _snapshot_code(self, force: bool) -> None:
        """``code_snapshot.zip`` of the workspace, its blob in the archive and
        ``assets.json``'s ``code.snapshot``. Never fails the run: a workspace over the limits
        gives a warning and no snapshot; a write error follows the run's write-error policy."""
        from . import snapshot as limits
        from .archive import ARCHIVE_DIR, archive_file
        from .snapshot import SnapshotTooLarge, collect_files, write_zip

        zip_path = self.dir / "code_snapshot.zip"
        try:
            files, total = collect_files(self._workspace, max_total_bytes=limits.MAX_TOTAL_BYTES,
                                         max_files=limits.MAX_FILES, force=force,
                                         skip=[self.storage_root])
            count = write_zip(files, zip_path)
            archived = archive_file(zip_path, self.storage_root / ARCHIVE_DIR, link=True)
        except SnapshotTooLarge as error:
            warnings.warn("runicorn: no code snapshot: the workspace %s has %s; leave out more "
                          "with its .rnignore (gitignore syntax) or pass force_snapshot=True"
                          % (self._workspace, error), RuntimeWarning, stacklevel=4)
            return
        except OSError as error:
            self._problems.report("write the code snapshot", zip_path, error, in_caller=True)
            return
        except Exception as error:  # never let a snapshot stop training
            warnings.warn("runicorn: no code snapshot of %s (%s: %s)"
                          % (self._workspace, type(error).__name__, error), RuntimeWarning,
                          stacklevel=4)
            return
        snapshot = {
            "saved": True, "workspace_root": str(self._workspace), "format": "zip",
            "created_at": int(_time()), "archive_path": archived["archive_path"],
            "fingerprint_kind": archived["fingerprint_kind"],
            "fingerprint": archived["fingerprint"], "file_count": count,
            "total_size_bytes": total,
        }

        def apply(assets: Dict[str, Any]) -> None:
            assets["code"] = {"snapshot": snapshot}

        self._writer.update_json("assets.json", apply, default=default_assets())

    def _write_environment(self) -> None:
        try:
            environment = capture_environment(self._workspace)
        except Exception as error:  # a probe gone wrong must not stop training
            _log.debug("environment capture failed: %s", error)
            return
        if self.joined:
            existing = read_json_object(self.dir / "environment.json") or {}
            environment.update(existing)  # what the wrapper recorded wins
        self._writer.write_json("environment.json", environment)

    # ---- gate: the slow path of every call once the run is closed or a strict error waits -----
    def _close_gate(self) -> None:
        self._gate = True

    def _gated(self, what: str) -> bool:
        """Raise a pending strict-mode error; True if the call must be dropped."""
        error = self._problems.take_deferred()
        if error is not None:
            if not self._finished:
                self._gate = None
            raise error
        if self._finished:
            if not self._warned_after_finish and os.getpid() == self._pid:
                self._warned_after_finish = True
                _log.warning("runicorn: run %s already finished; ignoring %s()", self.id, what)
            return True
        self._gate = None
        return False

    # ---- metrics ------------------------------------------------------------------------------
    def log(self, data: Optional[Mapping[str, Any]] = None, *, step: Optional[int] = None,
            stage: Any = None, **kwargs: Any) -> None:
        """Log one step of metrics: ``run.log({"loss": 0.1}, step=3, stage="train")``.

        Without ``step`` the step counter goes up by one (the first step is 1); an explicit step
        sets it. Keys ``step``/``global_step`` in the dict are dropped; ``stage`` may also come
        from the dict.
        """
        if self._gate is not None and self._gated("log"):
            return
        ts = _time()
        if kwargs:
            if data:
                merged = dict(data)
                merged.update(kwargs)
                data = merged
            else:
                data = kwargs
        if step is None:
            current = self._step + 1
        else:
            current = self._explicit_step(step)
        self._step = current
        self._events.append(self._encoder.metrics_line(ts, current, data, stage))
        if self._primary is not None and data:
            self._track_best(data, current)

    def _explicit_step(self, step: Any) -> int:
        try:
            return int(step)
        except (TypeError, ValueError, OverflowError):
            _log.warning("runicorn: invalid step %r, counting on from %d", step, self._step)
            return self._step + 1

    def set_primary_metric(self, metric_name: str, mode: str = "max") -> None:
        """Track the best value of ``metric_name``; ``best_metric_*`` go to the summary at finish."""
        if mode not in ("max", "min"):
            raise ValueError("mode must be 'max' or 'min', got %r" % (mode,))
        if self._gate is not None and self._gated("set_primary_metric"):
            return
        self._primary = str(metric_name)
        self._primary_mode = mode
        self._best_value = None
        self._best_step = None

    def _track_best(self, data: Mapping[str, Any], step: int) -> None:
        value = data.get(self._primary)
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return
        if type(value) is not int and type(value) is not float:
            try:
                value = float(value)
            except (TypeError, ValueError):
                return
        if value != value:  # NaN is never the best
            return
        best = self._best_value
        if (best is None or (self._primary_mode == "max" and value > best)
                or (self._primary_mode == "min" and value < best)):
            self._best_value = value
            self._best_step = step

    def summary(self, update: Optional[Mapping[str, Any]] = None, **kwargs: Any) -> None:
        """Merge ``update`` into ``summary.json`` (written within a second, and at finish)."""
        if self._gate is not None and self._gated("summary"):
            return
        merged = {}  # type: Dict[str, Any]
        if update:
            if not isinstance(update, Mapping):
                raise TypeError("summary() takes a dict, not %s" % type(update).__name__)
            merged.update(update)
        merged.update(kwargs)
        if merged:
            # A copy made of JSON types now: what is recorded is the value at this call, even if
            # the caller changes the objects before the flusher writes them.
            self._writer.update_summary(json_safe(merged))

    # ---- text and images ----------------------------------------------------------------------
    def log_text(self, text: str) -> None:
        """Append ``text`` to ``logs.txt``, each line as ``HH:MM:SS | line``."""
        if self._gate is not None and self._gated("log_text"):
            return
        stamp = time.strftime("%H:%M:%S")
        lines = str(text).split("\n")
        self._writer.log_lines.append(
            "\n".join(stamp + " | " + line if line.strip() else "" for line in lines) + "\n")

    def _append_log(self, text: str) -> None:
        """Add finished log lines (console capture, logging handler); dropped after finish."""
        if not self._finished:
            self._writer.log_lines.append(text)

    def log_image(self, key: str, image: Any, step: Optional[int] = None,
                  caption: Optional[str] = None, format: str = "png", quality: int = 90) -> str:
        """Save ``image`` under ``media/`` and log an ``image`` event; returns ``media/<file>``
        (``""`` when the file could not be written and the run is not strict)."""
        if self._gate is not None and self._gated("log_image"):
            return ""
        now = _time()
        name = media_file_name(key, format, now)
        media = self.dir / "media"
        target = media / name
        try:
            media.mkdir(exist_ok=True)
            save_image(image, target, format, quality)
        except OSError as error:
            try:
                target.unlink()
            except OSError:
                pass
            self._problems.report("save image %r" % (key,), target, error, in_caller=True)
            return ""
        relative = "media/" + name
        self._events.append(event_line({
            "ts": _time(), "type": "image",
            "data": {"key": key, "path": relative, "step": step, "caption": caption},
        }))
        return relative

    # ---- configuration ------------------------------------------------------------------------
    def log_config(self, args: Any = None, extra: Optional[Mapping[str, Any]] = None,
                   config_files: Optional[Iterable[Union[str, "os.PathLike[str]"]]] = None) -> None:
        """Record the run's configuration in ``assets.json`` (``config.args/extra/config_files``)."""
        if self._gate is not None and self._gated("log_config"):
            return
        changes = {}  # type: Dict[str, Any]
        if args is not None:
            changes["args"] = json_safe(_config_dict(args))
        if extra is not None:
            changes["extra"] = json_safe(_config_dict(extra))
        if config_files is not None:
            if isinstance(config_files, (str, os.PathLike)):
                config_files = [config_files]
            changes["config_files"] = [os.fspath(p) for p in config_files]

        def apply(assets: Dict[str, Any]) -> None:
            config = assets.get("config")
            config = dict(config) if isinstance(config, dict) else {}
            config.update(changes)
            assets["config"] = config

        self._writer.update_json("assets.json", apply, default=default_assets())

    # ---- upstream's assets: datasets, pretrained weights, outputs --------------------------
    @property
    def workspace_root(self) -> Path:
        """The workspace (code snapshots; outputs inside it are named ``./<relative path>``)."""
        return self._workspace

    def _update_assets(self, apply: Any) -> None:
        in_caller = threading.current_thread().name != "runicorn-outputs-" + self.id
        self._writer.update_json("assets.json", apply, default=default_assets(),
                                 in_caller=in_caller)

    def _append_asset(self, section: str, entry: Dict[str, Any]) -> None:
        def apply(assets: Dict[str, Any]) -> None:
            listed = assets.get(section)
            if not isinstance(listed, list):
                listed = assets[section] = []
            listed.append(entry)

        self._update_assets(apply)

    def log_dataset(self, name: str, root_or_uri: Any, *, context: str = "train",
                    save: bool = False, description: Optional[str] = None,
                    force_save: bool = False, max_archive_bytes: int = 5 * 1024 ** 3,
                    max_archive_files: int = 2000000) -> None:
        """Record a dataset the run uses in ``assets.json`` (``datasets``): a local path gets a
        size/mtime fingerprint; ``save=True`` also archives its bytes under ``archive/``
        (within the limits unless ``force_save``; past them it is recorded unsaved, with a
        warning)."""
        if self._gate is not None and self._gated("log_dataset"):
            return
        from .assets import dataset_entry

        try:
            entry = dataset_entry(self.storage_root, str(name), root_or_uri, context, save,
                                  description, force_save, max_archive_bytes, max_archive_files)
        except OSError as error:
            self._problems.report("archive dataset %r" % (name,), Path(str(root_or_uri)), error,
                                  in_caller=True)
            return
        self._append_asset("datasets", entry)

    def log_pretrained(self, name: str, *, path_or_uri: Any = None, save: bool = False,
                       source_type: str = "unknown", description: Optional[str] = None,
                       force_save: bool = False, max_archive_bytes: int = 5 * 1024 ** 3,
                       max_archive_files: int = 2000000) -> None:
        """Record pretrained weights the run starts from in ``assets.json`` (``pretrained``);
        ``save=True`` archives a local file or directory like :meth:`log_dataset`."""
        if save and path_or_uri is None:
            raise ValueError("log_pretrained(save=True) needs path_or_uri")
        if self._gate is not None and self._gated("log_pretrained"):
            return
        from .assets import pretrained_entry

        try:
            entry = pretrained_entry(self.storage_root, str(name), path_or_uri, save,
                                     source_type, description, force_save, max_archive_bytes,
                                     max_archive_files)
        except OSError as error:
            self._problems.report("archive pretrained %r" % (name,), Path(str(path_or_uri)),
                                  error, in_caller=True)
            return
        self._append_asset("pretrained", entry)

    def _output_scanner(self) -> OutputScanner:
        if self._outputs is None:
            self._outputs = OutputScanner(self.id, self.dir, self.storage_root, self._workspace,
                                          self._update_assets)
        return self._outputs

    def scan_outputs_once(self, *, output_dirs: List[Any], patterns: Optional[List[str]] = None,
                          stable_required: int = 2, min_age_sec: float = 1.0,
                          mode: str = "rolling", log_snapshot_interval_sec: float = 60.0,
                          state_gc_after_sec: float = 7 * 24 * 3600) -> Dict[str, Any]:
        """One pass over ``output_dirs``: archives outputs that are stable (the same size and
        mtime for ``stable_required`` scans, ``min_age_sec`` old) into ``archive/`` and lists
        them in ``assets.json`` (``outputs``). Returns ``{"run_id", "scanned", "archived",
        "changed", "archived_entries"}`` (``{}`` after finish or on a write error)."""
        if self._gate is not None and self._gated("scan_outputs_once"):
            return {}
        try:
            return self._output_scanner().scan(
                output_dirs, patterns=patterns, stable_required=stable_required,
                min_age_sec=min_age_sec, mode=mode,
                log_snapshot_interval_sec=log_snapshot_interval_sec,
                state_gc_after_sec=state_gc_after_sec)
        except OSError as error:
            self._problems.report("archive outputs", self.storage_root / "archive", error,
                                  in_caller=True)
            return {}

    def watch_outputs(self, *, output_dirs: List[Any], interval_sec: float = 10.0,
                      patterns: Optional[List[str]] = None, stable_required: int = 2,
                      min_age_sec: float = 1.0, mode: str = "rolling",
                      log_snapshot_interval_sec: float = 60.0,
                      state_gc_after_sec: float = 7 * 24 * 3600) -> None:
        """:meth:`scan_outputs_once` every ``interval_sec`` on a background thread, until
        :meth:`stop_outputs_watch` or ``finish()`` (which scans one last time: what changed
        since is archived, stable or not). A second call while watching does nothing."""
        if self._gate is not None and self._gated("watch_outputs"):
            return
        args = dict(output_dirs=list(output_dirs), patterns=patterns,
                    stable_required=stable_required, min_age_sec=min_age_sec, mode=mode,
                    log_snapshot_interval_sec=log_snapshot_interval_sec,
                    state_gc_after_sec=state_gc_after_sec)
        self._output_scanner().watch(interval_sec, args, self._watch_error)

    def _watch_error(self, error: BaseException) -> None:
        if isinstance(error, OSError):
            self._problems.report("archive outputs", self.storage_root / "archive", error)
        else:
            _log.warning("runicorn: scanning outputs failed: %s", error)

    def stop_outputs_watch(self) -> None:
        """Stop the :meth:`watch_outputs` thread (no final scan)."""
        if self._outputs is not None:
            self._outputs.stop()

    def _end_outputs_watch(self, from_hook: bool) -> None:
        if self._outputs is None:
            return
        args = self._outputs.stop(timeout=5.0 if from_hook else 60.0)
        if args is None or from_hook:
            return
        try:
            self._outputs.final_scan(args)
        except Exception as error:
            self._watch_error(error)

    # ---- artifacts ----------------------------------------------------------------------------
    def _lineage_entry(self) -> Dict[str, Any]:
        try:
            rel = self.dir.relative_to(self.storage_root).as_posix()
        except ValueError:
            rel = str(self.dir)
        return {"run_id": self.id, "dir": rel, "host": socket.gethostname()}

    def log_artifact(self, artifact: "Artifact", aliases: Optional[List[str]] = None
                     ) -> Optional["ArtifactVersion"]:
        """Logs ``artifact`` as its next version (``v1``, ``v2``, …; ``latest`` follows the
        newest), produced by this run, with ``aliases`` (e.g. ``["best"]``) moved onto it.

        A write error warns once and returns None (raises in strict mode); a bad name raises.
        """
        from .artifacts import log_version, record_in_run

        try:
            version = log_version(self.storage_root, artifact, aliases or [],
                                  self._lineage_entry())
            record_in_run(self.dir, "produced", version)
            return version
        except OSError as error:
            self._problems.report("log artifact %r" % (artifact.name,),
                                  self.storage_root / "artifacts", error, in_caller=True)
            return None

    def use_artifact(self, ref: str, type: Optional[str] = None) -> "ArtifactVersion":
        """The version ``ref`` names (``"name:latest"``, ``"name:v3"``, ``"name:best"``), recorded
        as used by this run. Raises KeyError when there is no such artifact or version."""
        from .artifacts import record_in_run, use_version

        version = use_version(self.storage_root, ref, type, self._lineage_entry())
        try:
            record_in_run(self.dir, "used", version)
        except OSError as error:
            self._problems.report("record artifact use", self.dir / "artifacts.json", error,
                                  in_caller=True)
        return version

    # ---- logging ------------------------------------------------------------------------------
    def get_logging_handler(self, level: int = logging.INFO,
                            fmt: Optional[str] = None) -> logging.Handler:
        """A :class:`logging.Handler` writing ``HH:MM:SS | LEVEL | logger | message`` lines."""
        return RunicornLoggingHandler(run=self, level=level, fmt=fmt)

    # ---- flushing, heartbeat, end -------------------------------------------------------------
    def flush(self) -> None:
        """Write everything buffered now (normally the background thread does it each second)."""
        if self._gate is not None and self._gated("flush"):
            return
        self._writer.flush()
        error = self._problems.take_deferred()
        if error is not None:
            raise error

    def _heartbeat(self) -> None:
        if self._status is not None and not self._ending:
            self._status.heartbeat_at = _time()
            self._writer.write_status(self._status.as_json(), timeout=_HOOK_TIMEOUT)

    def finish(self, status: str = "finished") -> None:
        """End the run: flush everything and write the final status. A second call does nothing."""
        self._end(status, None, from_hook=False)

    def _interrupt_reason(self) -> str:
        return "signal: SIGINT" if self._saw_sigint else "exception: KeyboardInterrupt"

    def _end_from_hook(self, status: Optional[str], exit_reason: Optional[str]) -> None:
        """End the run from a process hook; ``status`` None means the interpreter exits normally."""
        if status is None:
            if self._saw_sigterm:
                status, exit_reason = "interrupted", "signal: SIGTERM"
            elif self._saw_sigint:
                status, exit_reason = "interrupted", "signal: SIGINT"
            else:
                status, exit_reason = "finished", None
        elif status == "interrupted" and exit_reason is None:
            exit_reason = self._interrupt_reason()
        self._end(status, exit_reason, from_hook=True)

    def _end(self, status: str, exit_reason: Optional[str], from_hook: bool) -> None:
        with self._end_lock:
            if self._ending:
                return
            self._ending = True
        if os.getpid() != self._pid:
            self._orphan()
            return
        final = normalize_final_status(status)
        if final is None:
            warnings.warn("runicorn: unknown status %r, using 'finished'" % (status,),
                          RuntimeWarning, stacklevel=3)
            final = "finished"
        timeout = _HOOK_TIMEOUT if from_hook else -1
        try:
            if self._console is not None:
                self._console.stop()
                self._console = None
            self._end_outputs_watch(from_hook)
            if self._best_value is not None:
                self._writer.update_summary({
                    "best_metric_value": self._best_value,
                    "best_metric_name": self._primary,
                    "best_metric_step": self._best_step,
                    "best_metric_mode": self._primary_mode,
                })
            self._finished = True
            self._gate = True
            self._flusher.stop(timeout=5.0 if from_hook else 30.0)
            self._writer.flush(timeout=timeout)
            if self._status is not None:
                self._status.end(final, _time(), exit_reason)
                self._writer.write_status(self._status.as_json(), final=True, timeout=timeout)
            self._writer.close()
        finally:
            self._finished = True
            self._gate = True
            lifecycle.run_closed(self)
        if not from_hook:
            error = self._problems.take_deferred()
            if error is not None:
                raise error

    def _orphan(self) -> None:
        """This object was inherited by a forked child: never write or finish the parent's run."""
        self._ending = True
        self._finished = True
        self._gate = True
        self._status = None
        if self._console is not None:
            self._console.detach()
            self._console = None

    # ---- context manager ----------------------------------------------------------------------
    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self._end("finished", None, from_hook=False)
        elif issubclass(exc_type, KeyboardInterrupt):
            self._end("interrupted", self._interrupt_reason(), from_hook=False)
        elif issubclass(exc_type, SystemExit) and getattr(exc, "code", None) in (None, 0):
            self._end("finished", None, from_hook=False)
        elif issubclass(exc_type, SystemExit):
            code = exc.code if isinstance(exc.code, int) else 1  # sys.exit("message") exits 1
            self._end("failed", "exit code %d" % code, from_hook=False)
        else:
            self._end("failed", "exception: " + exc_type.__name__, from_hook=False)
        return False

    # ---- attributes ---------------------------------------------------------------------------
    @property
    def run_dir(self) -> Path:
        """Upstream's name for :attr:`dir`."""
        return self.dir

    @property
    def is_finished(self) -> bool:
        return self._finished

    def __repr__(self) -> str:
        return "<runicorn.Run id=%s path=%r dir=%s%s>" % (
            self.id, self.path, self.dir, " finished" if self._finished else "")
