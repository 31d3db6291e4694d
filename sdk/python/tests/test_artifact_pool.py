"""The SDK's side of the pool rules (docs/run-format.md, "Artifacts"): writers hold
``artifacts/.pool/.lock`` shared while they pool and link a version, and readers find a packed
file's bytes through its chunk recipe (``download()`` assembles and checks them, ``path()``
materialises them once into the cache directory).

The packed pools here are built by hand, the way ``runicorn-agent artifacts pack`` leaves them:
chunks in ``.chunks/``, the recipe beside the pool entry, the whole file and the version's
``files/`` links removed. With an agent that has ``artifacts pack``, the real command packs too.
"""

import fcntl
import hashlib
import json
import os
import subprocess
import time

import pytest

import runicorn as rn

from conftest import agent_binary, child_env, read_json, start_script

BIG = 5 * 1024 * 1024  # above CHUNKED_MIN_FILE_BYTES (4 MiB): what pack turns into chunks


def sha(data):
    return hashlib.sha256(data).hexdigest()


def log_model(root, tmp_path, files, aliases=(), name="m"):
    run = rn.init(path="train", storage=str(root))
    art = rn.Artifact(name, type="model")
    for member, data in files.items():
        source = tmp_path / ("src-" + member.replace("/", "_"))
        source.write_bytes(data)
        art.add_file(source, name=member)
    version = run.log_artifact(art, aliases=list(aliases))
    run.finish()
    return version


def pack_by_hand(root, content, chunk_size=100 * 1024):
    """Turns the pooled whole file of ``content`` into chunks + recipe, as pack does."""
    arts = root / "artifacts"
    digest = sha(content)
    chunks = []
    for offset in range(0, len(content), chunk_size):
        piece = content[offset:offset + chunk_size]
        piece_sha = sha(piece)
        path = arts / ".chunks" / piece_sha[:2] / piece_sha
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(piece)
        chunks.append({"sha256": piece_sha, "size": len(piece)})
    recipe = {"format": 1, "sha256": digest, "size": len(content),
              "chunker": {"name": "fastcdc-2020", "min": 16384, "avg": 65536, "max": 262144},
              "chunks": chunks}
    pool_entry = arts / ".pool" / digest[:2] / digest
    (pool_entry.parent / (digest + ".chunks.json")).write_text(json.dumps(recipe))
    pool_entry.unlink()
    for manifest in arts.glob("*/*/v*/manifest.json"):
        for entry in read_json(manifest)["files"]:
            if entry["sha256"] == digest:
                link = manifest.parent / "files" / entry["path"]
                if link.exists():
                    link.unlink()
    return chunks


def test_packed_file_downloads_and_materialises_once(tmp_path, root, monkeypatch):
    monkeypatch.setenv("RUNICORN_CACHE_DIR", str(tmp_path / "cache"))
    big, small = os.urandom(BIG), b"vocab\n"
    log_model(root, tmp_path, {"model.pt": big, "vocab.txt": small})
    pack_by_hand(root, big)
    assert not (root / "artifacts/model/m/v1/files/model.pt").exists()

    reader = rn.init(path="eval", storage=str(root))
    v1 = reader.use_artifact("m:v1")
    out = v1.download(target_dir=tmp_path / "dl")
    assert (out / "model.pt").read_bytes() == big
    assert (out / "vocab.txt").read_bytes() == small
    assert sorted(p.name for p in out.iterdir()) == ["model.pt", "vocab.txt"]

    path = v1.path("model.pt")
    assert path == tmp_path / "cache" / sha(big)[:2] / sha(big)
    assert path.read_bytes() == big
    mtime = path.stat().st_mtime_ns
    assert v1.path("model.pt") == path and path.stat().st_mtime_ns == mtime  # once
    # An unpacked file is still read where it is, inside the store.
    assert v1.path("vocab.txt") == root / "artifacts/model/m/v1/files/vocab.txt"
    reader.finish()


def test_a_damaged_or_missing_chunk_is_refused_and_nothing_is_left(tmp_path, root, monkeypatch):
    monkeypatch.setenv("RUNICORN_CACHE_DIR", str(tmp_path / "cache"))
    big = os.urandom(BIG)
    v1 = log_model(root, tmp_path, {"model.pt": big})
    chunks = pack_by_hand(root, big)
    victim = root / "artifacts" / ".chunks" / chunks[3]["sha256"][:2] / chunks[3]["sha256"]
    data = bytearray(victim.read_bytes())
    data[10] ^= 0xFF
    victim.write_bytes(bytes(data))

    with pytest.raises(IOError, match=chunks[3]["sha256"]):
        v1.download(target_dir=tmp_path / "dl")
    assert not any(p.is_file() for p in (tmp_path / "dl").rglob("*"))
    with pytest.raises(IOError, match="does not match"):
        v1.path("model.pt")
    assert not any(p.is_file() for p in (tmp_path / "cache").rglob("*"))

    victim.unlink()
    with pytest.raises(IOError, match="missing"):
        v1.download(target_dir=tmp_path / "dl")


def test_logging_a_packed_content_again_keeps_it_as_chunks(tmp_path, root, monkeypatch):
    monkeypatch.setenv("RUNICORN_CACHE_DIR", str(tmp_path / "cache"))
    big = os.urandom(BIG)
    log_model(root, tmp_path, {"model.pt": big})
    pack_by_hand(root, big)
    v2 = log_model(root, tmp_path, {"model.pt": big})
    assert v2.version == 2
    pool_entry = root / "artifacts" / ".pool" / sha(big)[:2] / sha(big)
    assert not pool_entry.exists()  # no whole copy next to the chunks
    assert not (v2.dir / "files" / "model.pt").exists()
    assert read_json(v2.dir / "manifest.json")["files"] == [
        {"path": "model.pt", "size": BIG, "sha256": sha(big)}]
    assert v2.download(target_dir=tmp_path / "dl")  # assembled from the chunks
    assert (tmp_path / "dl" / "model.pt").read_bytes() == big
    assert not list((root / "artifacts" / ".pool" / "tmp").iterdir())


def test_writers_wait_for_an_exclusive_pool_lock(tmp_path, root):
    """Pack and gc hold the pool lock exclusively: a writer pools nothing meanwhile, and
    goes on once they are done."""
    lock_path = root / "artifacts" / ".pool" / ".lock"
    lock_path.parent.mkdir(parents=True)
    fd = os.open(str(lock_path), os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        child = start_script(tmp_path, '''
            import sys
            import runicorn as rn
            run = rn.init(path="w", storage="root")
            art = rn.Artifact("m", type="model")
            open("blob.bin", "wb").write(b"x" * 1000)
            art.add_file("blob.bin")
            print(run.log_artifact(art).version, flush=True)
            run.finish()
        ''')
        time.sleep(1.5)
        assert child.poll() is None, child.communicate()
        assert not (root / "artifacts" / "model" / "m" / "v1").exists()
        assert not [p for p in (root / "artifacts" / ".pool").rglob("*")
                    if p.is_file() and p.name != ".lock"]
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
    out, err = child.communicate(timeout=30)
    assert child.returncode == 0, err
    assert out.strip() == "1"
    assert (root / "artifacts" / "model" / "m" / "v1" / "files" / "blob.bin").read_bytes() \
        == b"x" * 1000


def test_a_writer_holds_the_pool_lock_shared(tmp_path, root):
    """While a version is being logged, an exclusive lock (pack, gc) cannot be taken; shared
    holders (other writers) can."""
    source = tmp_path / "slow.bin"
    source.write_bytes(b"y" * 4096)
    seen = {}
    from runicorn import artifacts

    original = artifacts._pool

    def spying_pool(pool_root, path):
        lock_path = pool_root / "artifacts" / ".pool" / ".lock"
        fd = os.open(str(lock_path), os.O_RDWR)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                seen["exclusive"] = True
            except BlockingIOError:
                seen["exclusive"] = False
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # another writer gets in
            seen["shared"] = True
        finally:
            os.close(fd)
        return original(pool_root, path)

    artifacts._pool = spying_pool
    try:
        log_model(root, tmp_path, {"slow.bin": source.read_bytes()})
    finally:
        artifacts._pool = original
    assert seen == {"exclusive": False, "shared": True}


def _agent_has_pack(binary):
    done = subprocess.run([binary, "artifacts", "pack", "--help"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, timeout=30,
                          env=child_env())
    return done.returncode == 0


def test_versions_packed_by_the_agent_read_back(tmp_path, root, monkeypatch):
    binary = os.environ.get("RUNICORN_AGENT_BIN")
    if not binary:
        pytest.skip("RUNICORN_AGENT_BIN is not set: the agent's `artifacts pack` is not tried")
    binary = agent_binary()
    if not _agent_has_pack(binary):
        pytest.skip("%s has no `artifacts pack` command (it comes with issue 13's agent work)"
                    % binary)
    monkeypatch.setenv("RUNICORN_CACHE_DIR", str(tmp_path / "cache"))
    first = os.urandom(BIG)
    second = bytearray(first)
    second[BIG // 2:BIG // 2 + 1000] = os.urandom(1000)
    second = bytes(second)
    log_model(root, tmp_path, {"model.pt": first, "small.txt": b"s"})
    log_model(root, tmp_path, {"model.pt": second, "small.txt": b"s"})
    done = subprocess.run([binary, "artifacts", "pack"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=120,
                          env=child_env(RUNICORN_DIR=root))
    assert done.returncode == 0, done.stderr
    for digest in (sha(first), sha(second)):
        assert (root / "artifacts" / ".pool" / digest[:2] / (digest + ".chunks.json")).exists()
        assert not (root / "artifacts" / ".pool" / digest[:2] / digest).exists()
    reader = rn.init(path="eval", storage=str(root))
    for ref, data in (("m:v1", first), ("m:v2", second)):
        version = reader.use_artifact(ref)
        out = version.download(target_dir=tmp_path / ref.replace(":", "-"))
        assert (out / "model.pt").read_bytes() == data
        assert (out / "small.txt").read_bytes() == b"s"
        assert version.path("model.pt").read_bytes() == data
    reader.finish()


def test_a_failed_log_leaves_no_version_folder_and_releases_the_locks(tmp_path, root,
                                                                      monkeypatch):
    from runicorn import artifacts

    calls = []

    def failing_link(source, pooled, dest):
        calls.append(dest)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return original(source, pooled, dest)

    original = artifacts._link_or_copy
    monkeypatch.setattr(artifacts, "_link_or_copy", failing_link)
    with pytest.warns(RuntimeWarning, match="No space left"):
        assert log_model(root, tmp_path, {"a.bin": b"a", "b.bin": b"b"}) is None
    assert not (root / "artifacts" / "model" / "m" / "v1").exists()
    monkeypatch.setattr(artifacts, "_link_or_copy", original)
    assert log_model(root, tmp_path, {"a.bin": b"a"}).version == 1  # locks were released
