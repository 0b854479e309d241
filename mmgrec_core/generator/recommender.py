"""MMGRec as a `Recommender`: a trained generator, the Rec-ID trie and the users' training items."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..data.sampling import UserItems
from ..recid import RecIDTable
from .beam import BeamResult, DecodingConfig, beam_search
from .cooccurrence import CoOccurrence
from .history import histories
from .model import RecIDGenerator


class MMGRec:
    """`recommend(users, k)` by constrained beam search; `search` also returns scores and every level's beams."""

    def __init__(self, model: RecIDGenerator, table: RecIDTable, seen: UserItems, beam: int = DecodingConfig.beam,
                 batch_size: int = 128):
        device = next(model.parameters()).device
        self.model, self.table, self.seen = model.eval(), table, seen
        self.trie = table.trie.to(device)
        self.beam, self.batch_size, self.device = beam, batch_size, device
        self.cooccurrence = CoOccurrence(seen) if model.config.cooccurrence else None

    def fit(self, data) -> MMGRec:       # the Recommender protocol; training lives in mmgrec_core.train
        return self

    def search(self, users: Tensor, k: int, return_steps: bool = False) -> BeamResult:
        """Beam search for one batch of users [B] (beam width max(self.beam, k))."""
        users = users.to(self.device)
        history = histories(self.seen, users, self.model.config.max_history)
        mass = self.cooccurrence.node_mass(history, users, self.trie) if self.cooccurrence else None
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            return beam_search(self.model, history, self.trie, k, max(self.beam, k), self.seen, users, return_steps,
                               mass)

    def recommend(self, users: Tensor, k: int) -> Tensor:
        """int64 [B, k] item ids, best first; never a training item, never a duplicate; -1 pads short lists.

        Users are searched in batches of similar history length (`length_batches`) and returned in the order
        given: a batch pads every history to its longest, and the mixture scores every position (on demo a random
        batch of 128 pads to 3.4x its mean length). Without the mixture, only the batch size splits them: more,
        smaller batches cost TIGER's search on demo 10% more than the padding they save."""
        if len(users) == 0:
            return torch.empty(0, k, dtype=torch.long)
        lengths = self.seen.lengths(users).clamp_max(self.model.config.max_history)    # what a batch pads to
        order = lengths.argsort(stable=True)
        spread = 2.0 if self.model.config.mixture else math.inf    # without it a position costs the encoder alone
        parts = [self.search(users[order[part].to(users.device)], k).items
                 for part in length_batches(lengths[order], self.batch_size, spread)]
        found = torch.cat(parts)
        return torch.empty_like(found).index_copy_(0, order.to(found.device), found)


def length_batches(lengths: Tensor, size: int, spread: float = 2.0) -> list[slice]:
    """Consecutive batches of ascending history lengths [n]: at most `size` users each, and none whose longest
    history is over `spread` times its shortest (or than `spread` with empty ones), so that padding costs a batch
    at most `spread` times its work. 100k items, 256 random users (lengths 2-75, mean 16): 0.61 -> 0.33 ms per
    user (`benchmarks/inference_vs_catalog.py`); a spread of 1.5 or 3 gave 0.34-0.36."""
    values, ceiling = lengths.tolist(), (lengths.clamp_min(1) * spread).tolist()
    bounds, start = [], 0
    for end in range(1, len(values) + 1):
        if end == len(values) or end - start == size or values[end] > ceiling[start]:
            bounds.append(slice(start, end))
            start = end
    return bounds
