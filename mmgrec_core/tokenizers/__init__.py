"""Tokenizers: one contract (`base.Tokenizer`), a registry by name, and the health figures of a Rec-ID table."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..quantize import code_perplexity, code_usage
from ..recid import RecIDTable
from .base import Explainable, HasRepresentations, Persistable, Tokenizer
from .bbqrec import BBQRecConfig, BBQRecTokenizer
from .graph_rqvae import GraphRQVAEConfig, GraphRQVAETokenizer
from .hkmeans import HKMeansTokenizer
from .late_fusion import LateFusionConfig, LateFusionTokenizer
from .rqvae import RQVAEConfig, RQVAETokenizer

# name -> (tokenizer class, its config class); the run configuration's tokenizer section follows this schema
REGISTRY: dict[str, tuple[type[Tokenizer], type]] = {
    "graph_rqvae": (GraphRQVAETokenizer, GraphRQVAEConfig),
    "rqvae": (RQVAETokenizer, RQVAEConfig),
    "hkmeans": (HKMeansTokenizer, GraphRQVAEConfig),
    "late_fusion": (LateFusionTokenizer, LateFusionConfig),
    "bbqrec": (BBQRecTokenizer, BBQRecConfig),
}
TOKENIZERS = tuple(REGISTRY)

__all__ = ["REGISTRY", "TOKENIZERS", "Explainable", "HasRepresentations", "Persistable", "Tokenizer",
           "config_class", "make_tokenizer", "table_stats"]


def config_class(name: str) -> type:
    """The config dataclass of tokenizer `name`."""
    if name not in REGISTRY:
        raise ValueError(f"tokenizer.name={name!r}: must be one of {', '.join(TOKENIZERS)}")
    return REGISTRY[name][1]


def make_tokenizer(name: str, config=None, *, seed: int = 0, **overrides) -> Tokenizer:
    """A tokenizer by name, from its config (default: the defaults) with `overrides` replacing fields."""
    config = dataclasses.replace(config or config_class(name)(), **overrides)
    return REGISTRY[name][0](config, seed=seed)


def table_stats(table: RecIDTable) -> dict:
    """Health of a Rec-ID table: collision rate, per-level usage and perplexity, uniqueness."""
    codes = torch.from_numpy(table.tokens[:, :-1])
    return {"collision_rate": table.collision_rate,
            "usage": code_usage(codes, table.codebook_size),
            "perplexity": code_perplexity(codes, table.codebook_size),
            "unique": bool(len(np.unique(table.tokens, axis=0)) == table.num_items)}
