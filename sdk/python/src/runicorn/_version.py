"""The package version, and the ``writer`` name recorded in ``meta.json``."""

__version__ = "0.1.0"

WRITER = "runicorn-rs-python/" + __version__
