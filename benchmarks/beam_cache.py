"""Beam search as it is against what it did before: (1) re-decoding the whole prefix at every level, with the
memory's keys and values copied per beam (the reference, in this process); (2) optionally a whole earlier commit's
beam search (`--before COMMIT`, checked out in a temporary worktree and timed in a subprocess). Same run, same
weights, same users, same machine.

    python benchmarks/beam_cache.py [--run assets/demo_run] [--users 1000] [--repeats 3] [--before fa4d721]

The reference is the same `beam_search` with `decode_next` swapped for one that keeps each beam's prefix and
runs `decode` over all of it, and the decoder's cross-attention gathering keys and values per row. Every variant
must return the same items (checked); the figure is the median wall time of recommending top-10 for `--users`
users, and the ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
import warnings
from pathlib import Path

import torch
from worktree import checked_out  # benchmarks/ is the folder of this script, so on sys.path

from mmgrec_core.generator.attention import DecoderLayer
from mmgrec_core.runs import load_run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default="assets/demo_run")
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--before", help="an earlier commit whose beam search to time on the same run")
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
    if args.before:
        seconds, items = _time_commit(args.before, args.run, len(users), args.repeats)
        assert torch.equal(cached, items), f"commit {args.before} recommends other items"
        print(f"commit {args.before}: {seconds:.2f} s, same top-10; this checkout is {seconds / times['cached']:.2f}x "
              f"faster")


_SNIPPET = """
import statistics, sys, time, warnings, torch, mmgrec_core
warnings.simplefilter("ignore")
from mmgrec_core.runs import load_run
run = load_run(sys.argv[1]); users = torch.arange(int(sys.argv[2]))
items = run.recommender.recommend(users, 10)
times = []
for _ in range(int(sys.argv[3])):
    start = time.perf_counter(); run.recommender.recommend(users, 10); times.append(time.perf_counter() - start)
torch.save({"seconds": statistics.median(times), "items": items, "code": mmgrec_core.__file__}, sys.argv[4])
"""


def _time_commit(commit: str, run: str, users: int, repeats: int) -> tuple[float, torch.Tensor]:
    """Median seconds and top-10 of `commit`'s beam search, in a subprocess on a temporary worktree."""
    with checked_out(commit) as tree, tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.pt"
        subprocess.run([sys.executable, "-c", _SNIPPET, str(Path(run).resolve()), str(users), str(repeats),
                        str(out)], check=True, cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)})
        result = torch.load(out, weights_only=True)
        assert Path(result["code"]).is_relative_to(tree), f"timed {result['code']}, not the worktree's code"
    return result["seconds"], result["items"]


@contextlib.contextmanager
def reference_decoder(model):
    """Inside, `model` decodes as before the KV cache: the whole prefix again at every level, keys copied per row."""
    original, cross = model.decode_next, DecoderLayer.__dict__["_cross"]          # the staticmethod itself
    model.decode_next = types.MethodType(_reference_decode_next, model)
    DecoderLayer._cross = staticmethod(_gathered_cross)
    try:
        yield
    finally:
        model.decode_next, DecoderLayer._cross = original, cross


def _reference_decode_next(model, memory, pad, last, rows, cache, memory_kv=None):
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
