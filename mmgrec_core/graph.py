"""The user-item graph, built from *training* interactions only (valid/test edges would leak the answers)."""

from __future__ import annotations

import numpy as np
import torch

from .data.dataset import InteractionData


def bipartite_edge_index(data: InteractionData) -> torch.Tensor:
    """int64 [2, 2E]: both directions of every training edge; users are nodes 0..U-1, items U..U+I-1."""
    u, i = data.pairs("train")
    i = i + data.num_users
    return torch.from_numpy(np.stack([np.r_[u, i], np.r_[i, u]]))

