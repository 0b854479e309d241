"""Ablations of MMGRec on one dataset: position encoding, item embeddings, the output mixture, its transition
tables and co-occurrence evidence, collision token, tokenizer, depth.

    python benchmarks/ablations.py --base runs/demo --out benchmarks/results/ablations_demo.csv

`--base` is a `train` run whose tokenizer has finished (its generator may still be training). Generator
variants (pe, item_emb, mixture, transition, batch size) reuse its tokenizer outputs, so they differ only in the
generator.
Tokenizer variants (collision=random, rqvae, hkmeans, late_fusion, the CF block alone, 2 levels with either
collision token) are trained from scratch.
Baselines are not retrained (the base run has them). Each variant is a run directory under `--runs` (default:
next to the base), so an interrupted sweep continues where it stopped. The CSV gives test metrics, seconds,
the epoch whose weights were kept and the number of epochs trained.
"""

from __future__ import annotations

import argparse
import shutil
import time
import warnings
from pathlib import Path

import pandas as pd

from mmgrec_core.config import resolve
from mmgrec_core.pipeline import train_run
from mmgrec_core.rundir import CONFIG, TOKENIZER, TOKENIZER_OUTPUTS, RunDir

GENERATOR_VARIANTS = {"pe=sinusoidal": ["pe=sinusoidal"], "pe=none": ["pe=none"],
                      "item_emb=learned": ["item_emb=learned"],
                      # one softmax of one decoder state instead of the mixture over the history
                      "mixture=false": ["mixture=false"],
                      # the low-rank mixture alone, without the full-rank (history item, token) tables
                      "transition=false": ["transition=false"],
                      # no co-occurrence evidence in the output: the network's distribution alone
                      "cooccurrence=false": ["cooccurrence=false"],
                      # fewer, larger steps (a GPU's step is host-bound), the learning rate scaled with sqrt(batch)
                      "batch_size=64": ["training.batch_size=64", "training.lr=0.003"],
                      "batch_size=128": ["training.batch_size=128", "training.lr=0.004"]}
TOKENIZER_VARIANTS = {"collision=random": ["collision=random"], "tokenizer=rqvae": ["tokenizer.name=rqvae"],
                      "tokenizer=hkmeans": ["tokenizer.name=hkmeans"],
                      "tokenizer=late_fusion": ["tokenizer.name=late_fusion"],
                      # the CF block alone: codes and item vectors without the modalities
                      "content_weight=0": ["tokenizer.content_weight=0"],
                      # at 3 x 128 balancing leaves no collisions; at 2 levels many items share c1 c2, so the
                      # collision token p carries the identity and its order matters
                      "levels=2": ["levels=2"], "levels=2+collision=random": ["levels=2", "collision=random"]}

def run_variant(base: Path, out: Path, sets: list[str], reuse_tokenizer: bool) -> dict:
    """Train (or finish) one variant of the base configuration; return its metrics."""
    run = RunDir(out)
    if run.finished:
        return run.metrics()
    if not run.has(CONFIG):
        tree = RunDir(base).config().to_dict()
        if any(s.startswith("tokenizer.name=") for s in sets):      # another tokenizer: its own defaults
            tree["tokenizer"] = {"collision": tree["tokenizer"]["collision"]}
        config = resolve(tree, sets + ["baselines=[]"])
        run.write_config(config)
        if reuse_tokenizer:
            for name in (*TOKENIZER_OUTPUTS, TOKENIZER):
                if RunDir(base).has(name):
                    shutil.copy(base / name, out / name)
    return train_run(out, resume=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", type=Path, required=True, help="a finished train run (the default configuration)")
    ap.add_argument("--runs", type=Path, help="where variant runs go (default: beside the base)")
    ap.add_argument("--out", type=Path, required=True, help="CSV of test metrics per variant")
    ap.add_argument("--only", help="comma-separated subset of variant names")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    runs = args.runs or args.base.parent
    variants = {**{k: (v, True) for k, v in GENERATOR_VARIANTS.items()},
                **{k: (v, False) for k, v in TOKENIZER_VARIANTS.items()}}
    if args.only:
        variants = {k: variants[k] for k in args.only.split(",")}
    rows = []
    for name, (sets, reuse) in variants.items():
        start = time.perf_counter()
        out = runs / f"{args.base.name}_{name.replace('=', '-')}"
        rows.append({"variant": name, **summary(out, run_variant(args.base, out, sets, reuse))})
        print(f"{name}: test ndcg@10 {rows[-1]['ndcg@10']:.4f} ({time.perf_counter() - start:.0f} s)", flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_csv(args.out, index=False)
    base = RunDir(args.base).metrics()                                      # the base run may finish last
    if "mmgrec" in base["models"]:
        rows.insert(0, {"variant": "default", **summary(args.base, base)})
        pd.DataFrame(rows).to_csv(args.out, index=False)
    print(pd.DataFrame(rows).round(4).to_string(index=False))


def summary(run: Path, metrics: dict) -> dict:
    """Test metrics, training seconds and the epoch whose weights were kept (best validation NDCG@10)."""
    mm = metrics["models"]["mmgrec"]
    history = RunDir(run).history()
    generator = history[history["stage"] == "generator"]
    best = int(generator.loc[generator["valid_ndcg@10"].idxmax(), "epoch"])
    return {**mm["test"], "train_seconds": mm["train_seconds"], "best_epoch": best, "epochs": len(generator)}


if __name__ == "__main__":
    main()
