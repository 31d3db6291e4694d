"""Writes the artifact world of the artifact UI tests (tests/tests/e2e/web_api/artifacts.rs and
web/ui/tests/browser/artifacts.test.mjs) into the storage root given as the only argument, with
our Python SDK (PYTHONPATH=sdk/python/src):

- run `train/resnet` (run id `train01`) logs model `resnet` v1, v2 and v3; every version holds
  `model.pt` (new bytes each time) and `vocab.txt` (the same bytes each time, so dedup saves
  two copies of it); `best` goes to v2, then moves to v3; v3 names a reference;
- run `eval/resnet` (run id `eval01`) uses `resnet:v1` and logs dataset `preds` v1;
- run `serve/api` (run id `serve01`) uses `preds:latest`.

It prints a JSON object of what it wrote (sizes and contents) for the tests to compare against.
"""

import json
import os
import sys
import tempfile

import runicorn as rn

root = sys.argv[1]
work = tempfile.mkdtemp(prefix="artifact-world-")


def file_with(name, data):
    path = os.path.join(work, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


vocab = b"the shared vocabulary\n" * 500
models = [bytes([65 + i]) * (3000 + 1000 * i) for i in range(3)]

train = rn.init(path="train/resnet", storage=root, run_id="train01")
for i, blob in enumerate(models):
    art = rn.Artifact("resnet", type="model", description="epoch %d" % (i + 1),
                      metadata={"epoch": i + 1})
    art.add_file(file_with("m%d.pt" % i, blob), name="model.pt")
    art.add_file(file_with("vocab%d.txt" % i, vocab), name="vocab.txt")
    if i == 2:
        art.add_reference("s3://bucket/train.tar", checksum="abc", size=12)
    train.log_artifact(art, aliases=["best"] if i >= 1 else [])
train.finish()

evaluation = rn.init(path="eval/resnet", storage=root, run_id="eval01")
evaluation.use_artifact("resnet:v1")
preds = rn.Artifact("preds", type="dataset").add_file(
    file_with("preds.csv", b"id,label\n1,cat\n2,dog\n"), name="preds.csv")
evaluation.log_artifact(preds)
evaluation.finish()

serve = rn.init(path="serve/api", storage=root, run_id="serve01")
serve.use_artifact("preds:latest")
serve.finish()

print(json.dumps({
    "model_sizes": [len(m) + len(vocab) for m in models],
    "vocab_size": len(vocab),
    "model_bytes": [len(m) for m in models],
}))
