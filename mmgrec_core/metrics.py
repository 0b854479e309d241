"""Ranking metrics as pure functions on hit matrices, so each is a line of algebra with a hand-checked test.

`hits` is bool [U, K]: hits[u, r] says whether the item ranked r-th (0-based) for user u is relevant.
`n_relevant` is int [U]: how many relevant items user u has in the evaluated split (>= 1).
Both functions return one value per user; the evaluator averages them.
"""

from __future__ import annotations

import numpy as np


def recall_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """Recall@K = relevant items in the top K / all relevant items of the user."""
    return hits[:, :k].sum(axis=1) / np.asarray(n_relevant, np.float64)


def ndcg_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    """NDCG@K with binary gains: DCG = sum_r hit_r / log2(r + 2); IDCG puts min(K, n_relevant) hits on top."""
    discount = 1.0 / np.log2(np.arange(k) + 2.0)                     # [K]
    dcg = (hits[:, :k] * discount[: hits[:, :k].shape[1]]).sum(axis=1)
    ideal = np.cumsum(discount)[np.minimum(np.asarray(n_relevant), k) - 1]
    return dcg / ideal


def hit_matrix(users: np.ndarray, recommended: np.ndarray, relevant_keys: np.ndarray, num_items: int
               ) -> np.ndarray:
    """bool [U, K]: is recommended[u, r] among user u's relevant items?

    `relevant_keys` are the sorted codes user * num_items + item of all relevant pairs; a membership test by
    binary search keeps memory at O(U K) even for a catalog of millions.
    """
    keys = users[:, None] * num_items + recommended                   # [U, K]
    pos = np.searchsorted(relevant_keys, keys)
    pos = np.minimum(pos, len(relevant_keys) - 1)
    return (relevant_keys[pos] == keys) & (recommended >= 0)
