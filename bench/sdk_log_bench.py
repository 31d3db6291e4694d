#!/usr/bin/env python3
"""How fast the Python SDK logs metrics, against the cheapest thing a script could do instead.

    python3 bench/sdk_log_bench.py [--steps 100000] [--repeat 3] [--max-ratio 2.0]

(a) baseline: a plain loop writing one ``json.dumps({"step", "loss", "acc", "lr"})`` line per
    step to a file;
(b) the SDK (imported from ``sdk/python/src``, not installed): ``rn.init()``, then
    ``run.log({"loss", "acc", "lr"})`` per step, timed until ``run.finish()`` returns (so the
    background flushing is included).

Each is run ``--repeat`` times, interleaved; the best time of each is reported with points/s
(3 metric values a step) and the ratio SDK/baseline. With ``--max-ratio`` the exit status is 1
when the ratio is above it.

With ``--upstream-python PY`` (a Python that has the PyPI ``runicorn`` package, e.g. the venv
``scripts/test-all.sh`` makes in ``.ci-cache/upstream-venv``), the same loop is also timed with
the upstream package, over ``--upstream-steps`` steps (it is slow), for scale.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "sdk", "python", "src"))

import runicorn as rn  # noqa: E402


def baseline(path: str, steps: int) -> float:
    start = time.perf_counter()
    with open(path, "w") as f:
        for i in range(steps):
            f.write(json.dumps({"step": i, "loss": 1.0 / (i + 1), "acc": i / steps, "lr": 0.001})
                    + "\n")
    return time.perf_counter() - start


def sdk(root: str, steps: int) -> float:
    start = time.perf_counter()
    run = rn.init(path="bench", storage=root)
    log = run.log
    for i in range(steps):
        log({"loss": 1.0 / (i + 1), "acc": i / steps, "lr": 0.001})
    run.finish()
    elapsed = time.perf_counter() - start
    with open(os.path.join(str(run.dir), "events.jsonl"), "rb") as f:
        lines = sum(1 for _ in f)
    if lines != steps:
        raise SystemExit("SDK wrote %d lines for %d steps" % (lines, steps))
    return elapsed


UPSTREAM_LOOP = r"""
import sys, time
import runicorn as rn
root, steps = sys.argv[1], int(sys.argv[2])
start = time.perf_counter()
run = rn.init(path="bench", storage=root)
for i in range(steps):
    run.log({"loss": 1.0 / (i + 1), "acc": i / steps, "lr": 0.001})
run.finish()
print(time.perf_counter() - start)
"""


def upstream(python: str, root: str, steps: int) -> float:
    """Seconds the upstream package takes for the same loop (in its own interpreter)."""
    env = dict(os.environ)
    env.pop("RUNICORN_DIR", None)
    out = subprocess.run([python, "-c", UPSTREAM_LOOP, root, str(steps)], check=True,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    return float(out.stdout.decode().strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--max-ratio", type=float, default=None)
    parser.add_argument("--upstream-python", default=None)
    parser.add_argument("--upstream-steps", type=int, default=2000)
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="rn-bench-")
    try:
        base_times, sdk_times = [], []
        for attempt in range(args.repeat):
            base_times.append(baseline(os.path.join(work, "baseline-%d.jsonl" % attempt), args.steps))
            sdk_times.append(sdk(os.path.join(work, "root-%d" % attempt), args.steps))
        upstream_time = None
        if args.upstream_python:
            upstream_time = upstream(args.upstream_python, os.path.join(work, "upstream"),
                                     args.upstream_steps)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    points = args.steps * 3
    base, ours = min(base_times), min(sdk_times)
    ratio = ours / base
    print("steps: %d x 3 metrics, best of %d, python %s" % (args.steps, args.repeat,
                                                           sys.version.split()[0]))
    print("baseline json.dumps loop: %.3f s  %10.0f points/s" % (base, points / base))
    print("runicorn SDK log+finish:  %.3f s  %10.0f points/s" % (ours, points / ours))
    print("ratio SDK/baseline: %.2f" % ratio)
    if upstream_time is not None:
        up_rate = args.upstream_steps * 3 / upstream_time
        print("upstream runicorn (%d steps): %.3f s  %10.0f points/s  (ours is %.0fx faster)"
              % (args.upstream_steps, upstream_time, up_rate, (points / ours) / up_rate))
    if args.max_ratio is not None and ratio > args.max_ratio:
        print("FAIL: ratio %.2f is above %.2f" % (ratio, args.max_ratio))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
