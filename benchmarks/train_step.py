"""Seconds of one generator training epoch per system, for this checkout and an older commit, same session.

    python benchmarks/train_step.py --before e336624 [--dataset demo] [--systems mmgrec,tiger,mgr-lf,bbqrec]
                                    [--out benchmarks/results/train_step_demo.csv]

Per system its preset's tokenizer is fitted briefly (200 + 50 steps; the Rec-IDs' shape, not their quality, sets a
step's cost, and the tokenizers are the same code in both commits), then `train.fit_generator` trains one epoch
from the seeded initial weights (validation on one user, no alignment pre-training). Each code runs in a fresh
one-thread process (`--before` is checked out into a temporary git worktree), alternating, `--repeats` times; the
CSV has the median epoch seconds, ms per step and the ratio. The compare runs measure the whole effect (README).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import statistics
import subprocess
import sys
import warnings
from pathlib import Path

import pandas as pd
from worktree import checked_out  # benchmarks/ is the folder of this script, so on sys.path

REPO = Path(__file__).resolve().parents[1]


def child(dataset: str, systems: list[str]) -> None:
    """In the code under test: print {system: [epoch seconds, steps]} as one JSON line."""
    import numpy as np
    import torch

    from mmgrec_core.config import resolve
    from mmgrec_core.data.loaders import load_dataset
    from mmgrec_core.pipeline import generator_inputs
    from mmgrec_core.runs import build_generator, make_run_tokenizer
    from mmgrec_core.runtime import seed_everything
    from mmgrec_core.train import fit_generator

    torch.set_num_threads(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = load_dataset(dataset)
    users = len(np.unique(data.pairs("train")[0]))
    out = {}
    for system in systems:
        config = resolve({"dataset": dataset, "system": system, "baselines": []},
                         ["tokenizer.steps=200", "tokenizer.polish_steps=50"], source="benchmark")
        tokenizer = make_run_tokenizer(config)
        table = tokenizer.fit(data, collision=config.tokenizer.collision, seed=config.seed)
        seed_everything(config.seed)
        model = build_generator(config, {"items": generator_inputs(tokenizer, data).float().cpu()}, table)
        training = dataclasses.replace(config.training, epochs=1, valid_users=1, align_epochs=0)
        rows = fit_generator(model, data, table, training, config.decoding, config.seed)
        out[system] = [rows[-1]["seconds"], math.ceil(users / training.batch_size)]
    print(json.dumps(out))


def timed(code: Path, dataset: str, systems: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", "--dataset", dataset,
                           "--systems", ",".join(systems)], cwd=code, env=env, check=True, capture_output=True,
                          text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", help="an older commit to time in the same session")
    ap.add_argument("--dataset", default="demo")
    ap.add_argument("--systems", default="mmgrec,tiger,mgr-lf,bbqrec")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    systems = args.systems.split(",")
    if args.child:
        child(args.dataset, systems)
        return
    with checked_out(args.before) if args.before else contextlib.nullcontext() as before:
        codes = {"this": REPO, **({"before": before} if args.before else {})}
        runs = {name: [] for name in codes}
        for _ in range(args.repeats):
            for name, code in codes.items():
                runs[name].append(timed(code, args.dataset, systems))
    rows = []
    for system in systems:
        row = {"dataset": args.dataset, "system": system, "steps": runs["this"][0][system][1]}
        for name in codes:
            seconds = statistics.median(r[system][0] for r in runs[name])
            row[f"{name}_epoch_s"] = round(seconds, 2)
            row[f"{name}_ms_per_step"] = round(1e3 * seconds / row["steps"], 1)
        if args.before:
            row["before_commit"] = args.before
            row["speedup"] = round(row["before_epoch_s"] / row["this_epoch_s"], 2)
        rows.append(row)
    frame = pd.DataFrame(rows)
    print(frame.to_string(index=False))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
