"""Vectorised helpers on id arrays, shared by the splits, the demo world, the Rec-ID table and k-means codes."""

from __future__ import annotations

import numpy as np


def group_ranks(groups: np.ndarray, order: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each entry's 0-based rank within its group, and its group's size (int64 [n] each, input positions).

    Entries are ranked in the sequence `order` visits them; `order` must visit each group's entries one after
    another (e.g. a sort with the group as primary key). Default: a stable sort by group, so ranks follow input
    order within each group.
    """
    groups = np.asarray(groups)
    order = np.argsort(groups, kind="stable") if order is None else np.asarray(order)
    g = groups[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]]) if len(g) else np.empty(0, np.int64)
    sizes = np.diff(np.r_[starts, len(g)])
    rank, size = np.empty(len(g), np.int64), np.empty(len(g), np.int64)
    rank[order] = np.arange(len(g)) - np.repeat(starts, sizes)
    size[order] = np.repeat(sizes, sizes)
    return rank, size
