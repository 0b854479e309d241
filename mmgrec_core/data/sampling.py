"""Fast look-ups of users' training items and BPR triples, shared by every model that trains on pairs."""

from __future__ import annotations

import numpy as np
import torch

from .dataset import InteractionData


class UserItems:
    """A user -> items CSR index held as tensors on a device, for masking seen items in batches.

    `indptr` int64 [U + 1], `indices` int64 [nnz] (sorted within each user).
    """

    def __init__(self, data: InteractionData, split: str = "train", device: torch.device | str = "cpu"):
        m = data.matrix(split)
        self.num_items = data.num_items
        self.indptr = torch.from_numpy(m.indptr.astype(np.int64)).to(device)
        self.indices = torch.from_numpy(m.indices.astype(np.int64)).to(device)

    def lengths(self, users: torch.Tensor) -> torch.Tensor:
        """How many items each user in `users` [B] has, int64 [B] on this index's device."""
        users = users.to(self.indptr.device)
        return self.indptr[users + 1] - self.indptr[users]

    def pairs_of(self, users: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(row in batch, item) for every item of every user in `users` [B]; no Python loop over users."""
        users = users.to(self.indptr.device)
        start, lengths = self.indptr[users], self.lengths(users)
        rows = torch.repeat_interleave(torch.arange(len(users), device=users.device), lengths)
        first = torch.repeat_interleave(start - torch.cumsum(lengths, 0) + lengths, lengths)
        cols = self.indices[first + torch.arange(len(rows), device=users.device)]
        return rows, cols

    def mask_(self, scores: torch.Tensor, users: torch.Tensor, value: float = float("-inf")) -> torch.Tensor:
        """Set scores [B, I] of the users' items to `value`, in place."""
        rows, cols = self.pairs_of(users)
        scores[rows.to(scores.device), cols.to(scores.device)] = value
        return scores


def top_k_unseen(scores: torch.Tensor, users: torch.Tensor, seen: UserItems, k: int) -> torch.Tensor:
    """int64 [B, k] best items per row after masking seen ones; -1 where a user has fewer than k unseen items."""
    scores = seen.mask_(scores.float(), users)
    values, items = torch.topk(scores, min(k, scores.shape[1]), dim=1)
    items[torch.isneginf(values)] = -1
    if items.shape[1] < k:
        items = torch.nn.functional.pad(items, (0, k - items.shape[1]), value=-1)
    return items


def bpr_triples(data: InteractionData, rng: np.random.Generator, max_tries: int = 10
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One epoch of (user, positive, negative) triples in random order, int64 [n] each.

    Negatives are uniform over items and resampled (vectorised, up to `max_tries` rounds) when they hit one of the
    user's training items; on very dense users a few may remain positives, which only weakens that triple.
    """
    users, pos = data.pairs("train")
    order = rng.permutation(len(users))
    users, pos = users[order], pos[order]
    known = np.sort(users * data.num_items + pos)
    neg = rng.integers(0, data.num_items, len(users))
    for _ in range(max_tries):
        key = users * data.num_items + neg
        clash = known[np.minimum(np.searchsorted(known, key), len(known) - 1)] == key
        if not clash.any():
            break
        neg[clash] = rng.integers(0, data.num_items, int(clash.sum()))
    return users, pos, neg
