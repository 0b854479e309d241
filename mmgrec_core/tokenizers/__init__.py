"""Tokenizers: one contract, `fit(data, progress=None) -> RecIDTable`."""

from __future__ import annotations

import numpy as np
import torch

from ..quantize import code_perplexity, code_usage
from ..recid import RecIDTable
from .graph_rqvae import GraphRQVAEConfig, GraphRQVAETokenizer
from .hkmeans import HKMeansTokenizer
from .late_fusion import LateFusionTokenizer
from .rqvae import RQVAEConfig, RQVAETokenizer

TOKENIZERS = ("graph_rqvae", "rqvae", "hkmeans", "late_fusion")


def make_tokenizer(name: str, *, levels: int = 3, codebook_size: int = 128, collision: str = "popularity",
                   seed: int = 0, **overrides):
    """A tokenizer by name; `overrides` replace fields of its config (e.g. epochs=5)."""
    common = dict(levels=levels, codebook_size=codebook_size, collision=collision, seed=seed, **overrides)
    if name == "graph_rqvae":
        return GraphRQVAETokenizer(GraphRQVAEConfig(**common))
    if name == "hkmeans":
        return HKMeansTokenizer(GraphRQVAEConfig(**common))
    if name == "rqvae":
        return RQVAETokenizer(RQVAEConfig(**common))
    if name == "late_fusion":
        separator = common.pop("separator", False)
        return LateFusionTokenizer(RQVAEConfig(**common), separator=separator)
    raise ValueError(f"unknown tokenizer {name!r}; choose from {', '.join(TOKENIZERS)}")


def table_stats(table: RecIDTable) -> dict:
    """Health of a Rec-ID table: collision rate, per-level usage and perplexity, uniqueness."""
    codes = torch.from_numpy(table.tokens[:, :-1])
    return {"collision_rate": table.collision_rate,
            "usage": code_usage(codes, table.codebook_size),
            "perplexity": code_perplexity(codes, table.codebook_size),
            "unique": bool(len(np.unique(table.tokens, axis=0)) == table.num_items)}
