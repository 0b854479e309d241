"""Time to re-encode a large catalog with fitted tokenizers (what explanations and new items cost).

    python benchmarks/reencode.py --items 100000 --users 20000

Fits graph_rqvae (1 epoch: the timing of encoding does not depend on how well it trained) and rqvae on a
synthetic demo catalog, then times a full re-encode of every item: GCN propagation + encoder + quantizer for
graph_rqvae, encoder + quantizer for rqvae. Prints one line per tokenizer; median of 5 runs.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch

from mmgrec_core.data.loaders import load_dataset
from mmgrec_core.runtime import default_device
from mmgrec_core.tokenizers import make_tokenizer


def timed(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--users", type=int, default=20_000)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    data = load_dataset(f"demo:items={args.items},users={args.users}")
    print(data, "device:", default_device(), "threads:", torch.get_num_threads())
    graph = make_tokenizer("graph_rqvae", steps=50, polish_steps=50)
    graph.fit(data)
    t = timed(lambda: graph.encode(graph.item_representations()))
    print(f"graph_rqvae: re-encode {args.items:,} items in {t:.3f} s ({t / args.items * 1e6:.2f} us/item)")
    raw = make_tokenizer("rqvae", steps=50, polish_steps=50)
    raw.fit(data)
    t = timed(lambda: raw.encode(raw.x))
    print(f"rqvae:       re-encode {args.items:,} items in {t:.3f} s ({t / args.items * 1e6:.2f} us/item)")


if __name__ == "__main__":
    main()
