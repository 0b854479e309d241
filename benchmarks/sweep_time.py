"""How long the default codebook sweep takes (the app's Collisions page computes it once, then reads the cache).

    python benchmarks/sweep_time.py --dataset demo --out benchmarks/results/sweep_demo.csv
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

from mmgrec_core.analysis import SweepConfig, sweep
from mmgrec_core.data.loaders import load_dataset


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="demo")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    data = load_dataset(args.dataset)
    start = time.perf_counter()
    frame = sweep(data, SweepConfig(), use_cache=False)
    print(f"default sweep on {args.dataset}: {len(frame)} points in {time.perf_counter() - start:.0f} s")
    print(frame.round(4).to_string(index=False))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
