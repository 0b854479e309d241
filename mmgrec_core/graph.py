"""The user-item graph, built from *training* interactions only (valid/test edges would leak the answers)."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch_geometric.utils import to_torch_csr_tensor

from .data.dataset import InteractionData


def bipartite_edge_index(data: InteractionData) -> torch.Tensor:
    """int64 [2, 2E]: both directions of every training edge; users are nodes 0..U-1, items U..U+I-1."""
    u, i = data.pairs("train")
    i = i + data.num_users
    return torch.from_numpy(np.stack([np.r_[u, i], np.r_[i, u]]))


def bipartite_adj_t(data: InteractionData) -> torch.Tensor:
    """The same graph as a sparse CSR [N, N] with row = target node: PyG convolutions then aggregate with one
    sparse matrix product instead of gathering a message per edge (about 4x faster on CPU)."""
    n = data.num_users + data.num_items
    with warnings.catch_warnings():               # "sparse CSR support is in beta": it is what PyG's spmm takes
        warnings.simplefilter("ignore", UserWarning)
        return to_torch_csr_tensor(bipartite_edge_index(data).flip(0), size=(n, n))
