"""``environment.json`` (``init(capture_env=True)``): Python, platform, installed packages, git
state, GPUs and a short allow-list of environment variables. Every probe is best effort: a
missing tool gives ``null``, never an error.
"""

import os
import platform
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

_ENV_PREFIXES = ("CUDA_", "CONDA_", "NCCL_", "SLURM_JOB_")
_ENV_NAMES = ("PYTHONPATH", "VIRTUAL_ENV", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "RUNICORN_DIR",
              "WANDB_MODE", "MLFLOW_TRACKING_URI", "PATH")


def _run(args: List[str], cwd: Optional[Path] = None, timeout: float = 5.0) -> Optional[str]:
    try:
        done = subprocess.run(args, cwd=None if cwd is None else str(cwd), stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.decode("utf-8", errors="replace").strip()


def pip_packages() -> List[str]:
    """``name==version`` of every installed distribution, sorted like ``pip freeze``."""
    try:
        from importlib import metadata
    except ImportError:  # pragma: no cover - Python < 3.8
        return []
    found = {}
    try:
        for dist in metadata.distributions():
            name = dist.metadata["Name"]
            if name and name.lower() not in found:
                found[name.lower()] = "%s==%s" % (name, dist.version)
    except Exception:
        pass
    return [found[key] for key in sorted(found)]


def git_info(workspace: Path) -> Optional[Dict[str, Any]]:
    if shutil.which("git") is None:
        return None
    commit = _run(["git", "rev-parse", "HEAD"], workspace)
    if commit is None:
        return None
    status = _run(["git", "status", "--porcelain"], workspace)
    return {
        "commit": commit,
        "branch": _run(["git", "rev-parse", "--abbrev-ref", "HEAD"], workspace),
        "dirty": bool(status) if status is not None else None,
    }


def gpu_info() -> Optional[List[Dict[str, str]]]:
    if shutil.which("nvidia-smi") is None:
        return None
    fields = ["index", "name", "memory.total", "memory.free", "utilization.gpu", "temperature.gpu"]
    out = _run(["nvidia-smi", "--query-gpu=" + ",".join(fields), "--format=csv,noheader"])
    if out is None:
        return None
    gpus = []
    for line in out.splitlines():
        values = [v.strip() for v in line.split(",")]
        if len(values) == len(fields):
            gpus.append(dict(zip(fields, values)))
    return gpus


def env_variables() -> Dict[str, str]:
    chosen = {}
    for name, value in os.environ.items():
        if name in _ENV_NAMES or name.startswith(_ENV_PREFIXES):
            chosen[name] = value[:500] if name == "PATH" else value
    return dict(sorted(chosen.items()))


def capture(workspace: Path) -> Dict[str, Any]:
    """The contents of ``environment.json``."""
    uname = platform.uname()
    return {
        "python_version": sys.version,
        "platform": "%s %s (%s)" % (platform.system(), platform.release(), platform.machine()),
        "platform_details": {
            "system": uname.system,
            "node": uname.node,
            "release": uname.release,
            "version": uname.version,
            "machine": uname.machine,
            "processor": uname.processor,
            "python_implementation": platform.python_implementation(),
            "python_compiler": platform.python_compiler(),
        },
        "pip_packages": pip_packages(),
        "git_info": git_info(workspace),
        "gpu_info": gpu_info(),
        "env_variables": env_variables(),
        "argv": list(sys.argv),
        "cwd": os.getcwd(),
        "hostname": socket.gethostname(),
    }


def workspace_root() -> Path:
    """The nearest ancestor of the working directory holding ``.git``, else the working directory."""
    cwd = Path(os.getcwd())
    for candidate in [cwd] + list(cwd.parents):
        if (candidate / ".git").exists():
            return candidate
    return cwd
