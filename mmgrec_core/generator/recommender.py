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
        budget = PADDING_BUDGET if self.model.config.mixture else math.inf   # else a position costs the encoder alone
        parts = [self.search(users[order[part].to(users.device)], k).items
                 for part in length_batches(lengths[order], self.batch_size, budget)]
        found = torch.cat(parts)
        return torch.empty_like(found).index_copy_(0, order.to(found.device), found)


# Padded history positions a batch may hold before another batch is cheaper. A batch costs about 2.6 ms of small
# operations whatever its size, and a padded position about 4 us of encoder, component and mixture work (100k
# items, 2 CPU threads), so about 650; 1,200 was the best of 300 / 600 / 1,200 on 256 random users at 100k items
# (0.218 ms per user against 0.231 when a batch's longest history could be at most twice its shortest; level
# within the noise when the two were timed in alternating processes), and 1,024 users of the sparse preset (a
# median of 2 items) take 0.21 ms against 0.21-0.22 in 8 batches instead of 9.
PADDING_BUDGET = 1200


def length_batches(lengths: Tensor, size: int, budget: float = PADDING_BUDGET) -> list[slice]:
    """Consecutive batches of ascending history lengths [n]: at most `size` users each, and none whose padding
    (the positions that fill its shorter histories up to its longest) is over `budget`. Short histories pad
    cheaply, so users with a few items each share one batch, and a long one starts its own."""
    values = lengths.tolist()
    bounds, start, padding = [], 0, 0
    for end in range(1, len(values) + 1):
        if end < len(values):
            padding += (end - start) * (values[end] - values[end - 1])   # if user `end` joins, as the longest
        if end == len(values) or end - start == size or padding > budget:
            bounds.append(slice(start, end))
            start, padding = end, 0
    return bounds
