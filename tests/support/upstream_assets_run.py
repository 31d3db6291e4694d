"""Writes one run with every upstream 0.7 asset call, with whichever `runicorn` package the
interpreter imports (the PyPI 0.7.2 package, or ours with PYTHONPATH=sdk/python/src):

    python upstream_assets_run.py ROOT WORKSPACE

It fills WORKSPACE (when empty) with a small project: code, a `.gitignore`, a dataset
directory and file, pretrained weights, and outputs (checkpoints, a log, a checkpoint
directory); then runs `init(snapshot_code=True, workspace_root=WORKSPACE)`, `log_dataset`
(saved and not), `log_pretrained` (saved and not), and `scan_outputs_once` twice in rolling
mode and twice in the deduplicating mode. It prints one JSON line: {"run_id", "run_dir",
"workspace"}. Used by sdk/python/tests/test_upstream_assets.py (both directions), and reusable
by the hub's end-to-end tests as a generator of an upstream-written run with assets.
"""

import json
import os
import sys

import runicorn as rn

root, ws = sys.argv[1], os.path.abspath(sys.argv[2])


def write(rel, data):
    path = os.path.join(ws, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(data)
        os.utime(path, (1700000000, 1700000000))  # old enough to count as stable


write("train.py", b"import runicorn\nprint('training')\n")
write("model/net.py", b"class Net:\n    pass\n")
write("model/__pycache__/net.cpython-311.pyc", b"\x00compiled")
write("notes.log", b"not in the snapshot (*.log)\n")
write(".gitignore", b"*.log\ndata/\noutputs/\noutputs_cas/\n")
write("data/cifar/train/0.bin", bytes(range(256)) * 40)
write("data/cifar/train/1.bin", b"\x01" * 3000)
write("data/cifar/labels.txt", b"cat\ndog\n")
write("data/labels.csv", b"id,label\n1,cat\n")
write("data/backbone.pt", b"pretrained weights " * 100)
write("outputs/best.pt", b"checkpoint bytes " * 64)
write("outputs/train.log", b"epoch 1 loss 0.5\n")
write("outputs/ckpt_dir/shard-0.bin", b"shard zero")
write("outputs/ckpt_dir/shard-1.bin", b"shard one")
write("outputs_cas/final.pt", b"final weights " * 32)
for rel in ("data", "data/cifar", "data/cifar/train", "outputs", "outputs/ckpt_dir",
            "outputs_cas"):
    os.utime(os.path.join(ws, rel), (1700000000, 1700000000))

run = rn.init(path="assets/compat", storage=root, alias="with-assets", snapshot_code=True,
              workspace_root=ws)
run.log({"loss": 1.0})
run.log_config(args={"lr": 0.1})
run.log_dataset("cifar", os.path.join(ws, "data", "cifar"), save=True, description="images")
run.log_dataset("labels", os.path.join(ws, "data", "labels.csv"), context="eval", save=True)
run.log_dataset("unsaved", os.path.join(ws, "data", "cifar"), context="test")
run.log_pretrained("backbone", path_or_uri=os.path.join(ws, "data", "backbone.pt"), save=True,
                   source_type="local", description="start point")
run.log_pretrained("hub-model", path_or_uri="org/model", source_type="huggingface")
for _ in range(2):
    run.scan_outputs_once(output_dirs=[os.path.join(ws, "outputs")],
                          patterns=["*.pt", "*.log", "ckpt_dir/"], min_age_sec=0)
for _ in range(2):
    run.scan_outputs_once(output_dirs=[os.path.join(ws, "outputs_cas")], mode="dedup",
                          min_age_sec=0)
run.finish()
print(json.dumps({"run_id": run.id, "run_dir": str(run.run_dir), "workspace": ws}))
