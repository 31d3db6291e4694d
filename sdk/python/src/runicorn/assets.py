"""The entries of upstream's ``assets.json`` (runicorn 0.6/0.7) that name things a run used:
the code snapshot, datasets and pretrained weights, with their fingerprints and, when archived,
where their bytes are (``archive_path`` is absolute, as upstream writes it).

``save=True`` archives the bytes (a file: one blob; a directory: its blobs and a manifest)
unless they exceed ``max_archive_bytes``/``max_archive_files``: then, unlike upstream (which
raises), the entry is recorded unsaved and a warning names the limit and ``force_save=True``.
"""

import os
import warnings
from pathlib import Path
from typing import Any, Dict, Optional, Union

from .archive import ARCHIVE_DIR, archive_dir, archive_file
from .jsonio import json_safe

ARCHIVE_LIMIT_BYTES = 5 * 1024 * 1024 * 1024
ARCHIVE_LIMIT_FILES = 2000000


def stat_fingerprint(path: Path) -> Dict[str, Any]:
    st = os.stat(str(path))
    return {"size_bytes": int(st.st_size), "mtime": float(st.st_mtime)}


def dir_stat_fingerprint(path: Path) -> Dict[str, Any]:
    count = total = 0
    for dirpath, _, filenames in os.walk(str(path)):
        for name in filenames:
            try:
                total += os.stat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue
            count += 1
    return {"mtime": float(os.stat(str(path)).st_mtime), "file_count": count,
            "total_size_bytes": total}


def _local_path(value: Any) -> Optional[Path]:
    """A local path named by ``value`` (a str or Path that is not a URI), else None."""
    if isinstance(value, Path):
        return value.expanduser()
    if isinstance(value, str) and "://" not in value:
        return Path(value).expanduser()
    return None


def _archive(kind: str, name: str, path: Path, category: str, storage_root: Path,
             force: bool, max_bytes: int, max_files: int) -> Optional[Dict[str, Any]]:
    """Archives a file or directory within the limits; None (with a warning) past them."""
    if path.is_dir():
        fp = dir_stat_fingerprint(path)
        size, files = fp["total_size_bytes"], fp["file_count"]
    else:
        size, files = os.stat(str(path)).st_size, 1
    if not force and (size > max_bytes or files > max_files):
        warnings.warn(
            "runicorn: %s %r at %s is %d bytes in %d files, over the archive limit (%d bytes, "
            "%d files): recorded without its bytes; pass force_save=True to archive it anyway"
            % (kind, name, path, size, files, max_bytes, max_files), RuntimeWarning, stacklevel=4)
        return None
    root = storage_root / ARCHIVE_DIR
    if path.is_dir():
        return archive_dir(path, root, category)
    return archive_file(path, root)


def dataset_entry(storage_root: Path, name: str, root_or_uri: Any, context: str, save: bool,
                  description: Optional[str], force_save: bool, max_archive_bytes: int,
                  max_archive_files: int) -> Dict[str, Any]:
    """The ``datasets[]`` entry of ``run.log_dataset`` (archiving when ``save``).
    Raises OSError when archiving fails."""
    local = _local_path(root_or_uri)
    uri = str(local) if local is not None else json_safe(root_or_uri)
    fingerprint = None  # type: Optional[Dict[str, Any]]
    archived = None  # type: Optional[Dict[str, Any]]
    if local is not None and local.exists():
        fingerprint = dir_stat_fingerprint(local) if local.is_dir() else stat_fingerprint(local)
        if save:
            archived = _archive("dataset", name, local, "datasets", storage_root, force_save,
                                max_archive_bytes, max_archive_files)
    elif save:
        warnings.warn("runicorn: dataset %r: nothing to archive at %s (not a local file or "
                      "directory); recorded without its bytes" % (name, root_or_uri),
                      RuntimeWarning, stacklevel=3)
    entry = {"name": name, "context": context, "uri": uri, "description": description,
             "saved": archived is not None, "fingerprint": fingerprint}  # type: Dict[str, Any]
    if archived:
        entry.update(archived)
    return entry


def pretrained_entry(storage_root: Path, name: str,
                     path_or_uri: Optional[Union[str, Path, Dict[str, Any]]], save: bool,
                     source_type: str, description: Optional[str], force_save: bool,
                     max_archive_bytes: int, max_archive_files: int) -> Dict[str, Any]:
    """The ``pretrained[]`` entry of ``run.log_pretrained`` (archiving when ``save``)."""
    local = _local_path(path_or_uri)
    archived = None  # type: Optional[Dict[str, Any]]
    if save:
        if local is not None and local.exists():
            archived = _archive("pretrained weights", name, local, "pretrained", storage_root,
                                force_save, max_archive_bytes, max_archive_files)
        else:
            warnings.warn("runicorn: pretrained %r: nothing to archive at %s (not a local file "
                          "or directory); recorded without its bytes" % (name, path_or_uri),
                          RuntimeWarning, stacklevel=3)
    if path_or_uri is None:
        shown = None  # type: Any
    elif isinstance(path_or_uri, (str, Path)):
        shown = str(path_or_uri)
    else:
        shown = json_safe(path_or_uri)
    entry = {"name": name, "source_type": source_type, "path_or_uri": shown,
             "description": description, "saved": archived is not None}  # type: Dict[str, Any]
    if archived:
        entry.update(archived)
    return entry
