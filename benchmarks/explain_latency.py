"""How long `explain(item)` takes per call (the app calls it interactively; the issue asks for < 100 ms).

    python benchmarks/explain_latency.py --dataset demo --out benchmarks/results/explain_latency.txt

Fits graph_rqvae and rqvae (3 levels x 128) on the dataset, then times `mmgrec_core.explain.explain` on
`--items` random items after 3 warm-up calls. Prints median and p90 milliseconds per tokenizer. Fitting is not
timed; for graph_rqvae each call re-propagates the whole graph once per modality and once for the CF part.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from mmgrec_core.data.loaders import load_dataset
from mmgrec_core.explain import explain
from mmgrec_core.runtime import default_device
from mmgrec_core.tokenizers import make_tokenizer


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="demo")
    ap.add_argument("--items", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, help="also write the printed lines here")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    data = load_dataset(args.dataset)
    lines = [f"{data}; device: {default_device()}; threads: {torch.get_num_threads()}; "
             f"load average at start: {os.getloadavg()[0]:.1f}"]
    print(lines[0], flush=True)
    for name in ("graph_rqvae", "rqvae"):
        tok = make_tokenizer(name, levels=3, codebook_size=128)
        table = tok.fit(data)
        rng = np.random.default_rng(args.seed)
        items = rng.choice(table.num_items, size=args.warmup + args.items, replace=False)
        for item in items[:args.warmup]:
            explain(tok, table, int(item))
        ms = []
        for item in items[args.warmup:]:
            start = time.perf_counter()
            explain(tok, table, int(item))
            ms.append((time.perf_counter() - start) * 1e3)
        lines.append(f"{name}: explain() over {args.items} items: median {np.median(ms):.1f} ms, "
                     f"p90 {np.percentile(ms, 90):.1f} ms, max {max(ms):.1f} ms")
        print(lines[-1], flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
