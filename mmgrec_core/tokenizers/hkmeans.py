"""Hierarchical k-means on the Graph RQ-VAE's item representations h_i (the paper's "HK-Means" Rec-IDs).

Level 1 clusters all items into L groups; each later level splits every group on its own. A group of at most L
items needs no clustering: its members get the distinct codes 0..size-1 (in item-id order), as in DSI's
hierarchical IDs, and deeper codes are 0. The only Python loop runs over groups larger than L, never over items.
"""

from __future__ import annotations

import numpy as np
import torch

from ..arrays import group_ranks
from ..data.dataset import InteractionData
from ..quantize import kmeans, sq_dist
from ..training import Progress
from .base import HasRepresentations, Tokenizer
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
        codes[small, m] = group_ranks(group[small])[0]
        for g in np.flatnonzero(sizes > k):
            members = np.flatnonzero(group == g)
            xm = x[torch.from_numpy(members).to(x.device)]
            centroids = kmeans(xm, k, iters, gen)
            codes[members, m] = sq_dist(xm, centroids).argmin(1).cpu().numpy()
        _, group = np.unique(codes[:, : m + 1], axis=0, return_inverse=True)
        group = group.ravel()
    return codes


class HKMeansTokenizer(Tokenizer, HasRepresentations):
    """Graph RQ-VAE representation, hierarchical k-means codes."""

    name = "hkmeans"

    def __init__(self, config: GraphRQVAEConfig = GraphRQVAEConfig(), seed: int = 0):
        self.config, self.seed = config, seed

    @property
    def vocab_size(self) -> int:
        return self.config.codebook_size

    def fit_codes(self, data: InteractionData, progress: Progress | None = None) -> np.ndarray:
        graph = GraphRQVAETokenizer(self.config, self.seed)
        graph.represent(data)                                # the representation only: no RQ-VAE to train
        self.h_items = graph.h_items
        return hierarchical_kmeans(self.h_items, self.config.levels, self.config.codebook_size, self.seed)

    def representations(self) -> torch.Tensor:
        return self.h_items.cpu()
