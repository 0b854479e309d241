"""Per-user splits of interactions into train / valid / test labels.

Both splits are vectorised: interactions are ordered within each user (randomly, or by time) and labelled by
their position, so a million users cost one sort.
"""

from __future__ import annotations

import numpy as np

from ..arrays import group_ranks
from .dataset import TEST, TRAIN, VALID


def random_split(users: np.ndarray, seed: int = 0, ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
                 ) -> np.ndarray:
    """Per-user random split, int8 labels [n].

    A user's n interactions are shuffled; the one at position k gets the split in which (k + 0.5) / n falls on the
    cumulative `ratios`. This is the closest proportional allocation (10 -> 8/1/1), and position 0 always lands in
    train, so every user keeps at least one training interaction.
    """
    users = np.asarray(users, np.int64)
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(users)), users))
    rank, size = group_ranks(users, order)
    q = (rank + 0.5) / size
    cut_train, cut_valid = ratios[0], ratios[0] + ratios[1]
    return np.where(q < cut_train, TRAIN, np.where(q < cut_valid, VALID, TEST)).astype(np.int8)


def leave_last_out(users: np.ndarray, timestamps: np.ndarray) -> np.ndarray:
    """Per-user temporal split, int8 labels [n]: the last interaction is test, the one before it valid.

    Users with two interactions give their last to test and keep one for training; users with one keep it for
    training. Ties in time keep file order.
    """
    users = np.asarray(users, np.int64)
    order = np.lexsort((np.arange(len(users)), np.asarray(timestamps), users))
    rank, size = group_ranks(users, order)
    from_end = size - 1 - rank
    labels = np.full(len(users), TRAIN, np.int8)
    labels[(from_end == 0) & (size >= 2)] = TEST
    labels[(from_end == 1) & (size >= 3)] = VALID
    return labels
