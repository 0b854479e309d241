"""Late fusion (MGR-LF / LF++): one RQ-VAE per modality; the Rec-ID concatenates their codes, optionally with a
separator token between modalities (LF++'s special tokens tell the generator where one modality's ID ends)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..data.dataset import InteractionData
from ..training import Progress
from .base import Tokenizer
from .rqvae import RQVAEConfig, modality_codes


@dataclass(frozen=True)
class LateFusionConfig(RQVAEConfig):
    separator: bool = False       # a reserved token (= codebook_size) between modalities' codes

    @property
    def progress_reports(self) -> None:
        """One RQ-VAE per modality: the count depends on the data, so the bar has no total."""
        return None


class LateFusionTokenizer(Tokenizer):
    """Per-modality codes [I, M] side by side: [I, M x modalities (+ separators)]."""

    name = "late_fusion"

    def __init__(self, config: LateFusionConfig = LateFusionConfig(), seed: int = 0):
        self.config, self.seed = config, seed

    @property
    def vocab_size(self) -> int:
        return self.config.codebook_size + int(self.config.separator)

    def fit_codes(self, data: InteractionData, progress: Progress | None = None) -> np.ndarray:
        if not data.features:
            raise ValueError(f"{data.name} has no item features; late fusion needs at least one modality")
        blocks = []
        for k, name in enumerate(data.features):
            if blocks and self.config.separator:      # reserved token = codebook_size, never a codeword
                blocks.append(np.full((data.num_items, 1), self.config.codebook_size))
            blocks.append(modality_codes(data, name, self.config, self.seed + k, progress))
        return np.concatenate(blocks, 1)


def segments(levels: int, modalities: int, separator: bool) -> list[range]:
    """The Rec-ID levels that hold each modality's codes, in order: [L codes, (separator), L codes, ..., p]."""
    return list(_segments(levels, modalities, separator))


def _segments(levels: int, modalities: int, separator: bool) -> Iterator[range]:
    start = 0
    for _ in range(modalities):
        yield range(start, start + levels)
        start += levels + int(separator)
