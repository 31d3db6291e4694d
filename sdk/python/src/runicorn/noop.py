"""``NoOpRun``: what ``init()`` returns when tracking is off. Same calls as ``Run``, no effect."""

import logging
from typing import Any, Dict, Iterable, Mapping, Optional


class NoOpRun:
    """A run that records nothing (``id`` is ``"disabled"``)."""

    joined = False
    storage_root = None
    workspace_root = None
    dir = None
    run_dir = None

    def __init__(self, path: Optional[str] = None, alias: Optional[str] = None) -> None:
        self.id = "disabled"
        self.path = path or "default"
        self.alias = alias
        self._finished = False

    @property
    def is_finished(self) -> bool:
        return self._finished

    def log(self, data: Optional[Mapping[str, Any]] = None, *, step: Optional[int] = None,
            stage: Any = None, **kwargs: Any) -> None:
        return None

    def set_primary_metric(self, metric_name: str, mode: str = "max") -> None:
        if mode not in ("max", "min"):
            raise ValueError("mode must be 'max' or 'min', got %r" % (mode,))

    def summary(self, update: Optional[Mapping[str, Any]] = None, **kwargs: Any) -> None:
        return None

    def log_text(self, text: str) -> None:
        return None

    def log_artifact(self, artifact: Any, aliases: Any = None) -> None:
        return None

    def use_artifact(self, ref: str, type: Optional[str] = None) -> Any:
        """Tracking is off: the version is still found (a script may load its model), only
        its use is not recorded."""
        from .artifacts import use_version
        from .naming import storage_root

        return use_version(storage_root(), ref, type, None)

    def log_image(self, key: str, image: Any, step: Optional[int] = None,
                  caption: Optional[str] = None, format: str = "png", quality: int = 90) -> str:
        return ""

    def log_config(self, args: Any = None, extra: Optional[Mapping[str, Any]] = None,
                   config_files: Optional[Iterable[Any]] = None) -> None:
        return None

    def log_dataset(self, name: str, root_or_uri: Any, **kwargs: Any) -> None:
        return None

    def log_pretrained(self, name: str, **kwargs: Any) -> None:
        return None

    def scan_outputs_once(self, **kwargs: Any) -> Dict[str, Any]:
        return {}

    def watch_outputs(self, **kwargs: Any) -> None:
        return None

    def stop_outputs_watch(self) -> None:
        return None

    def get_logging_handler(self, level: int = logging.INFO,
                            fmt: Optional[str] = None) -> logging.Handler:
        return logging.NullHandler(level)

    def flush(self) -> None:
        return None

    def _append_log(self, text: str) -> None:
        """What :class:`~runicorn.RunicornLoggingHandler` calls; nothing is recorded."""
        return None

    def finish(self, status: str = "finished") -> None:
        self._finished = True

    def __enter__(self) -> "NoOpRun":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self._finished = True
        return False

    def __repr__(self) -> str:
        return "<runicorn.NoOpRun path=%r>" % (self.path,)
