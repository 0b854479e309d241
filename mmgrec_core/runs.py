"""A finished run, opened: what the app, notebooks and CLI recommend and explain with (`load_run`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from safetensors import SafetensorError

from .config import RunConfig, RunError
from .data.dataset import InteractionData
from .data.loaders import load_dataset
from .data.sampling import UserItems
from .generator.model import RecIDGenerator
from .generator.recommender import MMGRec
from .recid import RecIDTable
from .rundir import GENERATOR, REPRESENTATIONS, TOKENIZER, TOKENIZER_STATS, RunDir, load_tensors, save_tensors
from .runtime import default_device
from .tokenizers import Persistable, Tokenizer, make_tokenizer

__all__ = ["Run", "RunError", "build_generator", "load_run", "load_tensors", "make_run_tokenizer", "save_tensors"]


@dataclass
class Run:
    """Everything a finished run needs to recommend and explain."""

    path: Path
    config: RunConfig
    data: InteractionData
    table: RecIDTable
    model: RecIDGenerator
    recommender: MMGRec
    tokenizer: Tokenizer | None    # the fitted tokenizer when it is persistable (for explain), else None
    metrics: dict
    history: pd.DataFrame
    tokenizer_stats: dict
    baseline_recs: dict[str, torch.Tensor]   # model name -> int [U, 20] top items


def make_run_tokenizer(config: RunConfig) -> Tokenizer:
    """The untrained tokenizer a run configuration names."""
    return make_tokenizer(config.tokenizer.name, config.tokenizer.options, seed=config.seed)


def build_generator(config: RunConfig, representations: dict[str, torch.Tensor], table: RecIDTable
                    ) -> RecIDGenerator:
    """An untrained generator shaped for this run's Rec-IDs and item representations."""
    vocab = tuple(int(v) for v in table.trie.vocab)
    return RecIDGenerator(config.generator, representations["items"], vocab, torch.tensor(table.tokens))


def load_run(path: str | Path, data: InteractionData | None = None) -> Run:
    """Open a finished run directory; `data` skips reloading the dataset when the caller already has it."""
    run = RunDir(path)
    if not run.path.is_dir():
        raise RunError(f"{run.path}: no such run directory")
    missing = run.missing()
    if missing:
        raise RunError(f"{run.path}: {missing[0]} is missing (unfinished run? continue it with "
                       f"train --resume {run.path})")
    config = run.config()
    try:
        if not run.finished:
            raise RunError(f"{run.path}: training did not finish (no mmgrec in metrics.json); "
                           f"continue it with train --resume {run.path}")
        data = data if data is not None else load_dataset(config.dataset)
        table = run.table(popularity=data.popularity)
        if table.num_items != data.num_items:
            raise RunError(f"{run.path}: rec_ids.parquet has {table.num_items} items, dataset {data.num_items}")
        device = default_device()
        model = build_generator(config, run.tensors(REPRESENTATIONS), table)
        with _weights_fit(run.path, GENERATOR):
            model.load_state_dict(run.tensors(GENERATOR))
        model.to(device).eval()
        tokenizer = None
        if run.has(TOKENIZER):
            tokenizer = make_run_tokenizer(config)
            if isinstance(tokenizer, Persistable):
                with _weights_fit(run.path, TOKENIZER):
                    tokenizer.restore(data, run.tensors(TOKENIZER, device))
            else:
                tokenizer = None
        seen = UserItems(data, device=device)
        metrics, recs = _checked_metrics(run.path, run.metrics()), run.baseline_recs()
        for name, top in recs.items():
            if top.ndim != 2 or len(top) != data.num_users or top.dtype not in (torch.int32, torch.int64):
                raise RunError(f"{run.path}: baseline_recs {name} is {top.dtype} {list(top.shape)}, "
                               f"expected integers [{data.num_users}, K]")
        stats = run.json(TOKENIZER_STATS, {})
        if not isinstance(stats, dict):
            raise RunError(f"{run.path}: tokenizer_stats.json holds {type(stats).__name__}, expected an object")
        return Run(path=run.path, config=config, data=data, table=table, model=model,
                   recommender=MMGRec(model, table, seen, beam=config.decoding.beam), tokenizer=tokenizer,
                   metrics=metrics, history=run.history(), tokenizer_stats=stats, baseline_recs=recs)
    except RunError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as e:
        raise RunError(f"{run.path}: cannot be read ({type(e).__name__}: {e})") from None


@contextmanager
def _weights_fit(path: Path, name: str) -> Iterator[None]:
    """Weights that no longer fit the code (a run from an older mmgrec) get one message that says what to do."""
    try:
        yield
    except RuntimeError:
        raise RunError(f"{path}: {name} does not match this version's model (trained with an older mmgrec?); "
                       f"train the run again") from None


def _checked_metrics(path: Path, metrics: dict) -> dict:
    """metrics.json as the pages read it: {"models": {name: {"valid"|"test": {metric: number}, ...}}}."""
    models = metrics.get("models") if isinstance(metrics, dict) else None
    if not isinstance(models, dict):
        raise RunError(f"{path}: metrics.json has no 'models' object")
    for name, entry in models.items():
        for split in ("valid", "test"):
            scores = entry.get(split, {}) if isinstance(entry, dict) else None
            if not isinstance(scores, dict) or not all(isinstance(v, int | float) for v in scores.values()):
                raise RunError(f"{path}: metrics.json: models.{name}.{split} must map metric names to numbers")
    return metrics
