"""Versioned artifacts (models, datasets, code) under the storage root, with lineage.

Layout (docs/run-format.md, "Artifacts")::

    <root>/artifacts/<type>/<name>/versions.json     the version index, aliases and lineage
    <root>/artifacts/<type>/<name>/v<N>/manifest.json  every file: path, size, sha256; references
    <root>/artifacts/<type>/<name>/v<N>/metadata.json  description, metadata, producing run
    <root>/artifacts/<type>/<name>/v<N>/files/...      the files, hard links into the pool
    <root>/artifacts/.pool/<sha[:2]>/<sha>              each content once

A version number is claimed by creating its ``v<N>`` directory (atomic: two writers, on one
host or several sharing the root, never get the same number); ``versions.json`` is rewritten
atomically under an exclusive lock of ``<name>/.lock``. A version is immutable once logged. Each
run also lists what it produced and used in its own ``artifacts.json``.
"""

import errno
import hashlib
import os
import shutil
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional

from .jsonio import read_json_object, write_json_atomic

try:  # POSIX: the version index is rewritten under an exclusive lock.
    import fcntl
except ImportError:  # pragma: no cover - Windows: the v<N> claim alone keeps numbers unique.
    fcntl = None  # type: ignore[assignment]

ARTIFACTS_DIR = "artifacts"
POOL_DIR = ".pool"
_NAME_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
_CHUNK = 1 << 20


def _check_name(what: str, value: str) -> str:
    if not value or value in (".", "..") or not set(value) <= _NAME_OK or len(value) > 128:
        raise ValueError(
            "artifact %s %r: use 1-128 letters, digits, '-', '_' or '.'" % (what, value))
    return value


def _check_member(name: str) -> str:
    parts = name.replace("\\", "/").split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError("artifact file name %r must be a relative path without '..'" % (name,))
    return "/".join(parts)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(str(path), "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


class Artifact:
    """A set of files (and references) to be logged as the next version of ``name``."""

    def __init__(self, name: str, type: str = "model", description: Optional[str] = None,
                 metadata: Optional[Mapping[str, Any]] = None) -> None:
        self.name = _check_name("name", name)
        self.type = _check_name("type", type)
        self.description = description
        self.metadata = dict(metadata or {})
        self._files = {}  # type: Dict[str, Path]
        self._references = []  # type: List[Dict[str, Any]]

    def add_file(self, path: Any, name: Optional[str] = None) -> "Artifact":
        source = Path(path)
        if not source.is_file():
            raise FileNotFoundError("artifact %s: no file at %s" % (self.name, source))
        self._files[_check_member(name or source.name)] = source
        return self

    def add_dir(self, path: Any, name: Optional[str] = None,
                exclude: Iterable[str] = ()) -> "Artifact":
        import fnmatch

        base = Path(path)
        if not base.is_dir():
            raise NotADirectoryError("artifact %s: no directory at %s" % (self.name, base))
        patterns = list(exclude)
        prefix = name.strip("/") + "/" if name else ""
        for dirpath, dirnames, filenames in os.walk(str(base)):
            dirnames.sort()
            for filename in sorted(filenames):
                full = Path(dirpath) / filename
                rel = full.relative_to(base).as_posix()
                if any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(filename, p) for p in patterns):
                    continue
                if full.is_file():
                    self._files[_check_member(prefix + rel)] = full
        return self

    def add_reference(self, uri: str, checksum: Optional[str] = None,
                      size: Optional[int] = None) -> "Artifact":
        self._references.append({"uri": str(uri), "checksum": checksum, "size": size})
        return self


class ArtifactVersion:
    """One logged version: its files on disk, read-only."""

    def __init__(self, directory: Path, name: str, type: str, version: int,
                 manifest: Dict[str, Any]) -> None:
        self.dir = directory
        self.name = name
        self.type = type
        self.version = version
        self.manifest = manifest

    @property
    def ref(self) -> str:
        return "%s:v%d" % (self.name, self.version)

    @property
    def files(self) -> List[str]:
        return [f["path"] for f in self.manifest.get("files", [])]

    def path(self, name: str) -> Path:
        """Where the file ``name`` of this version is on disk."""
        member = _check_member(name)
        if member not in self.files:
            raise KeyError("%s has no file %r (it has %s)" % (self.ref, name, ", ".join(self.files)))
        return self.dir / "files" / member

    def download(self, target_dir: Any = None) -> Path:
        """Copies the version's files into ``target_dir`` (default ``./artifacts/<name>-v<N>``),
        each checked against its SHA-256; returns the directory."""
        target = Path(target_dir) if target_dir is not None else (
            Path("artifacts") / ("%s-v%d" % (self.name, self.version)))
        for entry in self.manifest.get("files", []):
            source = self.dir / "files" / entry["path"]
            dest = target / entry["path"]
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(str(source), str(dest))
            if _sha256(dest) != entry["sha256"]:
                raise IOError("%s: %s does not match its SHA-256 (the artifact store is damaged)"
                              % (self.ref, entry["path"]))
        return target

    def __repr__(self) -> str:
        return "ArtifactVersion(%s, type=%s, files=%d)" % (self.ref, self.type, len(self.files))


class _Locked:
    """An exclusive lock of an artifact's ``.lock`` file (a no-op without fcntl)."""

    def __init__(self, directory: Path) -> None:
        self._path = directory / ".lock"
        self._fd = -1

    def __enter__(self) -> "_Locked":
        if fcntl is not None:
            self._fd = os.open(str(self._path), os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # releases the lock
            self._fd = -1


def _empty_index(name: str, type: str) -> Dict[str, Any]:
    return {"name": name, "type": type, "versions": [], "aliases": {}}


def _read_index(directory: Path, name: str, type: str) -> Dict[str, Any]:
    index = read_json_object(directory / "versions.json")
    if not index or not isinstance(index.get("versions"), list):
        return _empty_index(name, type)
    index.setdefault("aliases", {})
    return index


def _link_or_copy(source: Path, pooled: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(str(pooled), str(dest))
    except OSError:
        shutil.copyfile(str(pooled), str(dest))


def _pool(root: Path, source: Path) -> Dict[str, Any]:
    """Puts ``source``'s bytes into the pool (once); its size, hash and pooled path."""
    pool = root / ARTIFACTS_DIR / POOL_DIR
    tmp_dir = pool / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp = tmp_dir / ("%d-%d-%s" % (os.getpid(), time.time_ns(), source.name))
    digest = hashlib.sha256()
    size = 0
    with open(str(source), "rb") as src, open(str(tmp), "wb") as out:
        for block in iter(lambda: src.read(_CHUNK), b""):
            digest.update(block)
            out.write(block)
            size += len(block)
    sha = digest.hexdigest()
    pooled = pool / sha[:2] / sha
    if pooled.exists():
        tmp.unlink()
    else:
        pooled.parent.mkdir(parents=True, exist_ok=True)
        os.replace(str(tmp), str(pooled))
        os.chmod(str(pooled), 0o444)
    return {"sha256": sha, "size": size, "pooled": pooled}


def _claim_version(directory: Path, index: Dict[str, Any]) -> int:
    """The next version number, claimed by creating ``v<N>`` (skipping numbers taken)."""
    known = [v.get("version", 0) for v in index["versions"] if isinstance(v, dict)]
    on_disk = [int(p.name[1:]) for p in directory.glob("v*") if p.name[1:].isdigit()]
    number = max(known + on_disk + [0]) + 1
    while True:
        try:
            (directory / ("v%d" % number)).mkdir()
            return number
        except OSError as error:
            if error.errno != errno.EEXIST:
                raise
            number += 1


def artifact_dir(root: Path, type: str, name: str) -> Path:
    return root / ARTIFACTS_DIR / type / name


def log_version(root: Path, artifact: Artifact, aliases: Iterable[str],
                run: Optional[Dict[str, Any]]) -> ArtifactVersion:
    """Writes ``artifact`` as its next version; ``run`` describes the producing run."""
    directory = artifact_dir(root, artifact.type, artifact.name)
    directory.mkdir(parents=True, exist_ok=True)
    aliases = [_check_name("alias", a) for a in aliases]
    if any(a == "latest" or (a[:1] == "v" and a[1:].isdigit()) for a in aliases):
        raise ValueError("aliases 'latest' and 'v<N>' are given by the store; choose another")
    pooled = {name: _pool(root, source) for name, source in sorted(artifact._files.items())}
    with _Locked(directory):
        index = _read_index(directory, artifact.name, artifact.type)
        number = _claim_version(directory, index)
        vdir = directory / ("v%d" % number)
        for name, info in pooled.items():
            _link_or_copy(artifact._files[name], info["pooled"], vdir / "files" / name)
        files = [{"path": n, "size": i["size"], "sha256": i["sha256"]}
                 for n, i in pooled.items()]
        manifest = {"files": files, "references": artifact._references}
        now = time.time()
        write_json_atomic(vdir / "manifest.json", manifest)
        write_json_atomic(vdir / "metadata.json", {
            "name": artifact.name, "type": artifact.type, "version": number,
            "description": artifact.description, "metadata": artifact.metadata,
            "created_at": now, "produced_by": run,
        })
        index["versions"].append({
            "version": number, "created_at": now, "size": sum(f["size"] for f in files),
            "files": len(files), "produced_by": run, "used_by": [],
        })
        index["versions"].sort(key=lambda v: v.get("version", 0))
        for alias in aliases:
            index["aliases"][alias] = number
        index["aliases"]["latest"] = max(v["version"] for v in index["versions"])
        write_json_atomic(directory / "versions.json", index)
    return ArtifactVersion(vdir, artifact.name, artifact.type, number, manifest)


def _find(root: Path, name: str, type: Optional[str]) -> Path:
    base = root / ARTIFACTS_DIR
    found = [p for p in base.glob("*/%s" % name)
             if p.is_dir() and p.parent.name != POOL_DIR and (type is None or p.parent.name == type)]
    if not found:
        raise KeyError("no artifact %r under %s" % (name, base))
    if len(found) > 1:
        raise KeyError("artifact %r exists with several types (%s): pass type="
                       % (name, ", ".join(sorted(p.parent.name for p in found))))
    return found[0]


def use_version(root: Path, ref: str, type: Optional[str],
                run: Optional[Dict[str, Any]]) -> ArtifactVersion:
    """Resolves ``name:latest``, ``name:v3`` or ``name:<alias>`` and records the use."""
    name, _, which = ref.partition(":")
    which = which or "latest"
    directory = _find(root, _check_name("name", name), type)
    with _Locked(directory):
        index = _read_index(directory, name, directory.parent.name)
        if which[:1] == "v" and which[1:].isdigit():
            number = int(which[1:])
        elif which in index["aliases"]:
            number = int(index["aliases"][which])
        else:
            raise KeyError("artifact %s has no version or alias %r (aliases: %s)"
                           % (name, which, ", ".join(sorted(index["aliases"])) or "none"))
        entry = next((v for v in index["versions"] if v.get("version") == number), None)
        if entry is None:
            raise KeyError("artifact %s has no version v%d" % (name, number))
        if run is not None and run not in entry.setdefault("used_by", []):
            entry["used_by"].append(run)
            write_json_atomic(directory / "versions.json", index)
    vdir = directory / ("v%d" % number)
    manifest = read_json_object(vdir / "manifest.json") or {"files": []}
    return ArtifactVersion(vdir, name, directory.parent.name, number, manifest)


def record_in_run(run_dir: Path, kind: str, version: ArtifactVersion) -> None:
    """Adds the version to the run's ``artifacts.json`` (``produced`` or ``used``)."""
    path = run_dir / "artifacts.json"
    record = read_json_object(path) or {}
    listed = record.setdefault(kind, [])
    item = {"name": version.name, "type": version.type, "version": version.version}
    if item not in listed:
        listed.append(item)
        write_json_atomic(path, record)
