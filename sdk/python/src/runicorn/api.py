"""``init()``: choose between a new run, a joined run (``RUNICORN_RUN_DIR``) and a no-op run,
and resolve the settings that come from arguments or the environment:

- ``RUNICORN_ON`` (0/false/no/off: nothing is recorded), ``RUNICORN_DIR`` (storage root),
  ``RUNICORN_STRICT`` (1: write errors raise), ``RUNICORN_HEARTBEAT_INTERVAL`` (seconds),
  ``RUNICORN_RUN_DIR`` (join the run the agent created there).
"""

import os
import warnings
from pathlib import Path
from typing import Optional, Sequence, Union

from .console import TQDM_MODES
from .jsonio import read_json_object
from .lifecycle import set_active_run
from .naming import check_run_id, normalize_run_path, storage_root
from .noop import NoOpRun
from .run import Run
from .alerts import alert_settings
from .stall import stall_settings
from .status import heartbeat_interval_from
from .switch import env_flag, is_enabled


def init(path: Optional[str] = None, storage: Optional[str] = None, run_id: Optional[str] = None,
         alias: Optional[str] = None, capture_env: bool = False, snapshot_code: bool = False,
         workspace_root: Optional[str] = None, snapshot_format: str = "zip",
         force_snapshot: bool = False, capture_console: bool = False, tqdm_mode: str = "smart",
         strict: bool = False, heartbeat_interval: Optional[float] = None,
         stall_after: Optional[float] = None,
         stall_factor: Optional[float] = None, watch: Optional[Sequence[str]] = None,
         gpu_idle_after: Optional[float] = None) -> Union[Run, NoOpRun]:
    """Start a run and make it the active run.

    The parameters up to ``tqdm_mode`` are upstream's, in upstream's order (calls that pass them
    by position keep working); ``strict``, ``heartbeat_interval``, ``stall_after``,
    ``stall_factor``, ``watch`` and ``gpu_idle_after`` are ours.

    ``path`` is the run's place in the tree (``"cv/resnet"``; None is ``"default"``, ``""`` the
    root); the run lives in ``<root>/runs/<path>/<run_id>/`` where the root is ``storage``, else
    ``$RUNICORN_DIR``, else ``~/.runicorn``. Raises ValueError for an invalid path, run id,
    tqdm_mode, heartbeat_interval, stall_after or stall_factor; write errors only warn unless
    ``strict``.

    ``stall_after`` (seconds, default 600) and ``stall_factor`` (default 5) are recorded in
    ``meta.json`` as ``stall``: while the process is alive, readers (``runicorn-agent ls``, the
    hub, the dashboard) show the run ``stalled`` when no new step arrived for longer than
    max(stall_after, stall_factor x the median interval of its recent steps). In a joined run
    they are recorded only when ``runicorn-agent run`` recorded none.

    ``watch`` (metric names; default: every metric whose name contains ``loss``) and
    ``gpu_idle_after`` (seconds, default 900) are recorded in ``meta.json`` as ``alerts``: the
    agent raises an alert when a watched metric logs NaN or an infinity, and when every GPU the
    run uses stays under 5 % utilisation that long while it runs (stalled, crashed and failed
    runs raise alerts too). In a joined run they are recorded only when the agent recorded none.

    ``workspace_root`` (default: the enclosing git work tree, else the working directory) is
    recorded in ``meta.json``. ``snapshot_code=True`` zips it into the run's
    ``code_snapshot.zip`` (honouring ``.gitignore`` and ``.rnignore``; see
    :mod:`runicorn.snapshot`), stores that zip in the archive and records it in ``assets.json``;
    a workspace over 500 MiB or 200,000 files is not snapshotted (a warning says why) unless
    ``force_snapshot``. ``snapshot_format`` must be ``"zip"``.
    """
    if not is_enabled():
        set_active_run(None)
        return NoOpRun(path=path, alias=alias)
    if tqdm_mode not in TQDM_MODES:
        raise ValueError("tqdm_mode must be one of %s, got %r" % (", ".join(TQDM_MODES), tqdm_mode))
    run_path = normalize_run_path(path)
    if run_id is not None:
        check_run_id(run_id)
    interval = heartbeat_interval_from(heartbeat_interval)
    stall = stall_settings(stall_after, stall_factor)
    alerts = alert_settings(watch, gpu_idle_after)
    strict = bool(strict) or env_flag("RUNICORN_STRICT") is True
    root = storage_root(storage)
    if snapshot_format != "zip":
        raise ValueError("snapshot_format must be 'zip', got %r" % (snapshot_format,))
    workspace = Path(os.path.abspath(os.path.expanduser(workspace_root))) if workspace_root \
        else None
    common = dict(alias=alias, strict=strict, heartbeat_interval=interval,
                  capture_console=capture_console, tqdm_mode=tqdm_mode, capture_env=capture_env,
                  workspace=workspace, snapshot_code=bool(snapshot_code),
                  force_snapshot=bool(force_snapshot), stall=stall,
                  alerts=alerts)

    joined = os.environ.get("RUNICORN_RUN_DIR")
    if joined:
        joined_dir = Path(os.path.abspath(os.path.expanduser(joined)))
        if joined_dir.is_dir():
            meta = read_json_object(joined_dir / "meta.json")
            if meta is None:
                warnings.warn("runicorn: %s has no readable meta.json; joining it anyway"
                              % joined_dir, RuntimeWarning, stacklevel=2)
                meta = {}
            elif meta.get("path") is None and meta.get("project") and meta.get("name"):
                meta["path"] = "%s/%s" % (meta["project"], meta["name"])  # legacy layout
            if isinstance(meta.get("storage_dir"), str):
                root = Path(meta["storage_dir"])
            return Run(root=root, path=run_path, run_id=None, joined_dir=joined_dir,
                       joined_meta=meta, **common)
        warnings.warn("runicorn: RUNICORN_RUN_DIR=%s is not a directory; starting a new run instead"
                      % joined, RuntimeWarning, stacklevel=2)
    return Run(root=root, path=run_path, run_id=run_id, **common)
