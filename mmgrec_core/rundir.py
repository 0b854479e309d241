"""A run directory: the one place that knows a run's file names, how each is read and written, and what
"finished" means.

    config.json                  the resolved `RunConfig` (written first: `train --resume` reads it)
    rec_ids.parquet              item, name, c1..cM, p
    tokenizer_stats.json         collision rate, usage, perplexity, seconds, per-epoch history
    tokenizer.safetensors        tokenizer weights (persistable tokenizers: what `explain` needs)
    representations.safetensors  user and item vectors the generator reads
    checkpoint.pt                the generator's training state while it trains (deleted when done)
    generator.safetensors        the generator's best weights
    history.csv                  per-epoch losses and validation metrics (stage = tokenizer | generator)
    metrics.json                 the baselines' format, with model "mmgrec" beside the baselines
    baseline_recs.safetensors    each baseline's top-20 items per user [U, 20] (-1 pads), for comparisons
    projections.parquet          cached UMAP maps of the codewords (the app's Codewords page)
    sweep.parquet                the default collision sweep on the run's dataset (optional)

Every file is written atomically; a run is finished when its generator weights exist and `metrics.json` holds
an `mmgrec` entry.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from safetensors.torch import load, save

from .config import RunConfig, RunError, from_json
from .files import atomic_write_bytes, read_json, write_json
from .recid import RecIDTable

CONFIG = "config.json"
REC_IDS = "rec_ids.parquet"
TOKENIZER_STATS = "tokenizer_stats.json"
TOKENIZER = "tokenizer.safetensors"
REPRESENTATIONS = "representations.safetensors"
CHECKPOINT = "checkpoint.pt"
GENERATOR = "generator.safetensors"
HISTORY = "history.csv"
METRICS = "metrics.json"
BASELINE_RECS = "baseline_recs.safetensors"
PROJECTIONS = "projections.parquet"
SWEEP = "sweep.parquet"

TOKENIZER_OUTPUTS = (REC_IDS, REPRESENTATIONS, TOKENIZER_STATS)     # tokenizer.safetensors when persistable
FINISHED = (CONFIG, REC_IDS, REPRESENTATIONS, GENERATOR, METRICS)


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    atomic_write_bytes(path, save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}))


def load_tensors(path: Path, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """safetensors holds only tensors: nothing in a run file can execute code."""
    return {k: v.to(device) for k, v in load(Path(path).read_bytes()).items()}


class RunDir:
    """The files of one run under `path`; `RunDir(path) / NAME` is the path of a file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def has(self, *names: str) -> bool:
        return all((self.path / n).exists() for n in names)

    def drop_partial_writes(self) -> list[str]:
        """Remove the temporary siblings (`.NAME.*.tmp`, `files.atomic_write_bytes`) a killed write left behind;
        the file they were to replace is intact, so nothing is lost. Returns the names removed."""
        stale = sorted(self.path.glob(".*.tmp")) if self.path.is_dir() else []
        for tmp in stale:
            tmp.unlink(missing_ok=True)
        return [t.name for t in stale]

    # ---- state -------------------------------------------------------------------------------------------

    def missing(self) -> list[str]:
        """The files a finished run has and this one lacks."""
        return [n for n in FINISHED if not self.has(n)]

    @property
    def tokenized(self) -> bool:
        return self.has(*TOKENIZER_OUTPUTS)

    @property
    def finished(self) -> bool:
        """Generator weights written and `metrics.json` holding MMGRec's metrics (a readable one)."""
        if self.missing():
            return False
        try:
            models = self.metrics().get("models", {})
        except (OSError, ValueError, AttributeError):
            return False
        return isinstance(models, dict) and "mmgrec" in models

    # ---- files -------------------------------------------------------------------------------------------

    def config(self) -> RunConfig:
        try:
            raw = read_json(self / CONFIG)
        except (OSError, ValueError) as e:
            raise RunError(f"{self / CONFIG}: cannot be read ({e})") from None
        return from_json(raw, str(self / CONFIG))

    def write_config(self, config: RunConfig) -> None:
        write_json(self / CONFIG, config.to_dict())

    def table(self, popularity=None) -> RecIDTable:
        return RecIDTable.read_parquet(self / REC_IDS, popularity=popularity)

    def write_table(self, table: RecIDTable) -> None:
        table.to_parquet(self / REC_IDS)

    def tensors(self, name: str, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        return load_tensors(self / name, device)

    def write_tensors(self, name: str, tensors: dict[str, torch.Tensor]) -> None:
        save_tensors(self / name, tensors)

    def json(self, name: str, default: Any = None) -> Any:
        """A JSON file's content; `default` when it does not exist."""
        if default is not None and not self.has(name):
            return default
        return read_json(self / name)

    def write_json(self, name: str, obj: Any) -> None:
        write_json(self / name, obj)

    def metrics(self) -> dict:
        return self.json(METRICS, {})

    def history(self) -> pd.DataFrame:
        return pd.read_csv(self / HISTORY) if self.has(HISTORY) else pd.DataFrame()

    def write_history(self, rows: list[dict]) -> None:
        buffer = io.StringIO()
        pd.DataFrame(rows).to_csv(buffer, index=False)
        atomic_write_bytes(self / HISTORY, buffer.getvalue().encode())

    def baseline_recs(self) -> dict[str, torch.Tensor]:
        return self.tensors(BASELINE_RECS) if self.has(BASELINE_RECS) else {}
