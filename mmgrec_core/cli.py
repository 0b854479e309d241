"""Command line: `python -m mmgrec_core COMMAND ...`. The only module that parses arguments or prints."""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from .baselines import MODELS, run_baseline
from .data.dataset import DatasetError
from .data.loaders import load_dataset
from .evaluate import KS
from .files import read_json, write_json
from .recid import COLLISIONS
from .runs import RunError, load_run, resolve_config
from .tokenizers import TOKENIZERS, make_tokenizer, table_stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mmgrec_core", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("baselines", help="train and evaluate baselines; write DIR/metrics.json")
    p.add_argument("--dataset", default="demo", help="dataset spec: demo[:k=v,...], movielens, mmrec:DIR, mmgcn:DIR")
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {','.join(MODELS)}")
    p.add_argument("--seed", type=int, default=0)
    t = sub.add_parser("tokenize", help="assign Rec-IDs; write DIR/rec_ids.parquet and DIR/tokenizer_stats.json")
    t.add_argument("--dataset", default="demo", help="dataset spec (as for baselines)")
    t.add_argument("--tokenizer", default="graph_rqvae", choices=TOKENIZERS)
    t.add_argument("--levels", type=int, default=3)
    t.add_argument("--codebook", type=int, default=128)
    t.add_argument("--collision", default="popularity", choices=COLLISIONS)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", required=True, type=Path)
    r = sub.add_parser("train", help="tokenizer -> generator -> evaluation beside the baselines; write a run DIR")
    r.add_argument("--dataset", help="dataset spec (default: the config's, else demo)")
    r.add_argument("--out", type=Path, help="run directory to create")
    r.add_argument("--config", type=Path, help="JSON file with (part of) the run configuration")
    r.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override options, e.g. --set pe=none collision=random tokenizer.name=rqvae epochs=5")
    r.add_argument("--seed", type=int)
    r.add_argument("--resume", type=Path, metavar="DIR", help="continue an interrupted run in DIR")
    c = sub.add_parser("recommend", help="top-K items for one user from a finished run")
    c.add_argument("--run", type=Path, required=True)
    c.add_argument("--user", type=int, required=True)
    c.add_argument("--k", type=int, default=10)
    c.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)
    commands = {"tokenize": tokenize, "baselines": baselines, "train": train, "recommend": recommend}
    try:
        return commands[args.command](args)
    except (DatasetError, RunError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _load(spec: str):
    """Load a dataset, turning its warnings into one readable line each."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_dataset(spec)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    return data


def baselines(args: argparse.Namespace) -> int:
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        print(f"error: unknown model(s) {unknown}; choose from {', '.join(MODELS)}", file=sys.stderr)
        return 2
    data = _load(args.dataset)
    print(data)
    path = args.out / "metrics.json"
    report = {"dataset": args.dataset, "counts": data.counts(), "k": list(KS), "models": {}}
    if path.exists():                      # keep models from earlier calls on the same data
        old = read_json(path)
        if old.get("dataset") == args.dataset and old.get("counts") == report["counts"]:
            report["models"] = old.get("models", {})
    for name in models:
        with tqdm(desc=name, unit="eval", leave=False) as bar:
            def progress(epoch: int, info: dict[str, float]) -> None:
                bar.set_postfix({k: round(v, 4) for k, v in info.items()}, refresh=False)
                bar.update()
            try:
                overrides = {} if name in ("popularity", "ease") else {"seed": args.seed}
                report["models"][name] = run_baseline(name, data, progress=progress, **overrides)
            except ValueError as e:        # e.g. EASE on a catalog too large for a dense item-item matrix
                print(f"skipped {name}: {e}", file=sys.stderr)
                continue
        write_json(path, report)
    print(format_table(report))
    print(f"wrote {path}")
    return 0


def tokenize(args: argparse.Namespace) -> int:
    data = _load(args.dataset)
    print(data)
    tok = make_tokenizer(args.tokenizer, levels=args.levels, codebook_size=args.codebook,
                         collision=args.collision, seed=args.seed)
    start = time.perf_counter()
    with tqdm(desc=args.tokenizer, unit="epoch", leave=False) as bar:
        table = tok.fit(data, progress=lambda step, info: (bar.set_postfix(info, refresh=False), bar.update()))
    stats = {"tokenizer": args.tokenizer, "dataset": args.dataset, "levels": args.levels,
             "codebook": args.codebook, "collision": args.collision, **table_stats(table),
             "seconds": round(time.perf_counter() - start, 2)}
    table.to_parquet(args.out / "rec_ids.parquet")
    write_json(args.out / "tokenizer_stats.json", stats)
    print(json.dumps(stats))
    print(f"wrote {args.out / 'rec_ids.parquet'} and {args.out / 'tokenizer_stats.json'}")
    return 0


def train(args: argparse.Namespace) -> int:
    from .pipeline import train_run

    if args.resume is None and args.out is None:
        print("error: train needs --out DIR (or --resume DIR)", file=sys.stderr)
        return 2
    config = read_json(args.config) if args.config else {}
    if not isinstance(config, dict):
        raise RunError(f"{args.config}: expected a JSON object")
    if args.dataset:
        config["dataset"] = args.dataset
    if args.seed is not None:
        config["seed"] = args.seed
    bars: dict[str, tqdm] = {}

    def progress(stage: str, step: int, info: dict[str, float]) -> None:
        bar = bars.setdefault(stage, tqdm(desc=stage, unit="step", leave=False))
        bar.set_postfix({k: round(v, 4) for k, v in info.items() if k != "seconds"}, refresh=False)
        bar.update()

    if args.resume:
        if args.config or args.set or args.dataset or args.seed is not None:
            raise RunError("--resume continues the run exactly as configured; drop the other options")
        out = args.resume
        metrics = train_run(out, resume=True, progress=progress)
    else:
        out = args.out
        config = resolve_config(config, args.set)
        print(f"dataset {config['dataset']}, tokenizer {config['tokenizer']['name']}, pe {config['generator']['pe']}")
        metrics = train_run(out, config, progress=progress)
    for bar in bars.values():
        bar.close()
    print(format_table(metrics))
    print(f"wrote run {out}")
    return 0


def recommend(args: argparse.Namespace) -> int:
    import torch

    run = _quiet(load_run, args.run)
    if not 0 <= args.user < run.data.num_users:
        raise RunError(f"user {args.user} is not in {run.config['dataset']} (0..{run.data.num_users - 1})")
    if args.k < 1:
        raise RunError(f"--k must be at least 1, got {args.k}")
    result = run.recommender.search(torch.tensor([args.user]), args.k)
    keep = result.items[0] >= 0
    items = result.items[0][keep].tolist()
    scores = [round(float(s), 4) for s in result.scores[0][keep]]
    names = [str(run.table.names[i]) for i in items]
    rec_ids = [list(run.table.rec_id(i)) for i in items]
    if args.json:
        print(json.dumps({"user": args.user, "items": items, "names": names, "rec_ids": rec_ids, "scores": scores}))
    else:
        print(pd.DataFrame({"item": items, "name": names, "rec_id": [tuple(r) for r in rec_ids],
                            "log_prob": scores}, index=range(1, len(items) + 1)).to_string())
    return 0


def _quiet(fn, *args):
    """Run `fn` with dataset warnings silenced (recommend prints results, not data-quality notes)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args)


def format_table(report: dict) -> str:
    """One row per model: valid/test Recall and NDCG at 10 and 20, and training seconds."""
    rows = {}
    for name, m in report["models"].items():
        row = {f"{split} {metric}@{k}": m[split][f"{metric}@{k}"]
               for split in ("valid", "test") for k in (10, 20) for metric in ("recall", "ndcg")}
        rows[name] = {**row, "train s": m["train_seconds"]}
    return pd.DataFrame.from_dict(rows, orient="index").round(4).to_string()


if __name__ == "__main__":
    sys.exit(main())
