"""Coordinate search of the MF / LightGCN defaults on the validation split (Recall@20).

    python benchmarks/tune_baselines.py --dataset demo --out benchmarks/results/tune_demo.csv

Stage 1 varies the learning rate at reg = 1e-4; stage 2 varies reg at the best learning rate; stage 3 (LightGCN)
varies the number of layers. Each row: model, settings, best validation Recall@20, best epoch, seconds.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import pandas as pd

from mmgrec_core.baselines import make_baseline
from mmgrec_core.data.loaders import load_dataset


def trial(data, model: str, **cfg) -> dict:
    m = make_baseline(model, **cfg)
    start = time.perf_counter()
    m.fit(data)
    row = {"model": model, **cfg, "valid_recall@20": None, "best_epoch": m.best_epoch,
           "seconds": round(time.perf_counter() - start, 1)}
    from mmgrec_core.evaluate import evaluate
    row["valid_recall@20"] = round(evaluate(m, data, "valid", ks=(20,))["recall@20"], 4)
    print(row, flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="demo")
    ap.add_argument("--models", default="mf,lightgcn")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    data = load_dataset(args.dataset)
    rows = []
    for model in args.models.split(","):
        stage = [trial(data, model, lr=lr, reg=1e-4) for lr in (1e-3, 5e-3, 2e-2)]
        best_lr = max(stage, key=lambda r: r["valid_recall@20"])["lr"]
        stage += [trial(data, model, lr=best_lr, reg=reg) for reg in (1e-5, 1e-3, 1e-2)]
        best = max(stage, key=lambda r: r["valid_recall@20"])
        if model == "lightgcn":
            stage += [trial(data, model, lr=best["lr"], reg=best["reg"], layers=n) for n in (1, 2, 4)]
        rows += stage
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).assign(dataset=args.dataset).to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
