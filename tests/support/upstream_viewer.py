"""Reads a storage root with the upstream `runicorn` package's own viewer (FastAPI, driven
in-process with its test client) and prints, as one JSON line, what its API returns for every
run: the listing entry, the metrics and the status. Run it with a Python that has the PyPI
package: `python upstream_viewer.py ROOT`. Used by the compatibility tests of both the Python
SDK (sdk/python/tests/test_upstream.py) and the Rust writer (tests/tests/e2e/upstream_compat.rs).
"""

import json, sys, warnings
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
        out[run["id"]] = {"list": run, "metrics": metrics, "status": detail.get("status")}
print(json.dumps(out))
