"""Rec-ID health per tokenizer at one size (issue: usage, collision rate, AMI with the planted taxonomy, time).

    python benchmarks/tokenizer_table.py --dataset demo --out benchmarks/results/tokenizers_demo.csv
    python benchmarks/tokenizer_table.py --dataset movielens --out benchmarks/results/tokenizers_movielens.csv

AMI compares level-1 tokens with the item table's `category` (demo) or first listed genre (movielens).
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import pandas as pd
from sklearn.metrics import adjusted_mutual_info_score

from mmgrec_core.data.loaders import load_dataset
from mmgrec_core.tokenizers import TOKENIZERS, make_tokenizer, table_stats


def reference_labels(data) -> pd.Series:
    table = data.item_table
    return table["category"] if "category" in table else table["genres"].str.split("|").str[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="demo")
    ap.add_argument("--levels", type=int, default=3)
    ap.add_argument("--codebook", type=int, default=128)
    ap.add_argument("--tokenizers", default=",".join(TOKENIZERS))
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    data = load_dataset(args.dataset)
    labels = reference_labels(data)
    rows = []
    for name in args.tokenizers.split(","):
        start = time.perf_counter()
        table = make_tokenizer(name, levels=args.levels, codebook_size=args.codebook).fit(data)
        stats = table_stats(table)
        rows.append({"tokenizer": name, "seconds": round(time.perf_counter() - start, 1),
                     "collision_rate": round(stats["collision_rate"], 4),
                     "min_usage": round(min(stats["usage"]), 3),
                     "usage": [round(u, 3) for u in stats["usage"]],
                     "ami_level1": round(adjusted_mutual_info_score(labels, table.tokens[:, 0]), 3),
                     "max_p": table.max_p})
        print(rows[-1], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).assign(dataset=args.dataset).to_csv(args.out, index=False)
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
