"""Reads a storage root with the upstream `runicorn` package's own viewer (FastAPI, driven
in-process with its test client) and prints, as one JSON line, what its API returns for every
run: the listing entry, the metrics and the status, its assets (`/assets`: the assets.json it
shows and its count) and, for every `archive_path` in them, what the viewer's download
endpoint gives (`downloads`: path -> {"status", "sha256" of the body, and for a zip body
"zip": {member: sha256}}). Run it with a Python that has the PyPI
package: `python upstream_viewer.py ROOT`. Used by the compatibility tests of both the Python
SDK (sdk/python/tests/test_upstream.py) and the Rust writer (tests/tests/e2e/upstream_compat.rs).
"""

import hashlib, io, json, sys, warnings, zipfile
warnings.simplefilter("ignore")
import logging
logging.disable(logging.CRITICAL)
from fastapi.testclient import TestClient
from runicorn.viewer import create_app
import runicorn
assert "site-packages" in runicorn.__file__
out = {}
with TestClient(create_app(storage=sys.argv[1])) as client:
    # The viewer copies the file tree into its SQLite index in a background thread at start-up;
    # asking before it is done lists a partial set.
    sync = getattr(client.app.state, "sync_thread", None)
    if sync is not None:
        sync.join(30)
    runs = client.get("/api/runs").json()
    for run in runs:
        metrics = client.get("/api/runs/%s/metrics" % run["id"]).json()
        detail = client.get("/api/runs/%s" % run["id"]).json()
        assets = client.get("/api/runs/%s/assets" % run["id"]).json()
        paths = []

        def collect(node):
            if isinstance(node, dict):
                if isinstance(node.get("archive_path"), str):
                    paths.append(node["archive_path"])
                for value in node.values():
                    collect(value)
            elif isinstance(node, list):
                for value in node:
                    collect(value)

        collect(assets.get("assets"))
        downloads = {}
        for path in paths:
            got = client.get("/api/runs/%s/assets/download" % run["id"], params={"path": path})
            seen = {"status": got.status_code, "sha256": hashlib.sha256(got.content).hexdigest()}
            if got.status_code == 200 and got.content[:2] == b"PK":
                with zipfile.ZipFile(io.BytesIO(got.content)) as zf:
                    seen["zip"] = {n: hashlib.sha256(zf.read(n)).hexdigest() for n in zf.namelist()}
            downloads[path] = seen
        out[run["id"]] = {"list": run, "metrics": metrics, "status": detail.get("status"),
                          "assets": assets, "downloads": downloads}
print(json.dumps(out))
