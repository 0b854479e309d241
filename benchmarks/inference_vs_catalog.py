"""Top-10 latency per user as the catalog grows: generative retrieval vs. embed-and-retrieve (MMGRec Fig. 5).

    python benchmarks/inference_vs_catalog.py
    python benchmarks/inference_vs_catalog.py --sizes 6000,25000 --repeats 2 --out /tmp/ivc.csv   # quick check

For each catalog size a synthetic demo world (`demo:items=N,users=20000`) is generated and an rqvae tokenizer
(3 levels x 256 codes, 300 + 50 steps) is fitted on it; its Rec-ID trie is what beam search decodes. Then one batch
of `--batch` users is timed for each method (one warm-up call, median of `--repeats`):

* MMGRec: `MMGRec.recommend` (constrained beam search, beam 20, over the trie, seen items excluded) with an
  *untrained* generator (default `GeneratorConfig`, random 64-d item and user vectors): its cost is the same
  whatever the weights, so training is skipped. The network's work does not depend on the catalog; the trie's
  does, mildly: more valid children per beam until the 256-way levels fill up, searchsorted/indexing into
  per-depth arrays that grow with the catalog (cache misses at 1M), the last level's vocabulary max_p + 1
  (reported), and one O(items) index per batch in the seen-item counts.
* MF: exact scoring of every item with random 64-d embeddings (`U[users] @ I.T`), then `top_k_unseen` (seen items
  masked, top-10): what the MF baseline does at inference, linear in the catalog.

Writes one CSV row per (size, method) with ms per user (batch time / batch size), max_p and collision rate, and a
plotly figure next to it (`.html`, log-x). The user count stays at 20000 at every size so that only the catalog
changes; the whole run peaks at about 4 GiB of RAM. Tokenizer fitting is timed and printed, not part of the
latency; it dominates the run time (k-means re-seeding on all items: several minutes at 1M items on one CPU
thread, the full default run about 15 min there). `--steps` only shortens the RQ-VAE training before it.
Device: `default_device()` (CUDA when present; timers read after a sync); the thread count is printed.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import plotly.express as px
import torch

from mmgrec_core.data.loaders import load_dataset
from mmgrec_core.data.sampling import UserItems, top_k_unseen
from mmgrec_core.generator import GeneratorConfig, RecIDGenerator
from mmgrec_core.generator.recommender import MMGRec
from mmgrec_core.runtime import default_device
from mmgrec_core.tokenizers import make_tokenizer

K = 10
DIM = 64


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


@torch.no_grad()
def median_seconds(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    """One warm-up call, then the median wall time of `repeats` calls."""
    fn()
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(size: int, args: argparse.Namespace, device: torch.device) -> list[dict]:
    data = load_dataset(f"demo:items={size},users={args.users},seed={args.seed}")
    start = time.perf_counter()
    table = make_tokenizer("rqvae", levels=3, codebook_size=256, steps=args.steps, polish_steps=50).fit(data)
    fit_s = time.perf_counter() - start
    print(f"{size:>9,} items: {data.num_users:,} users, {len(data.users):,} interactions; tokenizer fit "
          f"{fit_s:.1f} s; max_p {table.max_p} (last-level vocab {table.max_p + 1}), "
          f"collision rate {table.collision_rate:.1%}", flush=True)

    gen = torch.Generator().manual_seed(args.seed)
    users = torch.randperm(data.num_users, generator=gen)[: args.batch].to(device)
    seen = UserItems(data, device=device)
    model = RecIDGenerator(GeneratorConfig(), torch.randn(size, DIM, generator=gen),
                           table.trie.vocab).to(device).eval()
    rec = MMGRec(model, table, seen, beam=args.beam, batch_size=args.batch)
    user_emb = torch.randn(data.num_users, DIM, generator=gen).to(device)
    item_emb = torch.randn(size, DIM, generator=gen).to(device)
    methods = {
        "MMGRec (beam search)": lambda: rec.recommend(users, K),
        "MF (score all + top-k)": lambda: top_k_unseen(user_emb[users] @ item_emb.T, users, seen, K),
    }
    rows = []
    for method, fn in methods.items():
        seconds = median_seconds(fn, args.repeats, device)
        rows.append({"items": size, "method": method, "ms_per_user": seconds / len(users) * 1e3,
                     "batch_s": seconds, "batch": len(users), "users": data.num_users,
                     "interactions": len(data.users), "max_p": table.max_p,
                     "collision_rate": table.collision_rate, "tokenizer_fit_s": fit_s})
        print(f"{'':>16}{method:<24} {rows[-1]['ms_per_user']:.3f} ms/user", flush=True)
    return rows


def main() -> None:
    device = default_device()
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="6000,25000,100000,250000,500000,1000000")
    ap.add_argument("--users", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=256, help="users per timed batch")
    ap.add_argument("--beam", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=300, help="rqvae training steps (latency does not depend on it)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path(f"benchmarks/results/inference_vs_catalog_{device.type}.csv"))
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    print(f"device: {device}; threads: {torch.get_num_threads()}; batch {args.batch}, beam {args.beam}, "
          f"top-{K}, median of {args.repeats}", flush=True)
    rows = [row for size in map(int, args.sizes.split(",")) for row in measure(size, args, device)]

    frame = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out, index=False)
    fig = px.line(frame, x="items", y="ms_per_user", color="method", markers=True, log_x=True,
                  title=f"Top-{K} latency per user vs. catalog size ({device.type}, batch {args.batch})",
                  labels={"items": "catalog size (items)", "ms_per_user": "ms per user"})
    fig.write_html(args.out.with_suffix(".html"))
    table = frame.pivot(index="items", columns="method", values="ms_per_user")
    table = table.join(frame.groupby("items")[["max_p", "collision_rate", "tokenizer_fit_s"]].first())
    print("\nms per user (median of", args.repeats, "runs of one batch):")
    print(table.round(4).to_string())
    print(f"wrote {args.out} and {args.out.with_suffix('.html')}")


if __name__ == "__main__":
    main()
