"""One AdamW step of the generator's optimizer, fused against the default (for-each) implementation.

    python benchmarks/optimizer_step.py [--items 2000,100000,1000000] [--repeats 5] [--out CSV]

The parameters are those of a default generator for a catalog of `--items` items at 3 x 128 Rec-IDs (the
per-item offsets and the three [I + 1, 128] transition tables dominate), every one with a gradient. Both
optimizers get the same parameter groups as `train._optimizer`; the figure is the median wall time of one
`step()` after two warm-up steps, and the ratio default / fused, measured in the same process.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import pandas as pd
import torch

from mmgrec_core.generator.model import GeneratorConfig, RecIDGenerator
from mmgrec_core.train import TrainingConfig, _optimizer


def step_seconds(model: RecIDGenerator, fused: bool, repeats: int) -> float:
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    groups = [{"params": g["params"], "weight_decay": g["weight_decay"]}
              for g in _optimizer(model, TrainingConfig()).param_groups]       # the training's own groups
    opt = torch.optim.AdamW(groups, lr=1e-3, fused=fused)
    for _ in range(2):
        opt.step()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        opt.step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", default="2000,100000,1000000")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    rows = []
    for items in (int(n) for n in args.items.split(",")):
        torch.manual_seed(0)
        model = RecIDGenerator(GeneratorConfig(), torch.randn(items, 64), (128, 128, 128, 8))
        size = sum(p.numel() for p in model.parameters())
        default, fused = (step_seconds(model, f, args.repeats) for f in (False, True))
        rows.append({"items": items, "parameters": size, "threads": torch.get_num_threads(),
                     "default_ms": round(default * 1e3, 2), "fused_ms": round(fused * 1e3, 2),
                     "speedup": round(default / fused, 2)})
        print(rows[-1], flush=True)
    if args.out:
        pd.DataFrame(rows).to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
