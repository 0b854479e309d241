"""Late fusion (MGR-LF / LF++): one RQ-VAE per modality; the Rec-ID concatenates their codes, optionally with a
separator token between modalities (LF++'s special tokens tell the generator where one modality's ID ends)."""

from __future__ import annotations

import dataclasses

import numpy as np

from ..data.dataset import InteractionData
from ..recid import RecIDTable
from ..training import Progress
from .rqvae import RQVAEConfig, RQVAETokenizer


class LateFusionTokenizer:
    """Per-modality codes [I, M] side by side: [I, M x modalities (+ separators)]."""

    name = "late_fusion"

    def __init__(self, config: RQVAEConfig = RQVAEConfig(), separator: bool = False):
        self.config, self.separator = config, separator

    def fit(self, data: InteractionData, progress: Progress | None = None) -> RecIDTable:
        if not data.features:
            raise ValueError(f"{data.name} has no item features; late fusion needs at least one modality")
        self.parts = {}
        blocks = []
        for k, name in enumerate(data.features):
            tok = RQVAETokenizer(dataclasses.replace(self.config, seed=self.config.seed + k), modalities=[name])
            self.parts[name] = tok
            if blocks and self.separator:      # reserved token = codebook_size, never a codeword
                blocks.append(np.full((data.num_items, 1), self.config.codebook_size))
            blocks.append(tok.fit_codes(data, progress))
        codes = np.concatenate(blocks, 1)
        cfg = self.config
        return RecIDTable(codes, data.popularity, data.item_table["name"].tolist(), collision=cfg.collision,
                          seed=cfg.seed, codebook_size=cfg.codebook_size + int(self.separator))
