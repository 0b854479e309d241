"""Hierarchical k-means on the Graph RQ-VAE item representations (the paper's "HK-Means" Rec-IDs).

Level 1 clusters all items into L groups; each later level splits every group on its own. A group of at most L
items needs no clustering: its members get the distinct codes 0..size-1 (in item-id order), as in DSI's
hierarchical IDs, and deeper codes are 0. The only Python loop runs over groups larger than L, never over items.
"""

from __future__ import annotations

import numpy as np
import torch

from ..data.dataset import InteractionData
from ..quantize import kmeans, sq_dist
from ..recid import RecIDTable
from ..training import Progress
from .graph_rqvae import GraphRQVAEConfig, GraphRQVAETokenizer


def hierarchical_kmeans(x: torch.Tensor, levels: int, k: int, seed: int = 0, iters: int = 20) -> np.ndarray:
    """Codes int64 [N, levels] of the rows of x [N, D]."""
    n = len(x)
    gen = torch.Generator(x.device).manual_seed(seed)
    codes = np.zeros((n, levels), np.int64)
    group = np.zeros(n, np.int64)                       # id of each item's group at the current level
    for m in range(levels):
        sizes = np.bincount(group)
        small = sizes[group] <= k
        codes[small, m] = _rank_in_group(group[small])
        for g in np.flatnonzero(sizes > k):
            members = np.flatnonzero(group == g)
            xm = x[torch.from_numpy(members).to(x.device)]
            centroids = kmeans(xm, k, iters, gen)
            codes[members, m] = sq_dist(xm, centroids).argmin(1).cpu().numpy()
        _, group = np.unique(codes[:, : m + 1], axis=0, return_inverse=True)
        group = group.ravel()
    return codes


def _rank_in_group(group: np.ndarray) -> np.ndarray:
    """0-based rank of each entry within its group, in input order."""
    order = np.argsort(group, kind="stable")
    g = group[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    rank = np.empty(len(group), np.int64)
    rank[order] = np.arange(len(g)) - np.repeat(starts, np.diff(np.r_[starts, len(g)]))
    return rank


class HKMeansTokenizer:
    """Graph RQ-VAE representation, hierarchical k-means codes."""

    name = "hkmeans"

    def __init__(self, config: GraphRQVAEConfig = GraphRQVAEConfig()):
        self.config = config

    def fit(self, data: InteractionData, progress: Progress | None = None) -> RecIDTable:
        self.graph = GraphRQVAETokenizer(self.config)
        self.graph.fit(data, progress)
        cfg = self.config
        codes = hierarchical_kmeans(self.graph.h_items, cfg.levels, cfg.codebook_size, cfg.seed)
        return RecIDTable(codes, data.popularity, data.item_table["name"].tolist(), collision=cfg.collision,
                          seed=cfg.seed, codebook_size=cfg.codebook_size)
