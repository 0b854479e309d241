"""A million items and a million users end to end on a CPU: time and peak memory per stage (issue 13).

    python benchmarks/scale.py --out benchmarks/results/scale_cpu.csv        # 1M x 1M, about 20M interactions
    python benchmarks/scale.py --items 20000 --users 20000 --out /tmp/scale.csv   # a quick check

Stages, each timed on its own, with the process's peak resident memory after it (`ru_maxrss`, a high-water
mark: a stage's row holds the largest footprint of it and everything before it):

1. data: the demo world (`demo:items=N,users=U`, 20 interactions per user on average) and its 80/10/10 split.
2. tokenizer: the Graph RQ-VAE at 3 x 256 (spectral CF block of the whole training graph, RQ-VAE on
   mini-batches of items, balanced codes), with its collision rate and largest collision group.
3. generator: `--steps` training steps of the default generator (32 users a step, the denoising split, AdamW)
   without the transition tables, which at this size would be I x 770 floats (3 GB, and AdamW triples it).
   The row gives the seconds of those steps and extrapolates one epoch (every user once) from them; a full
   epoch is not run.
4. decode: constrained beam search (beam 20, top-10, seen items excluded) for `--decode-users` users.

The generator is trained only for a few steps, so its recommendations are not evaluated here: this measures
whether the pipeline fits and how long each part takes, not quality.
"""

from __future__ import annotations

import argparse
import resource
import time
import warnings
from pathlib import Path

import pandas as pd
import torch

from mmgrec_core.data.loaders import load_dataset
from mmgrec_core.data.sampling import UserItems
from mmgrec_core.generator import GeneratorConfig, RecIDGenerator
from mmgrec_core.generator.history import split_histories
from mmgrec_core.generator.recommender import MMGRec
from mmgrec_core.pipeline import generator_inputs
from mmgrec_core.runtime import default_device, seed_everything
from mmgrec_core.tokenizers import make_tokenizer
from mmgrec_core.train import TrainingConfig, _optimizer


def peak_gib() -> float:
    """The process's peak resident memory so far, GiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--steps", type=int, default=100, help="generator training steps")
    ap.add_argument("--decode-users", type=int, default=1024)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    device = default_device()
    print(f"device: {device}; threads: {torch.get_num_threads()}", flush=True)
    rows = []

    def record(stage: str, start: float, **extra) -> None:
        rows.append({"stage": stage, "seconds": round(time.perf_counter() - start, 1),
                     "peak_rss_gib": round(peak_gib(), 2), **extra})
        print(rows[-1], flush=True)

    start = time.perf_counter()
    data = load_dataset(f"demo:items={args.items},users={args.users},seed={args.seed}")
    record("data", start, items=data.num_items, users=data.num_users, interactions=len(data.users))

    start = time.perf_counter()
    tokenizer = make_tokenizer("graph_rqvae", levels=3, codebook_size=256, seed=args.seed)
    table = tokenizer.fit(data, seed=args.seed)
    vectors = generator_inputs(tokenizer, data).float()
    record("tokenizer", start, collision_rate=round(table.collision_rate, 4),
           largest_collision_group=int(table.max_p) + 1)

    start = time.perf_counter()
    seed_everything(args.seed)
    model = RecIDGenerator(GeneratorConfig(transition=False, cooccurrence=False), vectors, table.trie.vocab).to(device)
    cfg = TrainingConfig()
    opt = _optimizer(model, cfg)
    seen = UserItems(data, device=device)
    trie = table.trie.to(device)
    tokens = torch.tensor(table.tokens, device=device)
    paths = trie.item_paths()
    gen = torch.Generator().manual_seed(args.seed)
    users = torch.randperm(data.num_users, generator=gen)
    model.train()
    setup = time.perf_counter() - start
    tic = time.perf_counter()
    for s in range(args.steps):
        batch = users[s * cfg.batch_size:(s + 1) * cfg.batch_size].to(device)
        history, targets, mask = split_histories(seen, batch, model.config.max_history, cfg.max_targets,
                                                 (cfg.keep_min, cfg.keep_max), gen)
        owner, items = mask.nonzero(as_tuple=True)[0], targets[mask]
        loss = model.loss(history.to(device), owner, tokens[items], paths[items], trie)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    per_step = (time.perf_counter() - tic) / max(args.steps, 1)
    record("generator", start, steps=args.steps, setup_s=round(setup, 1), s_per_step=round(per_step, 4),
           epoch_s_extrapolated=round(per_step * data.num_users / cfg.batch_size), last_loss=round(loss.item(), 3))

    start = time.perf_counter()
    model.eval()
    recommender = MMGRec(model, table, seen, beam=20, batch_size=256)
    decode = users[: args.decode_users]
    with torch.no_grad():
        recs = recommender.recommend(decode, 10)
    assert (recs >= 0).all(), "every decoded user gets 10 items"
    seconds = time.perf_counter() - start
    record("decode", start, decode_users=len(decode), ms_per_user=round(seconds / len(decode) * 1e3, 3))

    frame = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out, index=False)
    print(frame.to_string(index=False))


if __name__ == "__main__":
    main()
