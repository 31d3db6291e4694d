"""Versioned artifacts: versions count up, `latest` and aliases follow, files come back exactly,
the same bytes are pooled once, lineage links the producing and the consuming runs, and writers
in several processes never get the same version number."""

import os
import sys

import pytest

import runicorn as rn

from conftest import agent_ls, read_json


def checkpoint(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_three_versions_latest_aliases_download_and_lineage(tmp_path, root):
    producer = rn.init(path="train", storage=str(root))
    blobs = [os.urandom(4096) + bytes([i]) for i in range(3)]
    shared = os.urandom(10000)
    versions = []
    for i, blob in enumerate(blobs):
        art = rn.Artifact("resnet", type="model", description="epoch %d" % i,
                          metadata={"epoch": i})
        art.add_file(checkpoint(tmp_path, "ckpt%d.pt" % i, blob), name="model.pt")
        art.add_file(checkpoint(tmp_path, "vocab%d.txt" % i, shared), name="vocab.txt")
        art.add_reference("s3://bucket/data.tar", checksum="abc", size=12)
        versions.append(producer.log_artifact(art, aliases=["best"] if i == 1 else []))
    assert [v.version for v in versions] == [1, 2, 3]
    producer.finish()

    consumer = rn.init(path="eval", storage=str(root))
    latest = consumer.use_artifact("resnet:latest")
    assert latest.version == 3 and latest.path("model.pt").read_bytes() == blobs[2]
    assert consumer.use_artifact("resnet:best").version == 2
    v1 = consumer.use_artifact("resnet:v1")
    out = v1.download(target_dir=tmp_path / "dl")
    assert (out / "model.pt").read_bytes() == blobs[0]
    assert (out / "vocab.txt").read_bytes() == shared
    assert sorted(v1.files) == ["model.pt", "vocab.txt"]
    consumer.finish()

    # Aliases move; latest follows the newest.
    again = rn.init(path="train", storage=str(root))
    art = rn.Artifact("resnet", type="model").add_file(checkpoint(tmp_path, "c.pt", b"x"),
                                                        name="model.pt")
    assert again.log_artifact(art, aliases=["best"]).version == 4
    again.finish()
    index = read_json(root / "artifacts" / "model" / "resnet" / "versions.json")
    assert index["aliases"] == {"best": 4, "latest": 4}

    # Lineage: who produced each version and who used it, in the index and in each run.
    by_version = {v["version"]: v for v in index["versions"]}
    assert by_version[1]["produced_by"]["run_id"] == producer.id
    assert [u["run_id"] for u in by_version[3]["used_by"]] == [consumer.id]
    assert [u["run_id"] for u in by_version[1]["used_by"]] == [consumer.id]
    assert read_json(producer.dir / "artifacts.json")["produced"][0] == {
        "name": "resnet", "type": "model", "version": 1}
    used = read_json(consumer.dir / "artifacts.json")["used"]
    assert [u["version"] for u in used] == [3, 2, 1]
    meta = read_json(root / "artifacts" / "model" / "resnet" / "v2" / "metadata.json")
    assert meta["metadata"] == {"epoch": 1} and meta["description"] == "epoch 1"
    manifest = read_json(root / "artifacts" / "model" / "resnet" / "v2" / "manifest.json")
    assert manifest["references"] == [{"uri": "s3://bucket/data.tar", "checksum": "abc", "size": 12}]

    # The shared file is stored once in the pool, hard-linked into each version.
    pool = root / "artifacts" / ".pool"
    pooled = [p for p in pool.glob("*/*") if p.parent.name != "tmp"]
    assert len(pooled) == 3 + 1 + 1  # three checkpoints, the vocabulary once, b"x"
    vocab = root / "artifacts" / "model" / "resnet" / "v3" / "files" / "vocab.txt"
    assert vocab.stat().st_nlink >= 4

    # The agent lists the three runs, and the artifacts folder beside them is no run.
    listed = agent_ls(root)
    assert sorted(listed) == sorted([producer.id, consumer.id, again.id])
    assert all(e["status"] == "finished" for e in listed.values()), listed


def test_bad_names_and_refs_say_what_is_wrong(tmp_path, root):
    run = rn.init(storage=str(root))
    with pytest.raises(ValueError, match="artifact name"):
        rn.Artifact("../up")
    art = rn.Artifact("data", type="dataset")
    with pytest.raises(ValueError, match="relative path"):
        art.add_file(checkpoint(tmp_path, "f", b"1"), name="../f")
    with pytest.raises(ValueError, match="given by the store"):
        run.log_artifact(art.add_file(checkpoint(tmp_path, "g", b"2")), aliases=["latest"])
    with pytest.raises(KeyError, match="no artifact"):
        run.use_artifact("nothing:latest")
    run.log_artifact(art)
    with pytest.raises(KeyError, match="no version or alias"):
        run.use_artifact("data:best")
    with pytest.raises(KeyError, match="no version v9"):
        run.use_artifact("data:v9")
    run.finish()


def test_writers_in_several_processes_never_share_a_version(tmp_path, root):
    code = """
    import sys, runicorn as rn
    run = rn.init(path="w", storage=%r)
    out = []
    for i in range(10):
        art = rn.Artifact("ckpt", type="model")
        art.add_file(sys.argv[0], name="script.py")
        out.append(run.log_artifact(art).version)
    run.finish()
    print(" ".join(map(str, out)))
    """ % str(root)
    import subprocess
    from conftest import child_env, write_script

    procs = []
    for i in range(4):
        script = write_script(tmp_path, code, name="writer%d.py" % i)
        procs.append(subprocess.Popen([sys.executable, str(script)], env=child_env(),
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      universal_newlines=True))
    got = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        got.extend(int(v) for v in out.split())
    assert sorted(got) == list(range(1, 41))
    index = read_json(root / "artifacts" / "model" / "ckpt" / "versions.json")
    assert [v["version"] for v in index["versions"]] == list(range(1, 41))
    assert index["aliases"]["latest"] == 40
