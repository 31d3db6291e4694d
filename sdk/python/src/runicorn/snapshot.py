"""Code snapshots: ``snapshot_workspace()`` zips a workspace, honouring ``.gitignore`` files
(the root's and those of subdirectories) and ``.rnignore`` (see :mod:`runicorn.ignore`), within
limits of total bytes and file count.

Rule order (the last matching rule wins): ``.gitignore`` files, then the root's ``.rnignore``
(so it can re-include what git ignores), then ``extra_excludes``. Without a ``.rnignore``
upstream's defaults apply (``.git/ .venv/ __pycache__/ *.pyc .idea/ node_modules/``), in memory:
unlike upstream 0.6, the SDK never writes a ``.rnignore`` into the user's workspace. Always left
out: ``.git/``, the storage root and everything beneath it when it lies inside the workspace,
links to directories, and links to files outside the workspace. The zip lists files in sorted
order with their modification times, so an unchanged tree gives the same bytes (and the same
blob in the archive).
"""

import os
import stat
import zipfile
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

from .ignore import DEFAULT_RNIGNORE, IgnoreMatcher, parse_rules

MAX_TOTAL_BYTES = 500 * 1024 * 1024
MAX_FILES = 200000


class SnapshotTooLarge(ValueError):
    """The workspace exceeds a snapshot limit (and ``force_snapshot`` was not given)."""


def _read_lines(path: Path) -> List[str]:
    try:
        with open(str(path), encoding="utf-8", errors="replace") as f:
            return f.read().splitlines()
    except OSError:
        return []


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def collect_files(root: Path, ignore_file: str = ".rnignore",
                  extra_excludes: Optional[Iterable[str]] = None,
                  max_total_bytes: int = MAX_TOTAL_BYTES, max_files: int = MAX_FILES,
                  force: bool = False,
                  skip: Iterable[Path] = ()) -> Tuple[List[Tuple[Path, str]], int]:
    """The files a snapshot of ``root`` holds (path, name in the zip) and their total bytes.
    Raises :class:`SnapshotTooLarge` past a limit unless ``force``."""
    root = Path(os.path.realpath(str(root)))
    skipped = [Path(os.path.realpath(str(p))) for p in skip]
    git = IgnoreMatcher(parse_rules(_read_lines(root / ".gitignore")))
    rn_file = root / ignore_file
    rn_lines = _read_lines(rn_file) if rn_file.is_file() else list(DEFAULT_RNIGNORE)
    rn = IgnoreMatcher(parse_rules(rn_lines) + parse_rules(extra_excludes or ()))

    def left_out(rel: str, is_dir: bool) -> bool:
        decided = rn.decide(rel, is_dir)
        if decided is None:
            decided = git.decide(rel, is_dir)
        return bool(decided)

    files = []  # type: List[Tuple[Path, str]]
    total = 0
    for dirpath, dirnames, filenames in os.walk(str(root)):
        here = Path(dirpath)
        rel_dir = here.relative_to(root).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        if prefix and (here / ".gitignore").is_file():
            git.add(parse_rules(_read_lines(here / ".gitignore"), base=rel_dir))
        kept = []
        for name in sorted(dirnames):
            full = here / name
            if name == ".git" or os.path.islink(str(full)) or left_out(prefix + name, True):
                continue
            if any(_inside(full, s) for s in skipped):
                continue
            kept.append(name)
        dirnames[:] = kept
        for name in sorted(filenames):
            full = here / name
            rel = prefix + name
            if left_out(rel, False) or any(_inside(full, s) for s in skipped):
                continue
            try:
                st = os.stat(str(full))  # follows a link: its target must be a regular file
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            if os.path.islink(str(full)) and not _inside(Path(os.path.realpath(str(full))), root):
                continue
            files.append((full, rel))
            total += st.st_size
            if not force and len(files) > max_files:
                raise SnapshotTooLarge("more than %d files (max_files)" % max_files)
            if not force and total > max_total_bytes:
                raise SnapshotTooLarge("more than %d bytes (max_total_bytes)" % max_total_bytes)
    return files, total


def write_zip(files: List[Tuple[Path, str]], out_zip: Path) -> int:
    """Writes the zip through a temporary file beside it; the number of files it holds (a file
    that vanished or became unreadable meanwhile is left out)."""
    tmp = out_zip.with_name(".%s.tmp-%d" % (out_zip.name, os.getpid()))
    count = 0
    try:
        with zipfile.ZipFile(str(tmp), "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for full, rel in files:
                try:
                    zf.write(str(full), rel)
                    count += 1
                except (OSError, ValueError):
                    continue
        os.replace(str(tmp), str(out_zip))
    except BaseException:
        try:
            os.unlink(str(tmp))
        except OSError:
            pass
        raise
    return count


def snapshot_workspace(root: Any, out_zip: Any, *, ignore_file: str = ".rnignore",
                       extra_excludes: Optional[List[str]] = None,
                       max_total_bytes: int = MAX_TOTAL_BYTES, max_files: int = MAX_FILES,
                       force_snapshot: bool = False) -> Dict[str, Any]:
    """Zips the workspace ``root`` into ``out_zip`` (upstream's call shape). Raises
    :class:`SnapshotTooLarge` (a ValueError) past a limit unless ``force_snapshot``."""
    root = Path(os.path.realpath(os.path.expanduser(str(root))))
    out = Path(os.path.abspath(os.path.expanduser(str(out_zip))))
    files, total = collect_files(root, ignore_file, extra_excludes, max_total_bytes, max_files,
                                 force_snapshot, skip=[out])
    out.parent.mkdir(parents=True, exist_ok=True)
    count = write_zip(files, out)
    return {"workspace_root": str(root), "archive_path": str(out), "format": "zip",
            "file_count": count, "total_bytes": int(total)}
