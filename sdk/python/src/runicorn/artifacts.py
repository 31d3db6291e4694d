"""Versioned artifacts (models, datasets, code) under the storage root, with lineage.

Layout (docs/run-format.md, "Artifacts")::

    <root>/artifacts/<type>/<name>/versions.json     the version index, aliases and lineage
    <root>/artifacts/<type>/<name>/v<N>/manifest.json  every file: path, size, sha256; references
    <root>/artifacts/<type>/<name>/v<N>/metadata.json  description, metadata, producing run
    <root>/artifacts/<type>/<name>/v<N>/files/...      the files, hard links into the pool
    <root>/artifacts/.pool/<sha[:2]>/<sha>              each content once
    <root>/artifacts/.pool/<sha[:2]>/<sha>.chunks.json  or, once packed, its chunk recipe
    <root>/artifacts/.chunks/<sha[:2]>/<sha>            the chunks recipes name

The SDK puts files in the pool WHOLE. ``runicorn-agent artifacts pack`` later turns large pooled
files into chunks (recipe + ``.chunks/``) and removes the whole file and its ``files/`` links;
readers here assemble such files from the recipe, checking every chunk's and the whole file's
SHA-256. Writers hold ``.pool/.lock`` SHARED (flock) from pooling a version's bytes until its
files are linked and ``versions.json`` is written; pack and gc hold it exclusively, so they never
see a half-logged version.

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
CHUNKS_DIR = ".chunks"
POOL_LOCK = ".lock"  # inside POOL_DIR
RECIPE_SUFFIX = ".chunks.json"
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


def cache_dir() -> Path:
    """Where packed contents are materialised for :meth:`ArtifactVersion.path`:
    ``$RUNICORN_CACHE_DIR``, else ``$XDG_CACHE_HOME/runicorn/artifacts``, else
    ``~/.cache/runicorn/artifacts`` (outside the store, so pack and gc never see it; the same
    place as the Rust reader's)."""
    given = os.environ.get("RUNICORN_CACHE_DIR")
    if given:
        return Path(os.path.expanduser(given))
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(os.path.expanduser(xdg)) if xdg else Path.home() / ".cache"
    return base / "runicorn" / ARTIFACTS_DIR


class ArtifactVersion:
    """One logged version: its files on disk, read-only.

    A file's bytes are found, in this order, at the version's ``files/<path>`` link, at the
    pool's whole copy, or assembled from the pool's chunk recipe (a packed file); a packed file
    is checked chunk by chunk and as a whole against the manifest's SHA-256."""

    def __init__(self, directory: Path, name: str, type: str, version: int,
                 manifest: Dict[str, Any], root: Optional[Path] = None) -> None:
        self.dir = directory
        self.name = name
        self.type = type
        self.version = version
        self.manifest = manifest
        # <root>/artifacts/<type>/<name>/v<N>
        self.root = root if root is not None else directory.parents[3]

    @property
    def ref(self) -> str:
        return "%s:v%d" % (self.name, self.version)

    @property
    def files(self) -> List[str]:
        return [f["path"] for f in self.manifest.get("files", [])]

    def _entry(self, name: str) -> Dict[str, Any]:
        member = _check_member(name)
        for entry in self.manifest.get("files", []):
            if entry.get("path") == member:
                return entry
        raise KeyError("%s has no file %r (it has %s)" % (self.ref, name, ", ".join(self.files)))

    def _whole_sources(self, entry: Dict[str, Any]) -> List[Path]:
        return [self.dir / "files" / entry["path"], content_path(self.root, entry["sha256"])]

    def path(self, name: str) -> Path:
        """Where the file ``name`` of this version is on disk: its link in the version, or
        the pool's copy, or (a packed file) a copy assembled once into :func:`cache_dir`."""
        entry = self._entry(name)
        for source in self._whole_sources(entry):
            if source.is_file():
                return source
        sha = entry["sha256"]
        cached = cache_dir() / sha[:2] / sha
        if cached.is_file() and cached.stat().st_size == entry.get("size"):
            return cached
        cached.parent.mkdir(parents=True, exist_ok=True)
        self._write_verified(entry, cached)
        try:
            os.chmod(str(cached), 0o444)
        except OSError:
            pass
        return cached

    def download(self, target_dir: Any = None) -> Path:
        """Copies the version's files into ``target_dir`` (default ``./artifacts/<name>-v<N>``),
        each checked against its SHA-256; returns the directory."""
        target = Path(target_dir) if target_dir is not None else (
            Path("artifacts") / ("%s-v%d" % (self.name, self.version)))
        for entry in self.manifest.get("files", []):
            dest = target / _check_member(entry["path"])
            dest.parent.mkdir(parents=True, exist_ok=True)
            self._write_verified(entry, dest)
        return target

    def _write_verified(self, entry: Dict[str, Any], dest: Path) -> None:
        """Writes the bytes of ``entry`` to ``dest`` (through a temporary file beside it),
        checking the SHA-256; raises IOError naming what is missing or damaged."""
        tmp = dest.with_name(".%s.tmp-%d-%d" % (dest.name, os.getpid(), time.time_ns()))
        try:
            with open(str(tmp), "wb") as out:
                digest = self._copy_content(entry, out)
            if digest != entry["sha256"]:
                raise IOError("%s: %s does not match its SHA-256 (the artifact store is damaged)"
                              % (self.ref, entry["path"]))
            os.replace(str(tmp), str(dest))
        except BaseException:
            _unlink_quietly(tmp)
            raise

    def _copy_content(self, entry: Dict[str, Any], out: Any) -> str:
        """Copies the content into ``out``; the hex SHA-256 of what was copied."""
        for source in self._whole_sources(entry):
            try:
                src = open(str(source), "rb")
            except FileNotFoundError:  # packed meanwhile: the recipe exists by now
                continue
            with src:
                digest = hashlib.sha256()
                for block in iter(lambda: src.read(_CHUNK), b""):
                    digest.update(block)
                    out.write(block)
                return digest.hexdigest()
        return assemble_chunks(self.root, entry["sha256"], out, what="%s: %s"
                               % (self.ref, entry["path"]))

    def __repr__(self) -> str:
        return "ArtifactVersion(%s, type=%s, files=%d)" % (self.ref, self.type, len(self.files))


def assemble_chunks(root: Path, sha: str, out: Any, what: str) -> str:
    """Writes the packed content ``sha`` into ``out`` from its recipe, checking each chunk's
    SHA-256 and size; returns the SHA-256 of the whole (the caller compares it)."""
    recipe_file = recipe_path(root, sha)
    recipe = read_json_object(recipe_file)
    if recipe is None:
        raise IOError("%s: its content %s is neither in the pool nor packed (%s missing); the "
                      "artifact store is damaged" % (what, sha, content_path(root, sha)))
    chunks = recipe.get("chunks")
    if recipe.get("sha256") != sha or not isinstance(chunks, list):
        raise IOError("%s: the chunk recipe %s is damaged" % (what, recipe_file))
    digest = hashlib.sha256()
    total = 0
    for chunk in chunks:
        chunk_sha = chunk.get("sha256") if isinstance(chunk, dict) else None
        if not isinstance(chunk_sha, str) or len(chunk_sha) != 64:
            raise IOError("%s: the chunk recipe %s is damaged" % (what, recipe_file))
        location = chunk_path(root, chunk_sha)
        try:
            with open(str(location), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise IOError("%s: chunk %s is missing (%s); the artifact store is damaged"
                          % (what, chunk_sha, location))
        if len(data) != chunk.get("size") or hashlib.sha256(data).hexdigest() != chunk_sha:
            raise IOError("%s: chunk %s does not match its SHA-256 or size (%s is damaged)"
                          % (what, chunk_sha, location))
        digest.update(data)
        out.write(data)
        total += len(data)
    if total != recipe.get("size"):
        raise IOError("%s: the chunks of %s add up to %d bytes, the recipe says %s"
                      % (what, sha, total, recipe.get("size")))
    return digest.hexdigest()


class _Locked:
    """A ``flock`` of ``path`` (exclusive, or shared), created if missing; a no-op without fcntl."""

    def __init__(self, path: Path, shared: bool = False) -> None:
        self._path = path
        self._shared = shared
        self._fd = -1

    def __enter__(self) -> "_Locked":
        if fcntl is not None:
            self._fd = os.open(str(self._path), os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(self._fd, fcntl.LOCK_SH if self._shared else fcntl.LOCK_EX)
            except BaseException:
                os.close(self._fd)
                self._fd = -1
                raise
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # releases the lock
            self._fd = -1


def _artifact_lock(directory: Path) -> _Locked:
    return _Locked(directory / ".lock")


def _pool_lock(root: Path) -> _Locked:
    """The pool's shared lock (writers); ``.pool/`` is created if missing."""
    pool = root / ARTIFACTS_DIR / POOL_DIR
    pool.mkdir(parents=True, exist_ok=True)
    return _Locked(pool / POOL_LOCK, shared=True)


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


def content_path(root: Path, sha: str) -> Path:
    """A content's whole file in the pool (present unless packed or never pooled)."""
    return root / ARTIFACTS_DIR / POOL_DIR / sha[:2] / sha


def recipe_path(root: Path, sha: str) -> Path:
    """A packed content's chunk recipe in the pool."""
    return root / ARTIFACTS_DIR / POOL_DIR / sha[:2] / (sha + RECIPE_SUFFIX)


def chunk_path(root: Path, sha: str) -> Path:
    return root / ARTIFACTS_DIR / CHUNKS_DIR / sha[:2] / sha


def _pool(root: Path, source: Path) -> Dict[str, Any]:
    """Puts ``source``'s bytes into the pool (once); its size, hash and pooled path (None when
    the content is already there as chunks: the version's file then exists only as chunks).
    The caller holds the pool's shared lock."""
    pool = root / ARTIFACTS_DIR / POOL_DIR
    tmp_dir = pool / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp = tmp_dir / ("%d-%d-%s" % (os.getpid(), time.time_ns(), source.name))
    digest = hashlib.sha256()
    size = 0
    try:
        with open(str(source), "rb") as src, open(str(tmp), "wb") as out:
            for block in iter(lambda: src.read(_CHUNK), b""):
                digest.update(block)
                out.write(block)
                size += len(block)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    sha = digest.hexdigest()
    pooled = content_path(root, sha)  # type: Optional[Path]
    if pooled.exists():
        tmp.unlink()
    elif recipe_path(root, sha).exists():
        tmp.unlink()  # packed already: the chunks hold these bytes
        pooled = None
    else:
        pooled.parent.mkdir(parents=True, exist_ok=True)
        os.replace(str(tmp), str(pooled))
        os.chmod(str(pooled), 0o444)
    return {"sha256": sha, "size": size, "pooled": pooled}


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(str(path))
    except OSError:
        pass


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
    with _pool_lock(root):
        pooled = {name: _pool(root, source) for name, source in sorted(artifact._files.items())}
        with _artifact_lock(directory):
            index = _read_index(directory, artifact.name, artifact.type)
            number = _claim_version(directory, index)
            vdir = directory / ("v%d" % number)
            try:
                for name, info in pooled.items():
                    if info["pooled"] is not None:
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
            except BaseException:
                # Nothing names this version yet: take the claim back, so no folder without a
                # manifest is left behind (gc would refuse to run until it is removed).
                shutil.rmtree(str(vdir), ignore_errors=True)
                raise
    return ArtifactVersion(vdir, artifact.name, artifact.type, number, manifest, root)


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
    with _artifact_lock(directory):
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
    return ArtifactVersion(vdir, name, directory.parent.name, number, manifest, root)


def record_in_run(run_dir: Path, kind: str, version: ArtifactVersion) -> None:
    """Adds the version to the run's ``artifacts.json`` (``produced`` or ``used``)."""
    path = run_dir / "artifacts.json"
    record = read_json_object(path) or {}
    listed = record.setdefault(kind, [])
    item = {"name": version.name, "type": version.type, "version": version.version}
    if item not in listed:
        listed.append(item)
        write_json_atomic(path, record)
