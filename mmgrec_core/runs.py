"""Run configuration and run directories: what `train` writes and what the app, notebooks and CLI open.

A run directory holds

    config.json               the resolved configuration (written first: `train --resume` reads it)
    rec_ids.parquet           item, name, c1..cM, p
    tokenizer_stats.json      collision rate, usage, perplexity, seconds
    tokenizer.safetensors     tokenizer weights (graph_rqvae, rqvae: what `explain` needs)
    representations.safetensors  user and item vectors the generator reads
    generator.safetensors     the generator's best weights
    history.csv               per-epoch losses and validation metrics (stage = tokenizer | generator)
    metrics.json              the baselines' format, with model "mmgrec" beside the baselines
    baseline_recs.safetensors each baseline's top-20 items per user [U, 20] (-1 pads), for comparisons

Every file is written atomically; `metrics.json` with an `mmgrec` entry marks a finished run.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from safetensors.torch import load, save

from .baselines import MODELS
from .data.dataset import InteractionData
from .data.loaders import load_dataset
from .data.sampling import UserItems
from .files import atomic_write_bytes, read_json
from .generator.model import GeneratorConfig, RecIDGenerator
from .generator.recommender import MMGRec
from .recid import RecIDTable
from .runtime import default_device
from .tokenizers import TOKENIZERS, make_tokenizer

DEFAULT_CONFIG = {
    "dataset": "demo",
    "seed": 0,
    "tokenizer": {"name": "graph_rqvae", "levels": 3, "codebook_size": 128, "collision": "popularity"},
    "generator": {f.name: f.default for f in dataclasses.fields(GeneratorConfig) if f.name != "seed"},
    "baselines": list(MODELS),
}


class RunError(ValueError):
    """A run directory or configuration that cannot be used; the message says which file or key and why."""


def resolve_config(config: dict | None = None, sets: list[str] = ()) -> dict:
    """Defaults, overlaid with `config` (a partial dict) and then with `key=value` settings.

    Keys are dotted (`generator.pe=none`, `tokenizer.name=rqvae`); a bare key is accepted when it names exactly
    one option (`pe=none`, `collision=random`). Values are JSON when they parse (`epochs=5`, `baselines=[]`),
    else strings. Unknown keys are refused.
    """
    out = copy.deepcopy(DEFAULT_CONFIG)
    for key, value in (config or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key].update(value)
        else:
            out[key] = value
    for item in sets:
        key, sep, raw = item.partition("=")
        if not sep:
            raise RunError(f"--set expects key=value, got {item!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        path = _resolve_key(out, key.strip())
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    check_config(out)
    return out


def _resolve_key(config: dict, key: str) -> list[str]:
    if "." in key:
        return key.split(".")
    if key in config:
        return [key]
    owners = [section for section in ("tokenizer", "generator") if key in config[section]]
    if len(owners) == 1:
        return [owners[0], key]
    if key in _tokenizer_options():
        return ["tokenizer", key]
    raise RunError(f"unknown option {key!r}; use section.key, e.g. generator.pe or tokenizer.epochs")


def _tokenizer_options() -> set[str]:
    from .tokenizers.graph_rqvae import GraphRQVAEConfig
    from .tokenizers.rqvae import RQVAEConfig
    return {f.name for c in (GraphRQVAEConfig, RQVAEConfig) for f in dataclasses.fields(c)} | {"separator"}


def check_config(config: dict) -> None:
    """Refuse unknown sections, tokenizers, options and baselines with a message naming them."""
    unknown = sorted(set(config) - set(DEFAULT_CONFIG))
    if unknown:
        raise RunError(f"unknown config key(s) {unknown}; known: {sorted(DEFAULT_CONFIG)}")
    if config["tokenizer"].get("name") not in TOKENIZERS:
        raise RunError(f"tokenizer.name must be one of {TOKENIZERS}, got {config['tokenizer'].get('name')!r}")
    try:
        tokenizer_from_config(config)
        generator_config(config)
    except (TypeError, ValueError) as e:
        raise RunError(f"bad config: {e}") from None
    bad = sorted(set(config["baselines"]) - set(MODELS))
    if bad:
        raise RunError(f"unknown baseline(s) {bad}; choose from {list(MODELS)}")


def tokenizer_from_config(config: dict):
    options = dict(config["tokenizer"])
    name = options.pop("name")
    return make_tokenizer(name, seed=config["seed"], **options)


def generator_config(config: dict) -> GeneratorConfig:
    return GeneratorConfig(**config["generator"], seed=config["seed"])


# ---- files ---------------------------------------------------------------------------------------------------

def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    atomic_write_bytes(path, save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}))


def load_tensors(path: Path, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """safetensors holds only tensors: nothing in a run file can execute code."""
    return {k: v.to(device) for k, v in load(Path(path).read_bytes()).items()}


def write_history(path: Path, rows: list[dict]) -> None:
    buffer = io.StringIO()
    pd.DataFrame(rows).to_csv(buffer, index=False)
    atomic_write_bytes(path, buffer.getvalue().encode())


@dataclass
class Run:
    """Everything a finished run needs to recommend and explain."""

    path: Path
    config: dict
    data: InteractionData
    table: RecIDTable
    model: RecIDGenerator
    recommender: MMGRec
    tokenizer: object | None       # fitted graph_rqvae / rqvae tokenizer (for explain), else None
    metrics: dict
    history: pd.DataFrame
    tokenizer_stats: dict
    baseline_recs: dict[str, torch.Tensor]   # model name -> int [U, 20] top items


def load_run(path: str | Path, data: InteractionData | None = None) -> Run:
    """Open a finished run directory; `data` skips reloading the dataset when the caller already has it."""
    path = Path(path)
    if not path.is_dir():
        raise RunError(f"{path}: no such run directory")
    for name in ("config.json", "rec_ids.parquet", "representations.safetensors", "generator.safetensors",
                 "metrics.json"):
        if not (path / name).exists():
            raise RunError(f"{path}: {name} is missing (unfinished run? continue it with train --resume {path})")
    try:
        config = resolve_config(read_json(path / "config.json"))
        metrics = read_json(path / "metrics.json")
        if "mmgrec" not in metrics.get("models", {}):
            raise RunError(f"{path}: training did not finish (no mmgrec in metrics.json); "
                           f"continue it with train --resume {path}")
        data = data if data is not None else load_dataset(config["dataset"])
        table = RecIDTable.read_parquet(path / "rec_ids.parquet", popularity=data.popularity)
        if table.num_items != data.num_items:
            raise RunError(f"{path}: rec_ids.parquet has {table.num_items} items, dataset {data.num_items}")
        device = default_device()
        model = build_generator(config, load_tensors(path / "representations.safetensors"), table)
        with _weights_fit(path, "generator.safetensors"):
            model.load_state_dict(load_tensors(path / "generator.safetensors"))
        model.to(device).eval()
        tokenizer = None
        if (path / "tokenizer.safetensors").exists():
            state = load_tensors(path / "tokenizer.safetensors", device)
            with _weights_fit(path, "tokenizer.safetensors"):
                tokenizer = tokenizer_from_config(config).restore(data, state)
        history = pd.read_csv(path / "history.csv") if (path / "history.csv").exists() else pd.DataFrame()
        stats = read_json(path / "tokenizer_stats.json") if (path / "tokenizer_stats.json").exists() else {}
        recs = path / "baseline_recs.safetensors"
        baseline_recs = load_tensors(recs) if recs.exists() else {}
        seen = UserItems(data, device=device)
        return Run(path=path, config=config, data=data, table=table, model=model,
                   recommender=MMGRec(model, table, seen, beam=model.config.beam), tokenizer=tokenizer,
                   metrics=metrics, history=history, tokenizer_stats=stats,
                   baseline_recs=baseline_recs)
    except RunError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError) as e:
        raise RunError(f"{path}: cannot be read ({type(e).__name__}: {e})") from None


@contextmanager
def _weights_fit(path: Path, name: str) -> Iterator[None]:
    """Weights that no longer fit the code (a run from an older mmgrec) get one message that says what to do."""
    try:
        yield
    except RuntimeError:
        raise RunError(f"{path}: {name} does not match this version's model (trained with an older mmgrec?); "
                       f"train the run again") from None


def build_generator(config: dict, representations: dict[str, torch.Tensor], table: RecIDTable) -> RecIDGenerator:
    """An untrained generator shaped for this run's Rec-IDs and representations."""
    vocab = tuple(int(v) for v in table.trie.vocab)
    return RecIDGenerator(generator_config(config), representations["items"], representations["users"], vocab)
