"""The tokenizer contract: `fit_codes(data) -> codes [I, M]`, and what a tokenizer can do beyond that.

Every tokenizer subclasses `Tokenizer`; its extra abilities are base classes it declares, so callers ask
`isinstance(tok, Explainable)` instead of probing attributes:

- `Persistable`: its fitted weights go into a run (`state`) and come back without training (`restore`);
- `Explainable`: a per-level codebook record for one item (`trace`), the codes with one input removed
  (`ablations`), and the quantizer's space for the codeword maps (`quantizer_space`);
- `HasRepresentations`: item vectors of its own for the generator's inputs (`representations`).

`Tokenizer.fit` turns codes into a `RecIDTable` in the one place where the collision token is chosen, so no
tokenizer config carries a collision setting.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
import torch

from ..data.dataset import InteractionData
from ..recid import RecIDTable
from ..training import Progress


class Tokenizer(ABC):
    """Assigns every item semantic codes; `vocab_size` bounds them (codebook size, plus any reserved tokens)."""

    name: ClassVar[str]

    @abstractmethod
    def fit_codes(self, data: InteractionData, progress: Progress | None = None) -> np.ndarray:
        """Train on `data` and return the semantic codes int64 [I, M]."""

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Codes lie in [0, vocab_size)."""

    def fit(self, data: InteractionData, progress: Progress | None = None, *, collision: str = "popularity",
            seed: int = 0) -> RecIDTable:
        """Codes, then the collision token `p` that makes every Rec-ID unique (see `recid.collision_tokens`)."""
        codes = self.fit_codes(data, progress)
        return RecIDTable(codes, data.popularity, data.item_table["name"].tolist(), collision=collision,
                          seed=seed, codebook_size=self.vocab_size)


class Persistable(ABC):
    @abstractmethod
    def state(self) -> dict[str, torch.Tensor]:
        """The fitted weights (a run keeps them as tokenizer.safetensors)."""

    @abstractmethod
    def restore(self, data: InteractionData, state: dict[str, torch.Tensor]) -> Persistable:
        """Rebuild the fitted tokenizer from `state` on the data it was fitted on, without training."""


class Explainable(ABC):
    @abstractmethod
    def trace(self, item: int) -> dict[str, torch.Tensor]:
        """The quantizer's per-level record for one item (see `ResidualQuantizer.trace`)."""

    @abstractmethod
    def ablations(self, item: int) -> dict[str, np.ndarray]:
        """The item's semantic codes with each input (modality, CF part) replaced by its catalog mean."""

    @abstractmethod
    def quantizer_space(self) -> tuple[np.ndarray, np.ndarray]:
        """(residuals [L, I, D] that each level quantizes, codebooks [L, K, D]) for the codeword maps."""


class HasRepresentations(ABC):
    @abstractmethod
    def representations(self) -> torch.Tensor:
        """Item vectors [I, F]: what the generator embeds history items with."""
