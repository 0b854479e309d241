"""Training time of `train` end to end without baselines, for this checkout and (optionally) an older commit.

    python benchmarks/train_time.py --dataset demo --out benchmarks/results/train_time_demo.csv [--before COMMIT]

Each run is `python -m mmgrec_core train --dataset D --out TMP --set baselines=` in a fresh process with the
given thread count, timed from start to exit (dataset loading included). `--before` checks the commit out into
a temporary git worktree and times its `train` the same way in the same session, so the ratio compares like with
like on this machine. The CSV has one row per (code, dataset): wall seconds, the run's own train_seconds, and its
test NDCG@10 / Recall@20.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from worktree import checked_out  # benchmarks/ is the folder of this script, so on sys.path

REPO = Path(__file__).resolve().parents[1]


def timed_train(code: Path, dataset: str, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        env = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": str(threads)}
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "mmgrec_core", "train", "--dataset", dataset, "--out", str(out),
                        "--set", "baselines=[]"], cwd=code, env=env, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        model = json.loads((out / "metrics.json").read_text())["models"]["mmgrec"]
    return {"wall_s": round(wall, 1), "train_seconds": model["train_seconds"],
            "test_ndcg@10": round(model["test"]["ndcg@10"], 4), "test_recall@20": round(model["test"]["recall@20"], 4)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="demo")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--before", help="a commit to time beside this checkout (checked out in a temporary worktree)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    rows = []
    with checked_out(args.before) if args.before else contextlib.nullcontext() as worktree:
        codes = {f"commit {args.before}": worktree} if args.before else {}
        for label, code in {**codes, "this checkout": REPO}.items():
            rows.append({"code": label, "dataset": args.dataset, "threads": args.threads,
                         **timed_train(code, args.dataset, args.threads)})
            print(rows[-1], flush=True)
    frame = pd.DataFrame(rows)
    if len(rows) == 2:
        frame["speedup_vs_before"] = round(frame["wall_s"].iloc[0] / frame["wall_s"], 2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out, index=False)
    print(frame.to_string(index=False))


if __name__ == "__main__":
    main()
