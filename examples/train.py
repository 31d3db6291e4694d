#!/usr/bin/env python3
"""A fake training loop that records itself with the Runicorn Python SDK (no numpy, no torch).

    python3 examples/train.py [--steps 50] [--path demo/fake] [--alias NAME] [--sleep 0.02]
    runicorn-agent run --path demo/fake -- python3 examples/train.py

Standalone it creates a run under $RUNICORN_DIR (else ~/.runicorn); under ``runicorn-agent run``
it logs into the run the agent created. It logs loss/acc/lr every step, draws a tqdm-like ``\\r``
progress line, prints a little, writes a log_text line and a summary.
"""

import argparse
import math
import os
import random
import sys
import time

try:
    import runicorn as rn
except ImportError:  # not installed: use the SDK from this repository
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "sdk",
                                    "python", "src"))
    import runicorn as rn


def main() -> int:
    parser = argparse.ArgumentParser(description="fake training loop")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--path", default="demo/fake")
    parser.add_argument("--alias", default=None)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--sleep", type=float, default=0.02, help="seconds per step")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    run = rn.init(path=args.path, alias=args.alias, capture_console=True)
    run.log_config(args=args, extra={"model": "fake-mlp", "optimizer": "sgd"})
    run.set_primary_metric("acc", mode="max")
    print("run %s in %s" % (run.id, run.dir))

    loss = 2.5
    for step in range(1, args.steps + 1):
        lr = args.lr * 0.5 * (1 + math.cos(math.pi * step / args.steps))  # cosine decay
        loss = max(0.01, loss * (0.93 + 0.04 * rng.random()))
        acc = 1.0 - math.exp(-step / (args.steps / 4)) * (0.9 + 0.05 * rng.random())
        run.log({"loss": loss, "acc": acc, "lr": lr}, stage="train")
        done = int(20 * step / args.steps)
        sys.stdout.write("\rtrain %3d%%|%-20s| %d/%d loss=%.4f" % (
            100 * step // args.steps, "#" * done, step, args.steps, loss))
        sys.stdout.flush()
        time.sleep(args.sleep)
    sys.stdout.write("\n")

    print("final loss %.4f, acc %.4f" % (loss, acc))
    run.log_text("training done after %d steps" % args.steps)
    run.summary({"final_loss": loss, "final_acc": acc, "steps": args.steps})
    run.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
