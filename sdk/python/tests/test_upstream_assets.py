"""Upstream 0.7's assets, both ways, against the real upstream package (0.7.2 from PyPI):

- the same script (tests/support/upstream_assets_run.py: snapshot_code, log_dataset,
  log_pretrained, scan_outputs_once in both modes) writes the same assets.json, the same
  code-snapshot members and the same archive/ tree with either package;
- upstream's own viewer shows the assets of a run written by our SDK and downloads every
  archived one intact;
- a run written by upstream with assets is listed by ``runicorn-agent ls --json`` and its
  assets.json, code snapshot, blobs, manifests and rolling copies are intact.
"""

import hashlib
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

from conftest import REPO, agent_ls, child_env, read_json
from test_upstream import UPSTREAM_VIEWER, run_upstream, upstream_python  # noqa: F401

GENERATOR = REPO / "tests" / "support" / "upstream_assets_run.py"


def sha(data):
    return hashlib.sha256(data).hexdigest()


def upstream_assets_run(python, tmp_path, root, workspace):
    out = run_upstream(python, tmp_path, GENERATOR.read_text(), root, workspace)
    return json.loads(out.strip().splitlines()[-1])


def our_assets_run(tmp_path, root, workspace):
    done = subprocess.run([sys.executable, str(GENERATOR), str(root), str(workspace)],
                          env=child_env(HOME=tmp_path / "our-home"), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=120,
                          cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "warn" not in done.stderr.lower(), done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def normalized(value, root, run_id):
    """Paths under the root, the run id and timestamps made comparable across runs."""
    if isinstance(value, dict):
        return {k: "<time>" if k in ("created_at", "archived_at") else normalized(v, root, run_id)
                for k, v in value.items()}
    if isinstance(value, list):
        return [normalized(v, root, run_id) for v in value]
    if isinstance(value, str):
        return value.replace(str(root), "<root>").replace(run_id, "<id>")
    return value


def archive_tree(root, run_id):
    return sorted(p.relative_to(root).as_posix().replace(run_id, "<id>")
                  for p in (root / "archive").rglob("*")
                  if not p.name.startswith(".") or p.name == ".complete")


def test_the_same_asset_calls_write_the_same_files(upstream_python, tmp_path):  # noqa: F811
    workspace = tmp_path / "ws"
    up = upstream_assets_run(upstream_python, tmp_path, tmp_path / "up", workspace)
    ours = our_assets_run(tmp_path, tmp_path / "ours", workspace)
    up_assets = read_json(Path(up["run_dir"]) / "assets.json")
    our_assets = read_json(Path(ours["run_dir"]) / "assets.json")

    # Ours adds two fields to the code snapshot (after upstream's, in its order).
    snapshot = our_assets["code"]["snapshot"]
    assert (snapshot.pop("file_count"), snapshot.pop("total_size_bytes")) == (3, 88)
    assert list(snapshot) == list(up_assets["code"]["snapshot"])
    assert json.dumps(normalized(our_assets, tmp_path / "ours", ours["run_id"])) == \
        json.dumps(normalized(up_assets, tmp_path / "up", up["run_id"]))
    assert [len(up_assets[k]) for k in ("datasets", "pretrained", "outputs")] == [3, 2, 4]

    def members(run):
        with zipfile.ZipFile(str(Path(run["run_dir"]) / "code_snapshot.zip")) as zf:
            return {name: sha(zf.read(name)) for name in zf.namelist()}

    assert members(ours) == members(up)
    assert sorted(members(ours)) == [".gitignore", "model/net.py", "train.py"]
    assert archive_tree(tmp_path / "ours", ours["run_id"]) == \
        archive_tree(tmp_path / "up", up["run_id"])
    assert not (workspace / ".rnignore").exists()  # neither package writes into the workspace


def test_upstream_viewer_shows_and_downloads_assets_written_by_us(upstream_python,  # noqa: F811
                                                                   tmp_path):
    root = tmp_path / "root"
    ours = our_assets_run(tmp_path, root, tmp_path / "ws")
    assets = read_json(Path(ours["run_dir"]) / "assets.json")
    seen = json.loads(run_upstream(upstream_python, tmp_path, UPSTREAM_VIEWER, root)
                      .splitlines()[-1])
    run = seen[ours["run_id"]]
    assert run["list"]["assets_count"] == 11  # code, config, 3 datasets, 2 pretrained, 4 outputs
    assert run["assets"]["assets_count"] == 11
    assert run["assets"]["assets"] == assets

    entries = [assets["code"]["snapshot"]] + assets["datasets"] + assets["pretrained"] + \
        assets["outputs"]
    archived = [e for e in entries if e.get("archive_path")]
    assert len(archived) == 8 and set(run["downloads"]) == {e["archive_path"] for e in archived}
    for entry in archived:
        got = run["downloads"][entry["archive_path"]]
        assert got["status"] == 200, entry
        target = Path(entry["archive_path"])
        if entry["fingerprint_kind"] == "sha256":  # a blob or a rolling file copy
            assert got["sha256"] == entry["fingerprint"] == sha(target.read_bytes()), entry
        elif entry["fingerprint_kind"] == "stat":  # a log's rolling copy
            assert got["sha256"] == sha(target.read_bytes())
            assert json.loads(entry["fingerprint"])["size_bytes"] == target.stat().st_size
        elif target.is_file():  # a manifest: the viewer zips the blobs it names
            manifest = read_json(target)
            assert got["zip"] == {rel: f["sha256"] for rel, f in manifest["files"].items()}
        else:  # a rolling directory copy: zipped as it is
            assert got["zip"] == {p.relative_to(target).as_posix(): sha(p.read_bytes())
                                  for p in target.rglob("*") if p.is_file()}
            assert {"shard-0.bin", "shard-1.bin", ".complete"} <= set(got["zip"])
    code = assets["code"]["snapshot"]
    assert run["downloads"][code["archive_path"]]["sha256"] == \
        sha((Path(ours["run_dir"]) / "code_snapshot.zip").read_bytes())


def check_archive_intact(root, run_dir, workspace):
    """Every archive_path of the run's assets.json exists (under ``root``, where the run's
    ``storage_dir`` was when it was written) and holds what it claims."""
    assets = read_json(run_dir / "assets.json")
    written_under = read_json(run_dir / "meta.json")["storage_dir"]

    def local(path):
        assert path.startswith(written_under + "/"), path
        return root / path[len(written_under) + 1:]

    blobs = root / "archive" / "blobs"
    code = assets["code"]["snapshot"]
    assert local(code["archive_path"]).read_bytes() == \
        (run_dir / "code_snapshot.zip").read_bytes()
    assert sha((run_dir / "code_snapshot.zip").read_bytes()) == code["fingerprint"]
    for entry in assets["datasets"] + assets["pretrained"] + assets["outputs"]:
        if not entry.get("saved"):
            assert "archive_path" not in entry
            continue
        target = local(entry["archive_path"])
        if entry["fingerprint_kind"] == "sha256":
            assert sha(target.read_bytes()) == entry["fingerprint"], entry
        elif entry["fingerprint_kind"] == "sha256_manifest" and target.is_file():
            for rel, info in read_json(target)["files"].items():
                data = (blobs / info["sha256"][:2] / info["sha256"]).read_bytes()
                assert sha(data) == info["sha256"] and len(data) == info["size_bytes"]
        elif entry["fingerprint_kind"] == "sha256_manifest":
            assert (target / ".complete").exists()
        if entry.get("path", "").startswith("./"):
            source = workspace / entry["path"][2:]
            if source.is_file():
                assert target.read_bytes() == source.read_bytes()
    for path in blobs.rglob("*"):
        if path.is_file() and not path.name.startswith("."):
            assert re.fullmatch(r"[0-9a-f]{64}", path.name) and path.parent.name == path.name[:2]
            assert sha(path.read_bytes()) == path.name
    return assets


def test_our_tools_read_a_run_written_by_upstream_with_assets(upstream_python,  # noqa: F811
                                                               tmp_path):
    root = tmp_path / "uproot"
    workspace = tmp_path / "ws"
    up = upstream_assets_run(upstream_python, tmp_path, root, workspace)
    listing = agent_ls(root)
    assert list(listing) == [up["run_id"]]
    entry = listing[up["run_id"]]
    assert (entry["path"], entry["alias"], entry["status"]) == (
        "assets/compat", "with-assets", "finished")
    assert entry["points"] == 1 and entry["keys"] == ["loss"]
    assets = check_archive_intact(root, Path(up["run_dir"]), workspace)
    assert [d["name"] for d in assets["datasets"]] == ["cifar", "labels", "unsaved"]
    assert sorted(o["name"] for o in assets["outputs"]) == [
        "best.pt", "ckpt_dir", "final.pt", "train.log"]
    # Upstream's own files beside the runs (its index, its archive) do not disturb the listing.
    assert (root / "archive").is_dir()


def test_the_committed_upstream_assets_fixture_is_intact(tmp_path):
    """tests/fixtures/upstream-0.7.2-assets (written by the real package elsewhere, so its
    archive paths name another root) lists, and every archived asset is found below it."""
    import shutil

    root = tmp_path / "fixture"
    shutil.copytree(str(REPO / "tests" / "fixtures" / "upstream-0.7.2-assets"), str(root))
    [(run_id, entry)] = agent_ls(root).items()
    assert (entry["path"], entry["status"], entry["alias"]) == (
        "assets/compat", "finished", "with-assets")
    assets = check_archive_intact(root, Path(entry["dir"]), tmp_path / "no-workspace")
    assert [len(assets[k]) for k in ("datasets", "pretrained", "outputs")] == [3, 2, 4]
    assert assets["code"]["snapshot"]["saved"] is True


def test_runs_written_by_us_with_assets_are_intact_too(tmp_path):
    root = tmp_path / "root"
    workspace = tmp_path / "ws"
    ours = our_assets_run(tmp_path, root, workspace)
    check_archive_intact(root, Path(ours["run_dir"]), workspace)
    assert agent_ls(root)[ours["run_id"]]["status"] == "finished"
    assert os.path.exists(os.path.join(ours["run_dir"], ".outputs_state.json"))


SIGNATURES = '''
import inspect, json, sys
import runicorn as rn
targets = {"init": rn.init, "snapshot_workspace": rn.snapshot_workspace}
for name in ("log_dataset", "log_pretrained", "scan_outputs_once", "watch_outputs",
             "stop_outputs_watch", "log_config"):
    targets["Run." + name] = getattr(rn.Run, name)
out = {}
for name, fn in targets.items():
    out[name] = [[p.name, str(p.kind), repr(p.default)]
                 for p in inspect.signature(fn).parameters.values()]
print(json.dumps(out))
'''


def test_asset_calls_take_upstreams_arguments_and_defaults(upstream_python,  # noqa: F811
                                                           tmp_path):
    up = json.loads(run_upstream(upstream_python, tmp_path, SIGNATURES).splitlines()[-1])
    done = subprocess.run([sys.executable, "-c", SIGNATURES], env=child_env(),
                          stdout=subprocess.PIPE, universal_newlines=True, timeout=60)
    ours = json.loads(done.stdout.splitlines()[-1])
    for name, params in up.items():
        if name == "init":  # ours adds strict= and heartbeat_interval= after upstream's
            assert ours[name][:len(params)] == params
        elif name == "Run.log_config":  # ours also takes its arguments by position
            assert [(p[0], p[2]) for p in ours[name]] == [(p[0], p[2]) for p in params]
        else:
            assert ours[name] == params, name
