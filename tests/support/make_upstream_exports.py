"""Makes the fixtures in tests/fixtures/upstream-0.7.2-export/ with the upstream `runicorn`
package (PyPI 0.7.2; run it with that package's interpreter, e.g. the one in
.ci-cache/upstream-venv):

    python make_upstream_exports.py OUT_DIR

It writes three small runs with upstream's SDK into a fresh storage root (two under the path
`cv/resnet`, one at the root of `runs/`, each with metrics, a summary, console output captured
into logs.txt and a final status), then exports them the two ways upstream offers:

- `runicorn export --storage ROOT --out OUT_DIR/cli-export.tar.gz` (its CLI, as a user runs it);
- the viewer's `POST /api/runs/export` (the dashboard's "export" button), driven in-process with
  FastAPI's test client, saved as OUT_DIR/viewer-export.zip.

Its last line of output is one JSON line: {"runs": {run_id: run dir relative to the root}}. The fixtures'
README.md records what they hold.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings

warnings.simplefilter("ignore")
import logging

logging.disable(logging.CRITICAL)

import runicorn as rn

assert "site-packages" in rn.__file__, "run this with the upstream package, not ours"

out_dir = os.path.abspath(sys.argv[1])
os.makedirs(out_dir, exist_ok=True)
root = tempfile.mkdtemp(prefix="upstream-export-root-")
os.chdir(root)  # upstream records the working directory as the runs' workspace_root

runs = {}
for path, steps, status in (("cv/resnet", 5, "finished"), ("cv/resnet", 3, "failed"),
                            ("", 4, "finished")):
    run = rn.init(path=path, storage=root, capture_console=True)
    for step in range(steps):
        run.log({"loss": 1.0 / (step + 1), "acc": step / 10.0}, step=step)
        print("step %d loss %.3f" % (step, 1.0 / (step + 1)))
    run.summary({"best_acc": (steps - 1) / 10.0})
    run.finish(status=status)
    rel = os.path.relpath(run.run_dir, root)
    runs[os.path.basename(rel)] = rel

cli = os.path.join(os.path.dirname(sys.executable), "runicorn")
subprocess.run([cli, "export", "--storage", root, "--out",
                os.path.join(out_dir, "cli-export.tar.gz")], check=True,
               stdout=subprocess.DEVNULL)

from fastapi.testclient import TestClient
from runicorn.viewer import create_app

with TestClient(create_app(storage=root)) as client:
    sync = getattr(client.app.state, "sync_thread", None)
    if sync is not None:
        sync.join(30)
    got = client.post("/api/runs/export", json={"run_ids": sorted(runs)})
    assert got.status_code == 200, got.text
    with open(os.path.join(out_dir, "viewer-export.zip"), "wb") as f:
        f.write(got.content)

shutil.rmtree(root)
print(json.dumps({"runs": runs}))
