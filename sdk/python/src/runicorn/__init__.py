"""Runicorn SDK: record machine-learning experiments as plain files, with the standard library only.

    import runicorn as rn

    with rn.init(path="cv/resnet", alias="baseline") as run:
        for step in range(100):
            run.log({"loss": 1 / (step + 1)})
        run.summary({"final_loss": 0.01})

Runs are directories in the format of ``docs/run-format.md`` (the format of the upstream
``runicorn`` package): ``<root>/runs/<path>/<run_id>/``.
"""

from ._version import __version__
from .api import init
from .artifacts import Artifact, ArtifactVersion
from .lifecycle import get_active_run
from .loghandler import RunicornLoggingHandler
from .noop import NoOpRun
from .run import Run
from .snapshot import snapshot_workspace
from .switch import enabled, is_enabled, reset_enabled, set_enabled

__all__ = [
    "__version__",
    "init",
    "Artifact",
    "ArtifactVersion",
    "get_active_run",
    "Run",
    "snapshot_workspace",
    "NoOpRun",
    "RunicornLoggingHandler",
    "enabled",
    "is_enabled",
    "set_enabled",
    "reset_enabled",
]
