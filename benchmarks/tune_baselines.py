"""Validation search behind the MF / LightGCN defaults (Recall@20 on the valid split).

    python benchmarks/tune_baselines.py --dataset demo --out benchmarks/results/tune_demo.csv \
        --trials "mf:lr=1e-3,reg=1e-4" "lightgcn:lr=5e-3,reg=1e-2,layers=2"

Each trial trains one model with early stopping and appends a row (model, settings, best validation Recall@20,
best epoch, seconds) to the CSV. Without --trials it runs the coordinate search of the README: learning rate at
reg = 1e-4, then reg at the best learning rate.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import pandas as pd

from mmgrec_core.baselines import make_baseline
from mmgrec_core.data.loaders import load_dataset
from mmgrec_core.evaluate import evaluate


def parse_trial(text: str) -> tuple[str, dict]:
    model, _, opts = text.partition(":")
    kwargs = {}
    for part in filter(None, opts.split(",")):
        key, _, value = part.partition("=")
        kwargs[key] = int(value) if key in ("layers", "dim", "batch_size") else float(value)
    return model, kwargs


def trial(data, model: str, **cfg) -> dict:
    m = make_baseline(model, **cfg)
    start = time.perf_counter()
    m.fit(data)
    seconds = round(time.perf_counter() - start, 1)
    score = round(evaluate(m, data, "valid", ks=(20,))["recall@20"], 4)
    row = {"model": model, **cfg, "valid_recall@20": score, "best_epoch": m.best_epoch, "seconds": seconds}
    print(row, flush=True)
    return row


def coordinate_search(data, model: str) -> list[dict]:
    rows = [trial(data, model, lr=lr, reg=1e-4) for lr in (1e-3, 5e-3, 2e-2)]
    best_lr = max(rows, key=lambda r: r["valid_recall@20"])["lr"]
    return rows + [trial(data, model, lr=best_lr, reg=reg) for reg in (1e-5, 1e-3, 1e-2)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="demo")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--trials", nargs="*", help="model:key=value,... (default: the coordinate search)")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    data = load_dataset(args.dataset)
    if args.trials:
        rows = [trial(data, model, **kw) for model, kw in map(parse_trial, args.trials)]
    else:
        rows = coordinate_search(data, "mf") + coordinate_search(data, "lightgcn")
    frame = pd.DataFrame(rows).assign(dataset=args.dataset)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.out.exists():
        frame = pd.concat([pd.read_csv(args.out), frame], ignore_index=True)
    frame.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
