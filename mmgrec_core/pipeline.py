"""One command from a dataset to a run directory: tokenizer -> generator -> evaluation beside the baselines.

Each stage leaves its files in the run directory as soon as it ends, and a resumed run skips what is already
there: the tokenizer's outputs, the generator's checkpoint (continued where it stopped), each finished baseline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .baselines import train_baseline
from .data.dataset import InteractionData
from .data.loaders import load_dataset
from .data.sampling import UserItems
from .evaluate import KS, evaluate
from .files import read_json, write_json
from .generator.recommender import MMGRec
from .recid import RecIDTable
from .runs import (
    RunError,
    build_generator,
    load_tensors,
    resolve_config,
    save_tensors,
    tokenizer_from_config,
    write_history,
)
from .runtime import default_device, seed_everything
from .tokenizers import table_stats
from .tokenizers.rqvae import standardised_features
from .train import CHECKPOINT, fit_generator

BASELINE_RECS = "baseline_recs.safetensors"    # each baseline's top-20 per user, for the app's comparisons

# (stage, step, info): stage is "tokenizer", "generator" or a baseline's name; the CLI feeds tqdm, the app a bar
RunProgress = Callable[[str, int, dict[str, float]], None]


def train_run(out: str | Path, config: dict | None = None, *, resume: bool = False,
              progress: RunProgress | None = None, data: InteractionData | None = None) -> dict:
    """Train everything `config` (see `runs.resolve_config`) asks for into `out`; return metrics.json's content.

    With `resume`, the configuration is read from `out/config.json` and finished stages are skipped.
    """
    out = Path(out)
    if resume:
        if not (out / "config.json").exists():
            raise RunError(f"{out}: no config.json to resume from")
        config = resolve_config(read_json(out / "config.json"))
    else:
        config = resolve_config(config)
        if (out / "config.json").exists():
            raise RunError(f"{out} already holds a run; choose another --out or continue it with --resume")
        write_json(out / "config.json", config)
    report = (lambda stage: (lambda step, info: progress(stage, step, info))) if progress else (lambda stage: None)
    data = data if data is not None else load_dataset(config["dataset"])
    seed_everything(config["seed"])
    table, reps = _tokenize(out, config, data, report("tokenizer"))
    model = build_generator(config, reps, table).to(default_device())
    generator_rows = _generate(out, model, data, table, report("generator"))
    return _evaluate(out, config, data, model, table, report, generator_rows)


def _tokenize(out: Path, config: dict, data: InteractionData, progress) -> tuple[RecIDTable, dict]:
    """Fit the tokenizer (or read its finished outputs back) and write its files."""
    files = [out / n for n in ("rec_ids.parquet", "representations.safetensors", "tokenizer_stats.json")]
    if all(f.exists() for f in files):
        return RecIDTable.read_parquet(files[0], popularity=data.popularity), load_tensors(files[1])
    tokenizer = tokenizer_from_config(config)
    rows: list[dict] = []

    def record(step: int, info: dict[str, float]) -> None:
        rows.append({"stage": "tokenizer", "epoch": step, **info})
        if progress:
            progress(step, info)

    start = time.perf_counter()
    table = tokenizer.fit(data, progress=record)
    seconds = time.perf_counter() - start
    users, items = representations(tokenizer, data)
    reps = {"users": users.float().cpu(), "items": items.float().cpu()}
    if hasattr(tokenizer, "state"):
        save_tensors(out / "tokenizer.safetensors", tokenizer.state())
    save_tensors(out / "representations.safetensors", reps)
    table.to_parquet(out / "rec_ids.parquet")
    opts = config["tokenizer"]
    write_json(out / "tokenizer_stats.json", {
        "tokenizer": opts["name"], "dataset": config["dataset"], "levels": opts["levels"],
        "codebook": opts["codebook_size"], "collision": opts["collision"], **table_stats(table),
        "seconds": round(seconds, 2), "history": rows})
    return table, reps


def representations(tokenizer, data: InteractionData) -> tuple[torch.Tensor, torch.Tensor]:
    """(users [U, F], items [I, F]) for the generator: the Graph RQ-VAE's h when the tokenizer has one, else the
    standardised features, with each user the mean of their training items."""
    graph = getattr(tokenizer, "graph", tokenizer)                     # hkmeans wraps a Graph RQ-VAE
    if hasattr(graph, "representations"):
        return graph.representations()
    items = torch.from_numpy(standardised_features(data))
    m = data.matrix("train").astype(np.float32)
    counts = np.maximum(np.asarray(m.sum(1)).ravel(), 1)
    users = torch.from_numpy(np.asarray((m @ items.numpy()) / counts[:, None], np.float32))
    return users, items


def _generate(out: Path, model, data: InteractionData, table: RecIDTable, progress) -> list[dict]:
    """Train the generator with per-epoch checkpoints; keep the best weights as generator.safetensors."""
    if (out / "generator.safetensors").exists():
        model.load_state_dict(load_tensors(out / "generator.safetensors", next(model.parameters()).device))
        history = pd.read_csv(out / "history.csv")
        return history[history["stage"] == "generator"].to_dict("records")
    rows = fit_generator(model, data, table, checkpoint_dir=out, progress=progress)
    save_tensors(out / "generator.safetensors", model.state_dict())
    stats = read_json(out / "tokenizer_stats.json")
    write_history(out / "history.csv", stats.get("history", []) + rows)
    (out / CHECKPOINT).unlink()                     # the best weights and the history are saved: done with it
    return rows


def top_lists(model, num_users: int, k: int = 20, batch_size: int = 1024) -> torch.Tensor:
    """int64 [U, k]: a model's recommendations for every user."""
    users = torch.arange(num_users)
    return torch.cat([model.recommend(users[s:s + batch_size], k).cpu() for s in range(0, num_users, batch_size)])


def _evaluate(out: Path, config: dict, data: InteractionData, model, table: RecIDTable, report,
              generator_rows: list[dict]) -> dict:
    """metrics.json in the baselines' format: mmgrec, then each baseline (skipping those already there)."""
    path = out / "metrics.json"
    metrics = {"dataset": config["dataset"], "counts": data.counts(), "k": list(KS), "models": {}}
    if path.exists():
        metrics["models"] = read_json(path).get("models", {})
    seen = UserItems(data, device=next(model.parameters()).device)
    recommender = MMGRec(model, table, seen, beam=model.config.beam)
    tokenizer_seconds = read_json(out / "tokenizer_stats.json").get("seconds", 0.0)
    generator_seconds = sum(r.get("seconds", 0.0) for r in generator_rows)
    for name in config["baselines"]:
        if name in metrics["models"]:
            continue
        seed = {} if name in ("popularity", "ease") else {"seed": config["seed"]}
        try:
            model, metrics["models"][name] = train_baseline(name, data, progress=report(name), **seed)
        except ValueError as e:             # e.g. EASE on a catalog too large for a dense item-item matrix
            metrics.setdefault("skipped", {})[name] = str(e)
        else:
            lists = out / BASELINE_RECS
            recs = load_tensors(lists) if lists.exists() else {}
            recs[name] = top_lists(model, data.num_users).to(torch.int32)
            save_tensors(lists, recs)
        write_json(path, metrics)
    metrics["models"]["mmgrec"] = {split: evaluate(recommender, data, split) for split in ("valid", "test")}
    metrics["models"]["mmgrec"]["train_seconds"] = round(tokenizer_seconds + generator_seconds, 2)
    write_json(path, metrics)
    return metrics
