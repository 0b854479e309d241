"""One command from a dataset to a run directory, as four stages: tokenize -> generator -> baselines -> evaluate.

Each stage leaves its files in the run directory (`rundir.RunDir`) as soon as it ends, and a resumed run skips
what is already there: the tokenizer's outputs, the generator's checkpoint (continued where it stopped), each
finished baseline. The CLI's `tokenize` and `baselines` commands are the same stages run on their own.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch

from .baselines import DENSE, refit_baseline, train_baseline
from .config import RunConfig, RunError, resolve
from .data.dataset import InteractionData
from .data.loaders import load_dataset
from .data.sampling import UserItems
from .distributed import SINGLE, World
from .evaluate import KS, evaluate, evaluate_splits
from .generator.model import RecIDGenerator
from .generator.recommender import MMGRec
from .generator.rerank import DenseRerank
from .recid import RecIDTable
from .rundir import (
    BASELINE_RECS,
    CHECKPOINT,
    CONFIG,
    GENERATOR,
    METRICS,
    REPRESENTATIONS,
    TOKENIZER,
    TOKENIZER_STATS,
    RunDir,
)
from .runs import build_generator, make_run_tokenizer
from .runtime import default_device, seed_everything
from .tokenizers import HasRepresentations, Persistable, Tokenizer, table_stats
from .tokenizers.late_fusion import segments
from .tokenizers.rqvae import standardised_features
from .train import choose_network_weight, fit_generator

# (stage, step, info): stage is "tokenizer", "generator" or a baseline's name; the CLI feeds tqdm, the app a bar
RunProgress = Callable[[str, int, dict[str, float]], None]


def train_run(out: str | Path, config: RunConfig | dict | None = None, *, resume: bool = False,
              progress: RunProgress | None = None, data: InteractionData | None = None,
              world: World = SINGLE) -> dict:
    """Train everything `config` asks for into `out`; return metrics.json's content.

    `config` is a `RunConfig` or a partial dict (see `config.resolve`). With `resume`, the configuration is read
    from `out/config.json` and finished stages are skipped. Nothing is written before the configuration and the
    dataset have been read without error. Under torchrun (`world`), rank 0 alone writes the run directory and
    fits the tokenizer while the others wait; all ranks train the generator; the others then return {} and rank 0
    trains the baselines and evaluates.
    """
    run = RunDir(out)
    if resume:
        if not run.has(CONFIG):
            raise RunError(f"{run.path}: no config.json to resume from")
        config = run.config()
    else:
        config = config if isinstance(config, RunConfig) else resolve(config)
        if run.has(CONFIG):
            raise RunError(f"{run.path} already holds a run; choose another --out or continue it with --resume")
    if config.training.batch_size < world.size:
        raise RunError(f"training.batch_size={config.training.batch_size}: must be at least the number of "
                       f"processes ({world.size})")
    data = data if data is not None else load_dataset(config.dataset)
    world.barrier()                                          # every rank has checked before rank 0 writes
    if world.main and resume:
        run.drop_partial_writes()
    elif world.main:
        run.write_config(config)
    report = (lambda stage: (lambda step, info: progress(stage, step, info))) if progress else (lambda stage: None)
    if world.main:
        table, reps = run_tokenizer(run, config, data, report("tokenizer"))
    world.barrier()
    if not world.main:
        table, reps = run_tokenizer(run, config, data)                       # rank 0's, read back
    model, rows = run_generator(run, config, data, table, reps, report("generator"), world)
    if not world.main:
        return {}
    fitted: dict = {}
    run_baselines(run, config, data, report, fitted)
    return evaluate_run(run, config, data, model, table, rows, fitted)


# ---- stages --------------------------------------------------------------------------------------------------

def run_tokenizer(run: RunDir, config: RunConfig, data: InteractionData, progress=None
                  ) -> tuple[RecIDTable, dict[str, torch.Tensor]]:
    """The tokenizer's outputs, read back when the run has them, else fitted (`tokenize`)."""
    if run.tokenized:
        return run.table(popularity=data.popularity), run.tensors(REPRESENTATIONS)
    return tokenize(run, config, data, progress)


def tokenize(run: RunDir, config: RunConfig, data: InteractionData, progress=None
             ) -> tuple[RecIDTable, dict[str, torch.Tensor]]:
    """Fit the tokenizer; write rec_ids.parquet, representations, tokenizer_stats.json (and its weights)."""
    tokenizer = make_run_tokenizer(config)
    rows: list[dict] = []

    def record(step: int, info: dict[str, float]) -> None:
        rows.append({"stage": "tokenizer", "epoch": step, **info})
        if progress:
            progress(step, info)

    start = time.perf_counter()
    table = tokenizer.fit(data, record, collision=config.tokenizer.collision, seed=config.seed)
    seconds = time.perf_counter() - start
    reps = {"items": generator_inputs(tokenizer, data).float().cpu()}
    if isinstance(tokenizer, Persistable):
        run.write_tensors(TOKENIZER, tokenizer.state())
    run.write_tensors(REPRESENTATIONS, reps)
    run.write_table(table)
    tok = config.tokenizer
    run.write_json(TOKENIZER_STATS, {
        "tokenizer": tok.name, "dataset": config.dataset, "levels": table.levels,
        "codebook": table.codebook_size, "collision": tok.collision, **table_stats(table),
        "seconds": round(seconds, 2), "history": rows})
    return table, reps


def generator_inputs(tokenizer: Tokenizer, data: InteractionData) -> torch.Tensor:
    """Item vectors [I, F] for the generator: the tokenizer's own representations when it has them, else the
    standardised features."""
    if isinstance(tokenizer, HasRepresentations):
        return tokenizer.representations()
    return torch.from_numpy(standardised_features(data))


def run_generator(run: RunDir, config: RunConfig, data: InteractionData, table: RecIDTable,
                  reps: dict[str, torch.Tensor], progress=None, world: World = SINGLE
                  ) -> tuple[RecIDGenerator, list[dict]]:
    """Train the generator with per-epoch checkpoints (or read its finished weights back); rank 0 writes."""
    seed_everything(config.seed)           # initial weights: the same whether or not the tokenizer ran first
    model = build_generator(config, reps, table).to(default_device())
    if run.has(GENERATOR):
        model.load_state_dict(run.tensors(GENERATOR, next(model.parameters()).device))
        history = run.history()
        return model.eval(), history[history["stage"].isin(["align", "generator"])].to_dict("records")
    rows = fit_generator(model, data, table, config.training, config.decoding, config.seed,
                         checkpoint=run / CHECKPOINT, progress=progress, world=world,
                         segments=rec_id_segments(config, data))
    if not world.main:
        return model, rows
    stats = run.json(TOKENIZER_STATS, {})
    run.write_history(stats.get("history", []) + rows)
    run.write_tensors(GENERATOR, model.state_dict())            # written last: its presence means "done"
    (run / CHECKPOINT).unlink(missing_ok=True)
    return model, rows


def rec_id_segments(config: RunConfig, data: InteractionData) -> list[range] | None:
    """The modality segments of a late-fusion Rec-ID (what the LF++ alignment pairs up), else None."""
    if config.tokenizer.name != "late_fusion":
        return None
    options = config.tokenizer.options
    return segments(options.levels, len(data.features), options.separator)


def run_baselines(run: RunDir, config: RunConfig, data: InteractionData, report=lambda stage: None,
                  fitted: dict | None = None) -> dict:
    """Train and evaluate each configured baseline not yet in metrics.json; keep each one's top-20 lists (and,
    in `fitted`, the models trained now)."""
    metrics = _metrics(run, config, data)
    for name in config.baselines.models:
        if name in metrics["models"]:
            continue
        seed = {} if name in ("popularity", "ease") else {"seed": config.seed}
        try:
            model, metrics["models"][name] = train_baseline(name, data, progress=report(name),
                                                            tune=config.baselines.tune, **seed)
        except ValueError as e:             # e.g. EASE on a catalog too large for a dense item-item matrix
            metrics.setdefault("skipped", {})[name] = str(e)
        else:
            if fitted is not None:
                fitted[name] = model
            recs = run.baseline_recs()
            recs[name] = top_lists(model, data.num_users).to(torch.int32)
            run.write_tensors(BASELINE_RECS, recs)
        run.write_json(METRICS, metrics)
    return metrics


def evaluate_run(run: RunDir, config: RunConfig, data: InteractionData, model: RecIDGenerator,
                 table: RecIDTable, generator_rows: list[dict], fitted: dict | None = None) -> dict:
    """MMGRec's validation and test metrics beside the baselines' in metrics.json, and mmgrec+dense's; with the
    co-occurrence evidence, first its weight against the network (`train.choose_network_weight`).

    Both rows are written together, so a run with `mmgrec` in metrics.json is finished.
    """
    metrics = _metrics(run, config, data)
    seen = UserItems(data, device=next(model.parameters()).device)
    recommender = MMGRec(model, table, seen, beam=config.decoding.beam)
    balance = {}
    if model.config.cooccurrence:     # beta on validation, then the weights again with it (same run, resumable)
        balance = choose_network_weight(recommender, data)
        run.write_tensors(GENERATOR, model.state_dict())
    tokenizer_seconds = run.json(TOKENIZER_STATS, {}).get("seconds", 0.0)
    generator_seconds = sum(r.get("seconds", 0.0) for r in generator_rows) + balance.pop("seconds", 0.0)
    valid = balance.pop("valid", None)           # beta's trials have searched the whole validation split already
    entry = (evaluate_splits(recommender, data) if valid is None
             else {"valid": valid, "test": evaluate(recommender, data, "test")})
    entry["train_seconds"] = round(tokenizer_seconds + generator_seconds, 2)
    entry.update(balance)
    dense = evaluate_dense(config, data, recommender, metrics["models"], fitted or {})
    metrics["models"]["mmgrec"] = entry
    if dense is not None:
        dense["train_seconds"] = round(entry["train_seconds"] + metrics["models"][dense["dense"]]["train_seconds"], 2)
        metrics["models"]["mmgrec+dense"] = dense
    run.write_json(METRICS, metrics)
    return metrics


def evaluate_dense(config: RunConfig, data: InteractionData, recommender: MMGRec, baselines: dict,
                   fitted: dict) -> dict | None:
    """mmgrec+dense (`generator/rerank.py`): the beam's candidates re-ranked with the baseline that has the
    best validation NDCG@10 (refitted at its kept setting when a resumed run no longer holds it); None when
    `decoding.rerank` is 0 or no dense baseline was trained."""
    names = [n for n in baselines if n in DENSE and "setting" in baselines[n]]
    if config.decoding.rerank == 0 or not names:
        return None
    name = max(names, key=lambda n: baselines[n]["valid"]["ndcg@10"])
    seed = {} if name == "ease" else {"seed": config.seed}
    dense = fitted[name] if name in fitted else refit_baseline(name, data, baselines[name], **seed)
    rerank = DenseRerank(recommender, dense, width=max(config.decoding.rerank, config.decoding.beam))
    return {"dense": name, **rerank.tune(data)}


def _metrics(run: RunDir, config: RunConfig, data: InteractionData) -> dict:
    """metrics.json so far: models already evaluated on this dataset are kept, anything else starts afresh."""
    metrics = {"dataset": config.dataset, "counts": data.counts(), "k": list(KS), "models": {}}
    old = run.metrics()
    if old.get("dataset") == config.dataset and old.get("counts") == metrics["counts"]:
        metrics["models"] = old.get("models", {})
        if "skipped" in old:
            metrics["skipped"] = old["skipped"]
    return metrics


def top_lists(model, num_users: int, k: int = 20, batch_size: int = 1024) -> torch.Tensor:
    """int64 [U, k]: a model's recommendations for every user."""
    users = torch.arange(num_users)
    return torch.cat([model.recommend(users[s:s + batch_size], k).cpu() for s in range(0, num_users, batch_size)])
