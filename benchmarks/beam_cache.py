"""Beam search with the decoder's KV cache and per-user cross-attention against what it did before: re-decoding
the whole prefix at every level, with the memory's keys and values copied per beam. Same run, same weights.

    python benchmarks/beam_cache.py [--run assets/demo_run] [--users 1000] [--repeats 3]

The reference is the same `beam_search` with `decode_next` swapped for one that keeps each beam's prefix and
runs `decode` over all of it, and the decoder's cross-attention gathering keys and values per row. Both must return the same items (checked);
the figure is the median wall time of recommending top-10 for `--users` users, and their ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
import types
import warnings

import torch

from mmgrec_core.generator.attention import DecoderLayer
from mmgrec_core.runs import load_run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default="assets/demo_run")
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    run = load_run(args.run)
    users = torch.arange(min(args.users, run.data.num_users))
    print(f"run {args.run}: {run.data.num_items} items, depth {run.table.trie.depth}, "
          f"{len(run.model.decoder)} decoder layer(s), beam {run.recommender.beam}, {torch.get_num_threads()} threads")
    times = {}
    cached = run.recommender.recommend(users, 10)
    times["cached"] = _time(lambda: run.recommender.recommend(users, 10), args.repeats)
    with reference_decoder(run.model):
        reference = run.recommender.recommend(users, 10)
        times["reference"] = _time(lambda: run.recommender.recommend(users, 10), args.repeats)
    assert torch.equal(cached, reference), "the cache changed the recommendations"
    print(f"same top-10 for {len(users)} users; reference {times['reference']:.2f} s, cached {times['cached']:.2f} s, "
          f"speed-up {times['reference'] / times['cached']:.2f}x")


@contextlib.contextmanager
def reference_decoder(model):
    """Inside, `model` decodes as before the KV cache: the whole prefix again at every level, keys copied per row."""
    original, cross = model.decode_next, DecoderLayer._cross
    model.decode_next = types.MethodType(_reference_decode_next, model)
    DecoderLayer._cross = staticmethod(_gathered_cross)
    try:
        yield
    finally:
        model.decode_next, DecoderLayer._cross = original, cross


def _reference_decode_next(model, memory, pad, last, rows, cache):
    """The prefix is rebuilt from the beam's tokens, which beam search hands over through the cache lists: each
    layer's list holds [tokens [R, t]] and is re-indexed by the beam's parents like real keys and values."""
    slot = cache[0]
    tokens = slot[0] if slot else torch.zeros(len(rows), 0, dtype=torch.long, device=rows.device)
    if last is not None:
        tokens = torch.cat([tokens, last[:, None]], 1)
    for layer_slot in cache:
        layer_slot[:] = [tokens]
    return model.decode(memory, pad, tokens, rows)[:, -1]


def _gathered_cross(q, k, v, pad, rows):
    """Cross-attention with the keys and values copied for every row [R, H, N, d_h]."""
    return torch.nn.functional.scaled_dot_product_attention(q, k[rows], v[rows],
                                                            attn_mask=(~pad)[rows][:, None, None, :])


def _time(fn, repeats: int) -> float:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return statistics.median(out)


if __name__ == "__main__":
    main()
