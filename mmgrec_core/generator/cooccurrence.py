"""Co-occurrence evidence for the generator: what other users had beside the input's items, summed under the trie.

    s_u(i) = sum_{j in input} (G[j, i] - own_u[j, i]) / sqrt(deg_j + 1)        (0 for the input's own items)
    p_u(i) = s_u(i) / sum_i' s_u(i')  +  kappa (deg_i + 1) / sum_i' (deg_i' + 1)

G is the training graph's item co-occurrence (how many users had both items; zero diagonal) and deg an item's
training degree. own_u removes the user's *own* pairs: a held-out training item is then scored only by what other
users did, exactly as a test item is. Without it the generator would learn to read its training targets back
from the counts (an earlier try that initialised the transition tables from co-occurrences did exactly that).
kappa smooths towards popularity, so items without co-occurrence keep an order.

p_u sums over the items under a trie node to the node's mass, so p_u(n | parent) = mass(n) / mass(parent): the
distribution factorises exactly along the Rec-ID trie, and the generator adds a_d log mass(child) to each level's
logits (`RecIDGenerator.evidence`). With a_d = 1 and a flat network this is item-based collaborative filtering
decoded token by token; the network learns how much of it to trust, level by level.

The masses come from one cumulative sum per user over the items in trie order, so a level costs a gather.
Cost: a sparse [I, I] matrix with sum over users of (items per user)^2 entries, and a dense [B, I] row per batch
of users; `generator.cooccurrence=false` where the catalog or the histories are too large for that.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from ..data.sampling import UserItems
from ..recid import PrefixTrie

MAX_PAIRS = 200_000_000          # co-occurring pairs (entries of G) before we refuse to build it
# S^T is kept dense when at least this share of its entries is nonzero and it has at most DENSE_MAX entries: a
# dense product is then faster on the CPU (MovieLens, 62% nonzero: 25 against 89 ms per 128 users; demo, 13%:
# 7.7 against 4.5 ms, so it stays sparse)
DENSE_FROM, DENSE_MAX = 0.3, 25_000_000


@dataclass(frozen=True)
class NodeMass:
    """Per trie depth d = 0 .. T: the co-occurrence scores summed under each node, users [B, n_d], and the
    popularity distribution's mass under each node, popularity [n_d] (sums to 1 at every depth)."""

    users: list[Tensor]
    popularity: list[Tensor]

    def log_p(self, depth: int, rows: Tensor, nodes: Tensor, smooth: Tensor) -> Tensor:
        """log p_u(node) [R, C] of nodes [R, C] (-1 = none) at `depth` for the users `rows` [R] (batch rows)."""
        n = nodes.clamp_min(0)
        total = self.users[0][rows, 0].clamp_min(1e-12)[:, None]               # [R, 1]: sum of s_u
        return torch.log(self.users[depth][rows[:, None], n] / total + smooth * self.popularity[depth][n])


class CoOccurrence:
    """The training co-occurrences as S^T [I, I] (S[j, i] = G[j, i] / sqrt(deg_j + 1)) on a device: sparse, or
    dense where most item pairs co-occur (`DENSE_FROM`)."""

    def __init__(self, seen: UserItems):
        device = seen.indptr.device
        indptr, indices = seen.indptr.cpu().numpy(), seen.indices.cpu().numpy()
        per_user = np.diff(indptr).astype(np.float64)
        if (per_user ** 2).sum() > MAX_PAIRS:
            raise ValueError(f"generator.cooccurrence: {int((per_user ** 2).sum()):,} co-occurring pairs exceed "
                             f"{MAX_PAIRS:,}; set generator.cooccurrence=false for a catalog this size")
        x = sp.csr_matrix((np.ones(len(indices), np.float32), indices, indptr),
                          shape=(len(indptr) - 1, seen.num_items))
        g = (x.T @ x).tocsr()
        g.setdiag(0)
        g.eliminate_zeros()
        deg = np.asarray(x.sum(0)).ravel()
        weight = (deg + 1) ** -0.5
        st = (g @ sp.diags(weight)).tocsr().astype(np.float32)                    # S^T[i, j] = G[i, j] w_j
        if st.nnz >= DENSE_FROM * st.shape[0] * st.shape[1] and st.shape[0] * st.shape[1] <= DENSE_MAX:
            self.matrix = torch.from_numpy(st.toarray()).to(device)
        else:
            st = st.tocoo()
            index = torch.from_numpy(np.vstack([st.row, st.col]).astype(np.int64))
            # CSR: a product with it is 16x faster on the CPU than with the COO form, which converts on every call
            self.matrix = torch.sparse_coo_tensor(index, torch.from_numpy(st.data), st.shape,
                                                  check_invariants=True).coalesce().to_sparse_csr().to(device)
        self.weight = torch.from_numpy(weight).float().to(device)                # [I] w_j
        self.popularity = torch.from_numpy(deg + 1.0).float().to(device)          # [I]
        self.seen = seen

    def scores(self, history: Tensor, users: Tensor) -> Tensor:
        """s_u [B, I] for input histories [B, N] (item id + 1, 0 = padding) of `users` [B]."""
        x = torch.zeros(len(history), self.seen.num_items + 1, device=history.device)
        x = x.scatter_(1, history, 1.0)[:, 1:]                                 # [B, I] the input, multi-hot
        s = (self.matrix @ x.t()).t()                                          # x S
        rows, items = self.seen.pairs_of(users)                                # the users' training items
        s[rows, items] -= (x * self.weight).sum(1)[rows]                       # their own pairs with the input
        return (s * (1 - x)).clamp_min(0)

    def node_mass(self, history: Tensor, users: Tensor, trie: PrefixTrie) -> NodeMass:
        """`scores` and the popularity distribution summed under every trie node (one cumsum in trie order)."""
        pop = self.popularity / self.popularity.sum()
        both = torch.cat([self.scores(history, users), pop[None]])[:, trie.items]  # [B + 1, I] in trie order
        cs = torch.nn.functional.pad(both.double().cumsum(1), (1, 0))            # float64: no cancellation
        sums = [(cs[:, b[1:]] - cs[:, b[:-1]]).float() for b in trie.bounds]
        return NodeMass(users=[m[:-1] for m in sums], popularity=[m[-1] for m in sums])
