"""LightGCN's propagation, forward + backward, with torch's sparse product against `baselines.sparse_matmul`.

    python benchmarks/propagation.py [--datasets demo movielens] [--repeats 20] [--out CSV]

Per dataset: the normalised training user-item adjacency (CSR, symmetric) of LightGCN and FREEDOM, three layers
of adj @ h on D = 64 embeddings and the backward of their sum, as one BPR step of those baselines runs it. The
reference multiplies with `adj @ h` and lets autograd differentiate it (torch transposes the CSR matrix at every
backward; PyG's LGConv, which the baselines used before, does the same); `sparse_matmul` multiplies the gradient
by the stored adj^T. Median wall ms of `--repeats` after two warm-ups, both in the same process, and whether the
two gradients are bitwise equal.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from pathlib import Path

import pandas as pd
import torch

from mmgrec_core.baselines import bipartite_norm_adj, sparse_matmul
from mmgrec_core.data.loaders import load_dataset

LAYERS, DIM = 3, 64


def step(adj: torch.Tensor, x: torch.Tensor, fast: bool) -> torch.Tensor:
    """Gradient of the sum of three propagated layers w.r.t. x."""
    x = x.detach().requires_grad_()
    h = out = x
    for _ in range(LAYERS):
        h = sparse_matmul(adj, h) if fast else adj @ h
        out = out + h
    out.sum().backward()
    return x.grad


def median_ms(adj: torch.Tensor, x: torch.Tensor, fast: bool, repeats: int) -> float:
    for _ in range(2):
        step(adj, x, fast)
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        step(adj, x, fast)
        times.append(time.perf_counter() - tic)
    return 1e3 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["demo", "movielens"])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    rows = []
    for spec in args.datasets:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = load_dataset(spec)
        users, items = data.pairs("train")
        adj = bipartite_norm_adj(users, items, data.num_users, data.num_items)
        x = torch.randn(adj.shape[0], DIM, generator=torch.Generator().manual_seed(0))
        torch_ms, ours_ms = (median_ms(adj, x, fast, args.repeats) for fast in (False, True))
        rows.append({"dataset": spec, "nodes": adj.shape[0], "edges": adj._nnz(), "threads": torch.get_num_threads(),
                     "torch_ms": round(torch_ms, 2), "sparse_matmul_ms": round(ours_ms, 2),
                     "speedup": round(torch_ms / ours_ms, 2),
                     "same_gradient": bool(torch.equal(step(adj, x, False), step(adj, x, True)))})
        print(rows[-1], flush=True)
    if args.out:
        pd.DataFrame(rows).to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
