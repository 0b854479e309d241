"""Sweeps of Rec-ID health against codebook size and depth, cached on disk for the app and notebooks.

Two economies keep the default sweep to minutes on a CPU. Each tokenizer's *representation* is computed once
(Graph RQ-VAE's h_i, or the standardised raw features): the GCN does not depend on the codebook, so retraining
it per point would cost minutes and measure nothing new. And each (tokenizer, codebook size) is quantized once,
at the deepest level count; shallower points read the first levels of its codes. Residual quantization and
hierarchical k-means choose level by level, so an m-level Rec-ID prefix is exactly what m levels of that
quantizer assign (only the encoder saw the deeper levels during training).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .data.dataset import InteractionData
from .data.loaders import cache_dir
from .files import atomic_write_bytes
from .quantize import code_perplexity, code_usage
from .recid import RecIDTable
from .runtime import default_device
from .tokenizers.graph_rqvae import GraphRQVAEConfig, GraphRQVAETokenizer
from .tokenizers.hkmeans import hierarchical_kmeans
from .tokenizers.rqvae import RQVAEConfig, standardised_features, train_rqvae

SWEEP_TOKENIZERS = ("graph_rqvae", "rqvae", "hkmeans", "late_fusion")
CODEBOOKS = (16, 32, 64, 128, 256, 512)
LEVELS = (2, 3, 4)


@dataclasses.dataclass(frozen=True)
class SweepConfig:
    tokenizers: tuple[str, ...] = SWEEP_TOKENIZERS
    codebooks: tuple[int, ...] = CODEBOOKS
    levels: tuple[int, ...] = LEVELS
    steps: int = 400              # RQ-VAE steps per point (then k-means re-seed and `polish_steps`)
    polish_steps: int = 100
    seed: int = 0


def _quantize(x: torch.Tensor, levels: int, codebook: int, cfg: SweepConfig) -> np.ndarray:
    """Fit an RQ-VAE on the fixed rows of x and return its codes [N, levels]."""
    config = RQVAEConfig(levels=levels, codebook_size=codebook, steps=cfg.steps, polish_steps=cfg.polish_steps)
    return train_rqvae(x, config, cfg.seed).encode(x).cpu().numpy()


def _row(tokenizer: str, levels: int, codebook: int, codes: np.ndarray, popularity: np.ndarray,
         vocab: int) -> dict:
    table = RecIDTable(codes, popularity, [""] * len(codes), codebook_size=vocab)
    c = torch.from_numpy(codes)
    return {"tokenizer": tokenizer, "levels": levels, "codebook": codebook,
            "collision_rate": table.collision_rate,
            "unique_prefix_share": len(np.unique(codes, axis=0)) / len(codes),
            "max_p": table.max_p,
            "usage": float(np.mean(code_usage(c, vocab))),
            "perplexity": float(np.mean(code_perplexity(c, vocab)))}


def sweep_cache_path(data: InteractionData, config: SweepConfig = SweepConfig()) -> Path:
    """Where `sweep` keeps its result for this dataset and configuration."""
    key = hashlib.sha256(json.dumps([data.name, data.counts(), dataclasses.asdict(config)]).encode())
    return cache_dir() / "sweeps" / f"{key.hexdigest()[:16]}.parquet"


def cached_sweep(data: InteractionData, config: SweepConfig = SweepConfig()) -> pd.DataFrame | None:
    """The cached sweep, or None when it has not been computed (the app shows a button instead of waiting)."""
    path = sweep_cache_path(data, config)
    return pd.read_parquet(path) if path.exists() else None


def sweep(data: InteractionData, config: SweepConfig = SweepConfig(),
          progress: Callable[[float, str], None] | None = None, use_cache: bool = True) -> pd.DataFrame:
    """One row per (tokenizer, levels, codebook): collision rate, unique-prefix share, mean usage/perplexity.

    Results are cached under `cache_dir()/sweeps/` by a hash of the dataset name, counts and config.
    """
    path = sweep_cache_path(data, config)
    if use_cache and path.exists():
        return pd.read_parquet(path)
    device = default_device()
    points = [(t, k) for t in config.tokenizers for k in config.codebooks]
    if progress:
        progress(0.0, f"0/{len(points)} points · the item representations (once per sweep)")
    inputs = _representations(data, config, device)
    deepest = max(config.levels)
    rows = []
    start = time.perf_counter()
    for n, (tok, k) in enumerate(points):
        if progress:
            spent = time.perf_counter() - start
            left = f", about {spent / n * (len(points) - n):.0f} s left" if n else ""
            progress(n / len(points), f"{n}/{len(points)} points · {tok}: {k} codewords · {spent:.0f} s{left}")
        if tok == "hkmeans":
            parts = [hierarchical_kmeans(inputs["graph"], deepest, k, config.seed)]
        elif tok == "late_fusion":                # one quantizer per modality, Rec-ID = their concatenation
            parts = [_quantize(x, deepest, k, config) for x in inputs["modalities"]]
        else:
            parts = [_quantize(inputs["graph" if tok == "graph_rqvae" else "raw"], deepest, k, config)]
        for m in config.levels:
            codes = np.concatenate([p[:, :m] for p in parts], 1)
            rows.append(_row(tok, m, k, codes, data.popularity, k))
    if progress:
        progress(1.0, "done")
    frame = pd.DataFrame(rows)
    atomic_write_bytes(path, frame.to_parquet())
    return frame


def _representations(data: InteractionData, cfg: SweepConfig, device: torch.device) -> dict:
    out: dict = {}
    if {"graph_rqvae", "hkmeans"} & set(cfg.tokenizers):
        graph = GraphRQVAETokenizer(GraphRQVAEConfig(), seed=cfg.seed)
        graph.represent(data)                                # the representation: no training needed
        out["graph"] = graph.h_items
    out["raw"] = torch.from_numpy(standardised_features(data)).to(device)
    out["modalities"] = [torch.from_numpy(standardised_features(data, [m])).to(device) for m in data.features]
    return out

