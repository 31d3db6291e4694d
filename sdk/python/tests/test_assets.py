"""Upstream 0.7's asset calls in our SDK: code snapshots honouring .gitignore/.rnignore within
limits, log_dataset / log_pretrained with their archive under ``archive/``, and outputs archived
once stable by scan_outputs_once / watch_outputs. (What upstream's own viewer makes of these
files is tested in test_upstream_assets.py.)"""

import hashlib
import os
import time
import zipfile
from pathlib import Path

import pytest

import runicorn as rn
from runicorn import snapshot as snapshot_module
from runicorn.ignore import IgnoreMatcher, parse_rules

from conftest import read_json, wait_for


def sha(data):
    return hashlib.sha256(data).hexdigest()


def write(path, data=b"x"):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return path


def blob(root, digest):
    return root / "archive" / "blobs" / digest[:2] / digest


@pytest.mark.parametrize("rules, path, is_dir, ignored", [
    (["*.log"], "a/b/x.log", False, True),
    (["*.log", "!keep.log"], "keep.log", False, False),
    (["/build/"], "build", True, True),
    (["/build/"], "src/build", True, False),
    (["build/"], "build", False, False),  # dir-only
    (["docs/**/*.md"], "docs/a/b/c.md", False, True),
    (["docs/**/*.md"], "docs/c.md", False, True),
    (["docs/**/*.md"], "x/docs/c.md", False, False),  # a middle slash anchors
    (["a/**"], "a/x/y", False, True),
    (["**/tmp"], "deep/er/tmp", True, True),
    (["\\#notes", "\\!bang"], "#notes", False, True),
    (["\\#notes", "\\!bang"], "!bang", False, True),
    (["data?.csv"], "data1.csv", False, True),
    (["data?.csv"], "data/.csv", False, False),
    (["[!a]*.txt"], "b.txt", False, True),
    (["[!a]*.txt"], "a.txt", False, False),
    (["# comment", "", "x"], "x", False, True),
])
def test_ignore_rules_follow_gitignore(rules, path, is_dir, ignored):
    assert IgnoreMatcher(parse_rules(rules)).is_ignored(path, is_dir) is ignored


def make_workspace(ws):
    write(ws / "train.py", "print('train')\n")
    write(ws / "model" / "net.py", "class Net: pass\n")
    write(ws / "run.log", "noise")
    write(ws / "keep.log", "kept by !keep.log")
    write(ws / "important.log", "re-included by .rnignore")
    write(ws / "build" / "out.o", "obj")
    write(ws / "secret.txt", "anchored")
    write(ws / "sub" / "secret.txt", "not anchored: kept")
    write(ws / "sub" / "local.tmp", "ignored by sub/.gitignore")
    write(ws / "sub" / ".gitignore", "*.tmp\n")
    write(ws / "other" / "local.tmp", "sub/.gitignore does not reach here")
    write(ws / ".gitignore", "*.log\n!keep.log\nbuild/\n/secret.txt\n")
    write(ws / ".rnignore", "!important.log\ndata/\n")
    write(ws / "data" / "big.bin", os.urandom(1000))
    write(ws / ".git" / "HEAD", "ref")
    write(ws / "__pycache__" / "m.pyc", "pyc")  # not in this .rnignore: kept
    os.symlink("/etc/hostname", str(ws / "outside-link"))


def test_code_snapshot_honours_gitignore_and_rnignore(tmp_path, root):
    ws = tmp_path / "ws"
    make_workspace(ws)
    inside_root = ws / "store"  # a storage root inside the workspace is never snapshotted
    run = rn.init(path="p", storage=str(inside_root), snapshot_code=True, workspace_root=str(ws))
    run.finish()
    zip_path = run.dir / "code_snapshot.zip"
    with zipfile.ZipFile(str(zip_path)) as zf:
        names = sorted(zf.namelist())
        assert zf.read("train.py") == b"print('train')\n"
    assert names == sorted([
        ".gitignore", ".rnignore", "__pycache__/m.pyc", "important.log", "keep.log",
        "model/net.py", "other/local.tmp", "sub/.gitignore", "sub/secret.txt", "train.py"])
    code = read_json(run.dir / "assets.json")["code"]["snapshot"]
    digest = sha(zip_path.read_bytes())
    assert code["saved"] is True and code["format"] == "zip"
    assert code["workspace_root"] == str(ws)
    assert (code["fingerprint_kind"], code["fingerprint"]) == ("sha256", digest)
    assert code["archive_path"] == str(blob(inside_root, digest))
    assert blob(inside_root, digest).read_bytes() == zip_path.read_bytes()
    assert code["file_count"] == 10


def test_without_rnignore_the_defaults_apply_and_nothing_is_written(tmp_path, root):
    ws = tmp_path / "ws"
    write(ws / "a.py", "a")
    write(ws / "__pycache__" / "a.pyc", "c")
    write(ws / "x.pyc", "c")
    write(ws / "node_modules" / "m.js", "m")
    write(ws / ".venv" / "bin" / "python", "p")
    run = rn.init(storage=str(root), snapshot_code=True, workspace_root=str(ws))
    run.finish()
    with zipfile.ZipFile(str(run.dir / "code_snapshot.zip")) as zf:
        assert zf.namelist() == ["a.py"]
    assert not (ws / ".rnignore").exists()
    # The same tree gives the same zip, stored once.
    again = rn.init(storage=str(root), snapshot_code=True, workspace_root=str(ws))
    again.finish()
    assert (again.dir / "code_snapshot.zip").read_bytes() == \
        (run.dir / "code_snapshot.zip").read_bytes()
    assert len(list((root / "archive" / "blobs").rglob("*"))) == 2  # one fan-out dir, one blob


def test_a_workspace_over_the_limits_warns_and_training_goes_on(tmp_path, root, monkeypatch):
    ws = tmp_path / "ws"
    for i in range(5):
        write(ws / ("f%d.py" % i), "x" * 100)
    monkeypatch.setattr(snapshot_module, "MAX_FILES", 3)
    with pytest.warns(RuntimeWarning, match=r"no code snapshot.*more than 3 files.*force_snapshot"):
        run = rn.init(storage=str(root), snapshot_code=True, workspace_root=str(ws))
    run.log({"loss": 1})
    run.finish()
    assert not (run.dir / "code_snapshot.zip").exists()
    assert read_json(run.dir / "assets.json")["code"] == {}
    assert read_json(run.dir / "status.json")["status"] == "finished"

    monkeypatch.setattr(snapshot_module, "MAX_FILES", 10 ** 6)
    monkeypatch.setattr(snapshot_module, "MAX_TOTAL_BYTES", 250)
    with pytest.warns(RuntimeWarning, match="more than 250 bytes"):
        rn.init(storage=str(root), snapshot_code=True, workspace_root=str(ws)).finish()

    forced = rn.init(storage=str(root), snapshot_code=True, workspace_root=str(ws),
                     force_snapshot=True)
    forced.finish()
    with zipfile.ZipFile(str(forced.dir / "code_snapshot.zip")) as zf:
        assert len(zf.namelist()) == 5


def test_snapshot_workspace_function(tmp_path):
    ws = tmp_path / "ws"
    write(ws / "a.py", "a")
    write(ws / "b.txt", "b")
    out = rn.snapshot_workspace(ws, ws / "snap.zip", extra_excludes=["*.txt"])
    assert out["file_count"] == 1 and out["format"] == "zip"
    with zipfile.ZipFile(str(ws / "snap.zip")) as zf:
        assert zf.namelist() == ["a.py"]
    with pytest.raises(ValueError, match="max_files"):
        rn.snapshot_workspace(ws, tmp_path / "s2.zip", max_files=1)


def test_log_dataset_records_and_archives(tmp_path, root):
    data_dir = tmp_path / "cifar"
    write(data_dir / "train" / "a.bin", b"A" * 100)
    write(data_dir / "train" / "b.bin", b"B" * 50)
    write(data_dir / "labels.csv", b"a,b\n")
    single = write(tmp_path / "vocab.txt", b"hello\n")

    run = rn.init(storage=str(root))
    run.log_dataset("cifar", str(data_dir), save=True, description="train split")
    run.log_dataset("vocab", single, context="eval", save=True)
    run.log_dataset("imagenet", "s3://bucket/imagenet", context="val")
    run.log_dataset("meta", {"hf": "org/ds", "rev": 3})
    run.finish()
    datasets = read_json(run.dir / "assets.json")["datasets"]
    assert [d["name"] for d in datasets] == ["cifar", "vocab", "imagenet", "meta"]

    cifar = datasets[0]
    assert cifar["context"] == "train" and cifar["description"] == "train split"
    assert cifar["uri"] == str(data_dir) and cifar["saved"] is True
    assert cifar["fingerprint_kind"] == "sha256_manifest"
    assert (cifar["file_count"], cifar["total_size_bytes"]) == (3, 154)
    manifest = read_json(cifar["manifest_path"])
    assert cifar["archive_path"] == cifar["manifest_path"]
    assert Path(cifar["manifest_path"]).parent.parent.name == "datasets"
    assert manifest["fingerprint"] == cifar["fingerprint"]
    assert sorted(manifest["files"]) == ["labels.csv", "train/a.bin", "train/b.bin"]
    for rel, info in manifest["files"].items():
        assert blob(root, info["sha256"]).read_bytes() == (data_dir / rel).read_bytes()
        assert info["size_bytes"] == (data_dir / rel).stat().st_size

    vocab = datasets[1]
    assert vocab["context"] == "eval" and vocab["saved"] is True
    assert (vocab["fingerprint_kind"], vocab["fingerprint"]) == ("sha256", sha(b"hello\n"))
    assert Path(vocab["archive_path"]).read_bytes() == b"hello\n"

    imagenet = datasets[2]
    assert imagenet["uri"] == "s3://bucket/imagenet"  # a URI is kept as it is
    assert imagenet["saved"] is False and imagenet["fingerprint"] is None
    assert datasets[3]["uri"] == {"hf": "org/ds", "rev": 3}


def test_archive_limits_warn_and_record_without_bytes(tmp_path, root):
    big = write(tmp_path / "big.bin", b"z" * 1000)
    run = rn.init(storage=str(root))
    with pytest.warns(RuntimeWarning, match=r"'big'.*over the archive limit.*force_save=True"):
        run.log_dataset("big", big, save=True, max_archive_bytes=100)
    run.log_dataset("big-forced", big, save=True, max_archive_bytes=100, force_save=True)
    with pytest.warns(RuntimeWarning, match="nothing to archive"):
        run.log_dataset("gone", tmp_path / "missing", save=True)
    run.finish()
    datasets = read_json(run.dir / "assets.json")["datasets"]
    assert datasets[0]["saved"] is False and "archive_path" not in datasets[0]
    assert datasets[0]["fingerprint"]["size_bytes"] == 1000
    assert datasets[1]["saved"] is True
    assert datasets[2]["saved"] is False and datasets[2]["fingerprint"] is None


def test_log_pretrained(tmp_path, root):
    weights = tmp_path / "bert"
    write(weights / "config.json", "{}")
    write(weights / "model.bin", os.urandom(2000))
    run = rn.init(storage=str(root))
    run.log_pretrained("bert-base", path_or_uri="bert-base-uncased", source_type="huggingface")
    run.log_pretrained("local-bert", path_or_uri=weights, save=True, description="ft start")
    with pytest.raises(ValueError, match="path_or_uri"):
        run.log_pretrained("nothing", save=True)
    run.finish()
    hf, local = read_json(run.dir / "assets.json")["pretrained"]
    assert hf == {"name": "bert-base", "source_type": "huggingface",
                  "path_or_uri": "bert-base-uncased", "description": None, "saved": False}
    assert local["saved"] is True and local["source_type"] == "unknown"
    assert local["path_or_uri"] == str(weights)
    assert Path(local["manifest_path"]).parent.parent.name == "pretrained"
    assert local["file_count"] == 2


def age(path, seconds=10):
    past = time.time() - seconds
    os.utime(str(path), (past, past))


def outputs_of(run):
    return read_json(run.dir / "assets.json")["outputs"]


def test_outputs_are_archived_once_stable_and_not_copied_again(tmp_path, root):
    ws = tmp_path / "ws"
    out_dir = ws / "outputs"
    ckpt = write(out_dir / "best.pth", b"weights-1")
    write(out_dir / "notes.md", "not matched by the default patterns")
    age(ckpt)
    run = rn.init(storage=str(root), workspace_root=str(ws))

    first = run.scan_outputs_once(output_dirs=[out_dir])
    assert (first["scanned"], first["archived"]) == (1, 0)  # seen once: not stable yet
    second = run.scan_outputs_once(output_dirs=[out_dir])
    assert (second["archived"], second["changed"]) == (1, 1)
    [entry] = outputs_of(run)
    assert entry["key"] == "outputs/best.pth" and entry["path"] == "./outputs/best.pth"
    assert (entry["kind"], entry["mode"], entry["saved"]) == ("file", "rolling", True)
    assert (entry["fingerprint_kind"], entry["fingerprint"]) == ("sha256", sha(b"weights-1"))
    rolling = Path(entry["archive_path"])
    assert rolling.parent == root / "archive" / "outputs" / "rolling" / run.id
    assert rolling.read_bytes() == b"weights-1"
    copied_at = rolling.stat().st_mtime_ns
    inode = rolling.stat().st_ino

    third = run.scan_outputs_once(output_dirs=[out_dir])
    assert third["archived"] == 0
    assert rolling.stat().st_ino == inode and rolling.stat().st_mtime_ns == copied_at  # not recopied

    ckpt.write_bytes(b"weights-2, longer")
    age(ckpt, 5)
    assert run.scan_outputs_once(output_dirs=[out_dir])["archived"] == 0  # changed: wait again
    assert run.scan_outputs_once(output_dirs=[out_dir])["archived"] == 1
    [entry] = outputs_of(run)  # rolling: the entry is replaced
    assert Path(entry["archive_path"]).read_bytes() == b"weights-2, longer"
    state = read_json(run.dir / ".outputs_state.json")["items"]["outputs/best.pth"]
    assert state["stable_count"] >= 2 and state["last_archived_fingerprint"] == entry["fingerprint"]
    run.finish()
    assert run.scan_outputs_once(output_dirs=[out_dir]) == {}


def test_output_modes_logs_and_directories(tmp_path, root):
    ws = tmp_path / "ws"
    out_dir = tmp_path / "elsewhere"  # outside the workspace: absolute keys
    ckpt = write(out_dir / "model.pt", b"v1")
    log = write(out_dir / "train.log", b"line 1\n")
    shard = write(out_dir / "ckpt-dir" / "shard0.bin", b"s0")
    for path in (ckpt, log, shard, shard.parent):
        age(path)
    run = rn.init(storage=str(root), workspace_root=str(ws))
    kw = dict(output_dirs=[out_dir], patterns=["*.pt", "*.log", "ckpt-dir/"], min_age_sec=0,
              mode="overwrite_versions")
    first = run.scan_outputs_once(**kw)
    assert [e["name"] for e in first["archived_entries"]] == ["train.log"]  # logs at once
    run.scan_outputs_once(**kw)
    by_name = {e["name"]: e for e in outputs_of(run)}
    assert set(by_name) == {"train.log", "model.pt", "ckpt-dir"}
    assert by_name["model.pt"]["path"] == str(ckpt) and by_name["model.pt"]["key"] == str(ckpt)
    assert by_name["model.pt"]["archive_path"] == str(blob(root, sha(b"v1")))  # deduplicated
    assert by_name["train.log"]["fingerprint_kind"] == "stat"
    assert by_name["train.log"]["mode"] == "rolling"
    manifest = read_json(by_name["ckpt-dir"]["archive_path"])
    assert manifest["files"] == {"shard0.bin": {"sha256": sha(b"s0"), "size_bytes": 2}}

    ckpt.write_bytes(b"v2")
    age(ckpt, 3)
    run.scan_outputs_once(**kw)
    run.scan_outputs_once(**kw)
    versions = [e for e in outputs_of(run) if e["name"] == "model.pt"]
    assert [Path(e["archive_path"]).read_bytes() for e in versions] == [b"v1", b"v2"]
    run.finish()


def test_nothing_inside_the_storage_root_is_archived(tmp_path):
    ws = tmp_path / "ws"
    root = ws / "store"
    write(ws / "a.json", "{}")
    age(ws / "a.json")
    run = rn.init(storage=str(root), workspace_root=str(ws))
    for _ in range(3):
        run.scan_outputs_once(output_dirs=[ws], min_age_sec=0)
    run.finish()
    assert [e["key"] for e in outputs_of(run)] == ["a.json"]


def test_watch_outputs_archives_in_the_background_and_finish_stops_it(tmp_path, root):
    ws = tmp_path / "ws"
    out_dir = ws / "out"
    out_dir.mkdir(parents=True)
    run = rn.init(storage=str(root), workspace_root=str(ws))
    run.watch_outputs(output_dirs=[out_dir], interval_sec=0.05, min_age_sec=0)
    run.watch_outputs(output_dirs=[out_dir], interval_sec=0.05)  # already watching: no-op
    write(out_dir / "epoch1.pt", b"e1")
    assert wait_for(lambda: any(e["name"] == "epoch1.pt" for e in outputs_of(run)), timeout=10)
    threads = [t.name for t in __import__("threading").enumerate()]
    assert threads.count("runicorn-outputs-" + run.id) == 1

    # Written just before finish: the last scan archives it although it was never stable.
    write(out_dir / "final.pt", b"last")
    run.finish()
    assert "runicorn-outputs-" + run.id not in [t.name for t in
                                                __import__("threading").enumerate()]
    final = [e for e in outputs_of(run) if e["name"] == "final.pt"]
    assert final and Path(final[0]["archive_path"]).read_bytes() == b"last"


def test_stop_outputs_watch(tmp_path, root):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    run = rn.init(storage=str(root), workspace_root=str(tmp_path))
    run.watch_outputs(output_dirs=[out_dir], interval_sec=0.05, min_age_sec=0)
    run.stop_outputs_watch()
    write(out_dir / "late.pt", b"late")
    time.sleep(0.3)
    run.finish()  # stopped before: no last scan either
    assert outputs_of(run) == []


def test_noop_run_has_the_asset_calls(tmp_path):
    with rn.enabled(False):
        run = rn.init(storage=str(tmp_path / "r"))
        run.log_dataset("d", "x", save=True)
        run.log_pretrained("p", path_or_uri="y")
        assert run.scan_outputs_once(output_dirs=[tmp_path]) == {}
        run.watch_outputs(output_dirs=[tmp_path])
        run.stop_outputs_watch()
        run.finish()
    assert not (tmp_path / "r").exists()


def test_nested_gitignore_anchors_to_its_directory_and_rnignore_wins(tmp_path):
    ws = tmp_path / "ws"
    write(ws / "sub" / ".gitignore", "/only_here.txt\ncache/\n")
    write(ws / "sub" / "only_here.txt")
    write(ws / "sub" / "deeper" / "only_here.txt")
    write(ws / "only_here.txt")
    write(ws / "sub" / "cache" / "c.bin")
    write(ws / "cache" / "top.bin")  # sub/.gitignore does not reach the root's cache/
    write(ws / ".gitignore", "wanted/\n")
    write(ws / "wanted" / "w.py")
    write(ws / ".rnignore", "!wanted/\n")  # .rnignore re-includes what git ignores
    out = rn.snapshot_workspace(ws, tmp_path / "s.zip")
    with zipfile.ZipFile(out["archive_path"]) as zf:
        assert sorted(zf.namelist()) == [
            ".gitignore", ".rnignore", "cache/top.bin", "only_here.txt", "sub/.gitignore",
            "sub/deeper/only_here.txt", "wanted/w.py"]
