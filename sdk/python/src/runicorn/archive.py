"""Upstream's asset archive under ``<root>/archive/`` (runicorn 0.6/0.7), written the way its
viewer reads it:

    archive/blobs/<sha[:2]>/<sha>                          a file's bytes, named by SHA-256
    archive/manifests/<category>/<fp[:2]>/<fp>.json        a directory: {"created_at",
        "source_path", "fingerprint", "total_size_bytes", "file_count",
        "files": {"<rel/path>": {"sha256", "size_bytes"}}}
    archive/outputs/rolling/<run_id>/<sha1(key)>_<name>    a run's latest copy of an output
        (a directory copy holds a ".complete" file)

A directory's fingerprint is the SHA-256 of its sorted ``<rel path> NUL <sha> NUL`` pairs
(upstream's, so both packages find each other's manifests). Blobs and manifests appear by
atomic rename, so a reader never sees half of one; a blob that exists is never rewritten.
Files are copied (hashing while copying, one read): a source may be rewritten in place later,
so it is never hard-linked into the archive. This is not the artifact pool (``artifacts/``);
our garbage collector never touches ``archive/``.
"""

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

from .jsonio import write_json_atomic

ARCHIVE_DIR = "archive"
_BLOCK = 1 << 20


def _temp_name(directory: Path, hint: str) -> Path:
    return directory / (".%s.tmp-%d-%d" % (hint[:40], os.getpid(), time.time_ns()))


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(str(path))
    except OSError:
        pass


def copy_hashing(source: Path, dest: Path) -> Tuple[str, int]:
    """Copies ``source`` to ``dest`` (a new file); its SHA-256 and size, from one read."""
    digest = hashlib.sha256()
    size = 0
    with open(str(source), "rb") as src, open(str(dest), "xb") as out:
        for block in iter(lambda: src.read(_BLOCK), b""):
            digest.update(block)
            out.write(block)
            size += len(block)
    try:
        shutil.copystat(str(source), str(dest))
    except OSError:
        pass
    return digest.hexdigest(), size


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(str(path), "rb") as f:
        for block in iter(lambda: f.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def blob_path(archive_root: Path, sha: str) -> Path:
    return archive_root / "blobs" / sha[:2] / sha


def store_blob(source: Path, archive_root: Path, link: bool = False) -> Tuple[str, int]:
    """Puts ``source``'s bytes in the blob store (once); their SHA-256 and size. ``link``: hard
    link the blob to ``source`` where possible (only for files nobody rewrites, like the
    run's own code snapshot)."""
    blobs = archive_root / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    if link:
        sha = sha256_file(source)
        size = os.stat(str(source)).st_size
        target = blob_path(archive_root, sha)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = _temp_name(blobs, sha)
            try:
                os.link(str(source), str(tmp))
            except OSError:
                shutil.copyfile(str(source), str(tmp))
            os.replace(str(tmp), str(target))
        return sha, size
    # A temporary file directly in blobs/ (not in a fan-out folder): upstream's tools count
    # only the files of the fan-out folders, and skip names starting with ".".
    tmp = _temp_name(blobs, source.name)
    try:
        sha, size = copy_hashing(source, tmp)
        target = blob_path(archive_root, sha)
        if target.exists():
            tmp.unlink()
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(str(tmp), str(target))
    except BaseException:
        _unlink_quietly(tmp)
        raise
    return sha, size


def archive_file(source: Path, archive_root: Path, link: bool = False) -> Dict[str, Any]:
    """One file into the blob store: the fields an assets.json entry carries."""
    sha, _ = store_blob(source, archive_root, link=link)
    return {"fingerprint_kind": "sha256", "fingerprint": sha,
            "archive_path": str(blob_path(archive_root, sha))}


def walk_files(directory: Path) -> Iterator[Tuple[Path, str]]:
    """Every file below ``directory`` (links to files followed, links to directories not),
    in a stable order, with its ``/``-separated relative path."""
    for dirpath, dirnames, filenames in os.walk(str(directory)):
        dirnames.sort()
        base = Path(dirpath)
        for name in sorted(filenames):
            full = base / name
            yield full, full.relative_to(directory).as_posix()


def manifest_fingerprint(entries: List[Tuple[str, str]]) -> str:
    digest = hashlib.sha256()
    for rel, sha in sorted(entries):
        digest.update(rel.encode("utf-8") + b"\0" + sha.encode("utf-8") + b"\0")
    return digest.hexdigest()


def archive_dir(source: Path, archive_root: Path, category: str) -> Dict[str, Any]:
    """Every file of a directory into the blob store, and its manifest under
    ``manifests/<category>/``: the fields an assets.json entry carries."""
    files = {}  # type: Dict[str, Dict[str, Any]]
    total = 0
    for full, rel in walk_files(source):
        try:
            sha, size = store_blob(full, archive_root)
        except OSError:  # vanished or unreadable meanwhile: left out, like upstream
            continue
        files[rel] = {"sha256": sha, "size_bytes": size}
        total += size
    fingerprint = manifest_fingerprint([(rel, f["sha256"]) for rel, f in files.items()])
    manifest = archive_root / "manifests" / category / fingerprint[:2] / (fingerprint + ".json")
    if not manifest.exists():
        manifest.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(manifest, {
            "created_at": time.time(), "source_path": str(source), "fingerprint": fingerprint,
            "total_size_bytes": total, "file_count": len(files), "files": files,
        })
    return {"fingerprint_kind": "sha256_manifest", "fingerprint": fingerprint,
            "archive_path": str(manifest), "manifest_path": str(manifest),
            "file_count": len(files), "total_size_bytes": total}


def _safe_leaf(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:80]


def rolling_path(archive_root: Path, run_id: str, key: str, name: str) -> Path:
    """A run's rolling copy of the output ``key`` (replaced by each newer copy)."""
    hid = hashlib.sha1(key.encode("utf-8")).hexdigest()
    return archive_root / "outputs" / "rolling" / _safe_leaf(run_id) / (
        "%s_%s" % (hid, _safe_leaf(name)))


def archive_file_rolling(source: Path, archive_root: Path, run_id: str, key: str,
                         stat_only: bool = False) -> Dict[str, Any]:
    """Copies a file over the run's rolling copy of ``key``. ``stat_only`` (logs that grow):
    fingerprinted by size and mtime instead of SHA-256 (upstream's ``stat`` kind)."""
    dest = rolling_path(archive_root, run_id, key, source.name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(dest.parent, dest.name)
    try:
        sha, _ = copy_hashing(source, tmp)
        st = os.stat(str(tmp))  # copystat gave it the source's mtime
        os.replace(str(tmp), str(dest))
    except BaseException:
        _unlink_quietly(tmp)
        raise
    if stat_only:
        fingerprint = json.dumps({"size_bytes": int(st.st_size), "mtime": float(st.st_mtime)},
                                 ensure_ascii=False, sort_keys=True)
        return {"fingerprint_kind": "stat", "fingerprint": fingerprint, "archive_path": str(dest),
                "size_bytes": int(st.st_size), "mtime": float(st.st_mtime)}
    return {"fingerprint_kind": "sha256", "fingerprint": sha, "archive_path": str(dest)}


def archive_dir_rolling(source: Path, archive_root: Path, run_id: str,
                        key: str) -> Dict[str, Any]:
    """Copies a directory over the run's rolling copy of ``key``; the copy holds a
    ``.complete`` file once whole."""
    dest = rolling_path(archive_root, run_id, key, source.name)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(dest.parent, dest.name)
    entries = []  # type: List[Tuple[str, str]]
    total = 0
    try:
        tmp.mkdir()
        for full, rel in walk_files(source):
            target = tmp / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                sha, size = copy_hashing(full, target)
            except OSError:
                _unlink_quietly(target)
                continue
            entries.append((rel, sha))
            total += size
        (tmp / ".complete").write_text("ok\n", encoding="utf-8")
        old = None  # type: Optional[Path]
        if dest.exists():
            old = _temp_name(dest.parent, dest.name + "-old")
            os.replace(str(dest), str(old))
        os.replace(str(tmp), str(dest))
        if old is not None:
            shutil.rmtree(str(old), ignore_errors=True)
    except BaseException:
        shutil.rmtree(str(tmp), ignore_errors=True)
        raise
    return {"fingerprint_kind": "sha256_manifest", "fingerprint": manifest_fingerprint(entries),
            "archive_path": str(dest), "file_count": len(entries), "total_size_bytes": total}
