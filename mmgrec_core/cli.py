"""Command line: `python -m mmgrec_core COMMAND ...`. The only module that parses arguments or prints."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from .baselines import MODELS
from .config import RunError, resolve
from .data.dataset import DatasetError
from .data.loaders import load_dataset
from .files import read_json
from .recid import COLLISIONS
from .rundir import CONFIG, METRICS, REC_IDS, TOKENIZER_STATS, RunDir
from .runs import load_run
from .systems import SYSTEMS
from .tokenizers import TOKENIZERS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mmgrec_core", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("baselines", help="train and evaluate baselines; write DIR/metrics.json")
    p.add_argument("--dataset", default="demo",
                   help="dataset spec: demo[:k=v,...], movielens, mmrec:DIR, mmgcn:DIR")
    p.add_argument("--out", type=Path,
                   help="directory to write metrics.json and the top lists into (default: print only)")
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
                   help="override options, e.g. --set pe=none collision=random tokenizer.name=rqvae training.epochs=5")
    r.add_argument("--seed", type=int)
    r.add_argument("--system", choices=SYSTEMS,
                   help="start from a related system's preset (default mmgrec); --config and --set override it")
    r.add_argument("--resume", type=Path, metavar="DIR", help="continue an interrupted run in DIR")
    m = sub.add_parser("compare", help="every system and baseline on one split and several seeds; "
                                       "write DIR/leaderboard.json, .csv and .html")
    m.add_argument("--dataset", default="demo", help="dataset spec (as for train)")
    m.add_argument("--systems", required=True,
                   help=f"comma-separated, from {','.join(SYSTEMS)} and the baselines {','.join(MODELS)}")
    m.add_argument("--seeds", default="0,1,2", help="comma-separated model seeds (the split is the dataset's)")
    m.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="settings for every generative system, e.g. training.epochs=5")
    m.add_argument("--out", type=Path, required=True, help="the comparison's directory (resumed if it exists)")
    m.add_argument("--jobs", type=int, default=1,
                   help="worker processes training side by side, each on its share of the CPU threads (default 1)")
    c = sub.add_parser("recommend", help="top-K items for one user from a finished run")
    c.add_argument("--run", type=Path, required=True)
    c.add_argument("--user", type=int, required=True)
    c.add_argument("--k", type=int, default=10)
    c.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)
    commands = {"tokenize": tokenize, "baselines": baselines, "train": train, "recommend": recommend,
                "compare": compare}
    try:
        return commands[args.command](args)
    except (DatasetError, RunError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        where = getattr(args, "resume", None) or getattr(args, "out", None)
        hint = f"; continue it with: python -m mmgrec_core train --resume {where}" \
            if args.command == "train" and where and RunDir(where).has(CONFIG) else ""
        print(f"\ninterrupted{hint}", file=sys.stderr)
        return 130


def _load(spec: str):
    """Load a dataset, turning its warnings into one readable line each."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_dataset(spec)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    return data


def baselines(args: argparse.Namespace) -> int:
    from .pipeline import run_baselines

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    config = resolve({"dataset": args.dataset, "seed": args.seed, "baselines": models}, source="baselines")
    data = _load(config.dataset)
    print(data)
    bars: dict[str, tqdm] = {}
    with tempfile.TemporaryDirectory() as scratch:
        metrics = run_baselines(RunDir(args.out or scratch), config, data, report=_bars(bars, unit="eval"))
    _close(bars)
    for name, why in metrics.get("skipped", {}).items():
        print(f"skipped {name}: {why}", file=sys.stderr)
    print(format_table(metrics))
    if args.out:
        print(f"wrote {args.out / METRICS}")
    return 0


def tokenize(args: argparse.Namespace) -> int:
    from .pipeline import tokenize as fit

    config = resolve({"dataset": args.dataset, "seed": args.seed,
                      "tokenizer": {"name": args.tokenizer, "levels": args.levels, "codebook_size": args.codebook,
                                    "collision": args.collision}}, source="tokenize")
    data = _load(config.dataset)
    print(data)
    bars: dict[str, tqdm] = {}
    run = RunDir(args.out)
    fit(run, config, data, _bars(bars, unit="epoch")("tokenizer"))
    _close(bars)
    stats = run.json(TOKENIZER_STATS)
    print(json.dumps({k: v for k, v in stats.items() if k != "history"}))
    print(f"wrote {run / REC_IDS} and {run / TOKENIZER_STATS}")
    return 0


def train(args: argparse.Namespace) -> int:
    from . import distributed
    from .pipeline import train_run

    if args.resume is None and args.out is None:
        raise RunError("train needs --out DIR (or --resume DIR)")
    if args.resume and (args.config or args.set or args.dataset or args.seed is not None or args.system):
        raise RunError("--resume continues the run exactly as configured; drop the other options")
    if not args.resume:
        config = _read_config(args.config) if args.config else {}
        if args.system:
            config["system"] = args.system
        if args.dataset:
            config["dataset"] = args.dataset
        if args.seed is not None:
            config["seed"] = args.seed
        config = resolve(config, args.set, source=str(args.config or "train"))
        if args.out.exists() and not args.out.is_dir():
            raise RunError(f"--out {args.out} is a file; give a directory for the run")
    world = distributed.start()                    # torchrun: join the other processes; else a world of one
    bars: dict[str, tqdm] = {}
    try:
        if args.resume:
            out = args.resume
            stored = RunDir(out).config() if RunDir(out).has(CONFIG) else None
            progress = _progress(bars, stored) if world.main else None
            metrics = train_run(out, resume=True, progress=progress, world=world)
        else:
            out = args.out
            if world.main:
                print(f"system {config.system}, dataset {config.dataset}, tokenizer {config.tokenizer.name}, "
                      f"pe {config.generator.pe}"
                      + (f", {world.size} processes" if world.size > 1 else ""))
            progress = _progress(bars, config) if world.main else None
            metrics = train_run(out, config, progress=progress, world=world)
    finally:
        _close(bars)
        distributed.stop()
    if world.main:
        system = RunDir(out).config().system
        print(format_table(metrics, {"mmgrec": system} if system != "mmgrec" else {}))
        print(f"wrote run {out}")
    return 0


def compare(args: argparse.Namespace) -> int:
    from .compare import FIGURE, LEADERBOARD, TABLE, CompareRequest
    from .compare import compare as run_compare

    systems = tuple(s.strip() for s in args.systems.split(",") if s.strip())
    try:
        seeds = tuple(int(s) for s in args.seeds.split(",") if s.strip())
    except ValueError:
        raise RunError(f"--seeds {args.seeds!r}: expected comma-separated integers, e.g. 0,1,2") from None
    request = CompareRequest(args.dataset, systems, seeds, tuple(args.set))     # checks every setting first
    if args.out.exists() and not args.out.is_dir():
        raise RunError(f"--out {args.out} is a file; give a directory for the comparison")
    if args.jobs < 1:
        raise RunError(f"--jobs {args.jobs}: must be at least 1")
    data = _load(request.dataset)
    print(data)
    outer: dict[str, tqdm] = {}
    inner: dict[str, tqdm] = {}

    def progress(system: str, done: int, total: int) -> None:
        if system not in outer:
            _close(inner)
            inner.clear()
            outer[system] = tqdm(desc=system, total=total, unit="seed")
        outer[system].n = done
        outer[system].refresh()

    def run_progress(system: str):
        return _progress(inner, request.config(system, seeds[0])) if system in SYSTEMS else \
            (lambda stage, step, info: None)

    try:
        board = run_compare(args.out, request, progress=progress, run_progress=run_progress, data=data,
                            jobs=args.jobs)
    finally:
        _close(inner)
        _close(outer)
    print(format_leaderboard(board))
    print(f"wrote {args.out / LEADERBOARD}, {args.out / TABLE} and {args.out / FIGURE}")
    for system, why in board["failed"].items():
        print(f"error: {system} failed ({why}); the other systems' results are kept; run the same command "
              f"again to retry it", file=sys.stderr)
    return 1 if board["failed"] else 0


def format_leaderboard(board: dict) -> str:
    """One row per system: test Recall/NDCG@10 and @20 as mean +- std over seeds, seconds, ms per user."""
    rows = {}
    for name, row in board["systems"].items():
        cells = {f"test {m}": f"{row['test'][m]['mean']:.4f} +- {row['test'][m]['std']:.4f}"
                 for m in ("recall@10", "ndcg@10", "recall@20", "ndcg@20")}
        rows[name] = {**cells, "train s": round(row["train_seconds"]["mean"], 1),
                      "ms/user": round(row["inference_ms"]["mean"], 3)}
    return pd.DataFrame.from_dict(rows, orient="index").to_string() if rows else "(no system finished)"


def _read_config(path: Path) -> dict:
    try:
        config = read_json(path)
    except (OSError, ValueError) as e:
        raise RunError(f"--config {path}: cannot be read as JSON ({e})") from None
    if not isinstance(config, dict):
        raise RunError(f"--config {path}: expected a JSON object")
    return config


def _bars(bars: dict[str, tqdm], unit: str = "step", totals: dict[str, int] | None = None):
    """report(stage) -> a progress callback that feeds one tqdm bar per stage (with its total when known)."""
    def report(stage: str):
        def progress(step: int, info: dict[str, float]) -> None:
            if stage not in bars:
                bars[stage] = tqdm(desc=stage, unit=unit, leave=False, total=(totals or {}).get(stage))
            bar = bars[stage]
            bar.set_postfix({k: round(v, 4) for k, v in info.items() if k != "seconds"}, refresh=False)
            bar.update()
        return progress
    return report


def _progress(bars: dict[str, tqdm], config=None):
    totals = {} if config is None else {"generator": config.training.epochs}
    if config is not None and (reports := _tokenizer_reports(config)):
        totals["tokenizer"] = reports
    report = _bars(bars, totals=totals)
    return lambda stage, step, info: report(stage)(step, info)


def _tokenizer_reports(config) -> int | None:
    """How many progress reports the tokenizer's fit makes, as its options state it (None: not known ahead)."""
    return getattr(config.tokenizer.options, "progress_reports", None)


def _close(bars: dict[str, tqdm]) -> None:
    for bar in bars.values():
        bar.close()


def recommend(args: argparse.Namespace) -> int:
    import torch

    run = _quiet(load_run, args.run)
    if not 0 <= args.user < run.data.num_users:
        raise RunError(f"user {args.user} is not in {run.config.dataset} (0..{run.data.num_users - 1})")
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
        print(pd.DataFrame({"item": items, "name": names, "rec_id": ["-".join(map(str, r)) for r in rec_ids],
                            "log_prob": scores}, index=range(1, len(items) + 1)).to_string())
    return 0


def _quiet(fn, *args):
    """Run `fn` with dataset warnings silenced (recommend prints results, not data-quality notes)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args)


def format_table(report: dict, labels: dict[str, str] | None = None) -> str:
    """One row per model: valid/test Recall and NDCG at 10 and 20, and training seconds. `labels` renames rows
    (metrics.json keeps a run's generative model under "mmgrec" whichever system it is)."""
    rows = {}
    for key, m in report["models"].items():
        name = (labels or {}).get(key, key)
        row = {f"{split} {metric}@{k}": m[split][f"{metric}@{k}"]
               for split in ("valid", "test") for k in (10, 20) for metric in ("recall", "ndcg")}
        rows[name] = {**row, "train s": m["train_seconds"]}
    return pd.DataFrame.from_dict(rows, orient="index").round(4).to_string()


if __name__ == "__main__":
    sys.exit(main())
