"""Baselines on the same split and evaluator as MMGRec: popularity, MF-BPR, LightGCN, EASE, FREEDOM.

Every model follows the `Recommender` contract: `fit(data)` then `recommend(users, k)` -> item ids, best first,
never the user's training items. Defaults were tuned on the validation split of `demo` and `movielens`
(see the README), and match the settings under which MMRec reports LightGCN (D = 64, lr 1e-3, batch 2048).
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch_geometric.nn.conv.gcn_conv import gcn_norm

from .data.dataset import InteractionData
from .data.sampling import UserItems, bpr_triples, top_k_unseen
from .evaluate import evaluate, evaluate_splits
from .graph import bipartite_edge_index
from .runtime import default_device, seed_everything
from .training import EarlyStopping, Progress, bpr_loss

MODELS = ("popularity", "mf", "lightgcn", "ease", "freedom")
DENSE = ("mf", "lightgcn", "ease", "freedom")       # the ones with score(users, items), for mmgrec+dense


class Popularity:
    """Recommend the most-interacted training items the user has not seen: the floor every model must clear."""

    def fit(self, data: InteractionData, progress: Progress | None = None) -> Popularity:
        self.device = default_device()
        self.scores = torch.as_tensor(data.popularity, dtype=torch.float32, device=self.device)
        self.seen = UserItems(data, "train", self.device)
        return self

    @torch.no_grad()
    def recommend(self, users: torch.Tensor, k: int) -> torch.Tensor:
        users = users.to(self.device)
        return top_k_unseen(self.scores.expand(len(users), -1).clone(), users, self.seen, k)


@dataclass(frozen=True)
class EASEConfig:
    lambdas: tuple[float, ...] = (10.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0)  # L2 grid, chosen on valid
    max_items: int = 40_000         # the items x items matrix beyond this does not fit a laptop


class EASE:
    """EASE (Steck, WWW 2019): B = I - P diag(1/diag(P)), P = (X^T X + lambda I)^-1, zero diagonal; score = X B.

    lambda is picked on validation Recall@20 from `config.lambdas`.
    """

    def __init__(self, config: EASEConfig = EASEConfig()):
        self.config = config

    def fit(self, data: InteractionData, progress: Progress | None = None) -> EASE:
        if data.num_items > self.config.max_items:
            raise ValueError(f"EASE needs a dense {data.num_items} x {data.num_items} matrix "
                             f"({data.num_items ** 2 * 8 / 2**30:.0f} GiB); it is limited to "
                             f"{self.config.max_items} items")
        self.device = default_device()
        self.seen = UserItems(data, "train", self.device)
        self.x = x = data.matrix("train")
        gram = torch.as_tensor((x.T @ x).toarray(), dtype=torch.float64, device=self.device)
        best, self.trials = (-1.0, None), []
        for epoch, lam in enumerate(self.config.lambdas):
            self.weights = self._solve(gram, lam)
            score = evaluate(self, data, "valid", ks=(20,))["recall@20"]
            self.trials.append({"lambda": lam, "valid_recall@20": round(score, 4)})
            if progress:
                progress(epoch, {"lambda": lam, "recall@20": score})
            if score > best[0]:
                best = (score, lam, self.weights)
        _, self.lam, self.weights = best
        return self

    @staticmethod
    def _solve(gram: torch.Tensor, lam: float) -> torch.Tensor:
        p = torch.linalg.inv(gram + lam * torch.eye(len(gram), dtype=gram.dtype, device=gram.device))
        b = -p / torch.diagonal(p)[None, :]
        b.fill_diagonal_(0.0)
        return b.float()

    @torch.no_grad()
    def recommend(self, users: torch.Tensor, k: int) -> torch.Tensor:
        users = users.to(self.device)
        rows = torch.from_numpy(self.x[users.cpu().numpy()].toarray()).to(self.device)     # [B, I]
        return top_k_unseen(rows @ self.weights, users, self.seen, k)

    @torch.no_grad()
    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """(x_u B)[i] [B, C] for the candidates items [B, C] only: a sum of B[j, i] over the user's training
        items j, so the cost follows history x candidates, not the catalog (-1 entries score 0)."""
        rows, cols = self.seen.pairs_of(users.to(self.device))
        items = items.to(self.device).clamp_min(0)
        out = torch.zeros(items.shape, device=self.device)
        return out.index_add_(0, rows, self.weights[cols[:, None], items[rows]])


@dataclass(frozen=True)
class BPRConfig:
    """Training of the embedding baselines (per-model defaults in `DEFAULTS`, picked on validation: README)."""

    dim: int = 64                 # embedding size D
    layers: int = 3               # LightGCN propagation layers (MF ignores it)
    lr: float = 1e-3
    reg: float = 1e-4             # L2 on the batch's input embeddings, sum of squares / (2 x batch)
    batch_size: int = 2048
    max_epochs: int = 1000
    eval_every: int = 5           # epochs between validation Recall@20 checks
    patience: int = 10            # evaluations without improvement before stopping
    seed: int = 0


class _BPRModel(nn.Module):
    """User/item embeddings trained with BPR; subclasses decide how final embeddings are computed."""

    def __init__(self, config: BPRConfig = BPRConfig()):
        super().__init__()
        self.config = config

    def _build(self, data: InteractionData) -> None:
        self.num_users, self.num_items = data.num_users, data.num_items
        self.embedding = nn.Embedding(data.num_users + data.num_items, self.config.dim)
        nn.init.normal_(self.embedding.weight, std=0.1)

    def propagate(self) -> torch.Tensor:
        """Final embeddings of all nodes [U + I, D] (users first)."""
        return self.embedding.weight

    def fit(self, data: InteractionData, progress: Progress | None = None) -> _BPRModel:
        cfg = self.config
        seed_everything(cfg.seed)
        self.device = default_device()
        self._build(data)
        self.to(self.device)
        self.seen = UserItems(data, "train", self.device)
        rng = np.random.default_rng(cfg.seed)
        opt = torch.optim.Adam(self.parameters(), lr=cfg.lr, fused=True)   # one kernel per tensor: MF epoch -10%
        stopper = EarlyStopping(cfg.patience)
        for epoch in range(1, cfg.max_epochs + 1):
            loss = self._epoch(data, rng, opt)
            if epoch % cfg.eval_every:
                continue
            self.eval()
            score = evaluate(self, data, "valid", ks=(20,))["recall@20"]
            self.train()
            if progress:
                progress(epoch, {"loss": loss, "recall@20": score})
            if stopper.step(score, epoch, self):
                break
        stopper.restore(self)
        self.best_epoch = stopper.best_epoch
        self.eval()
        self._final = None
        return self

    def _epoch(self, data: InteractionData, rng: np.random.Generator, opt: torch.optim.Optimizer) -> float:
        users, pos, neg = (torch.from_numpy(a).to(self.device) for a in bpr_triples(data, rng))
        total = 0.0
        for s in range(0, len(users), self.config.batch_size):
            u, i, j = (t[s:s + self.config.batch_size] for t in (users, pos, neg))
            loss = self._loss(u, i, j)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(u)
        self._final = None
        return total / len(users)

    def _loss(self, u: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        """BPR + L2 of one batch of users, positive and negative items (0-based item ids), int64 [B] each.

        The batch's rows are gathered in one index (and, for MF, whose final embeddings are the table, once for
        both terms): each gather's backward fills a gradient the size of the whole table."""
        h, ego = self.propagate(), self.embedding.weight
        nodes = torch.cat([u, i + self.num_users, j + self.num_users])                    # [3B]
        final = h[nodes].split(len(u))
        return bpr_loss(*final, final if h is ego else ego[nodes].split(len(u)), self.config.reg)

    @torch.no_grad()
    def recommend(self, users: torch.Tensor, k: int) -> torch.Tensor:
        h = self._final_embeddings()
        users = users.to(self.device)
        scores = h[users] @ h[self.num_users:].T                                    # [B, I]
        return top_k_unseen(scores, users, self.seen, k)

    @torch.no_grad()
    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Inner products [B, C] of each user with its candidates items [B, C] (-1 entries: any value)."""
        h = self._final_embeddings()
        users, items = users.to(self.device), items.to(self.device).clamp_min(0)
        return (h[self.num_users + items] * h[users][:, None]).sum(-1)

    def _final_embeddings(self) -> torch.Tensor:
        """propagate() once per trained state (recomputed while training, when the weights still move)."""
        if self.training or getattr(self, "_final", None) is None:
            self._final = self.propagate()
        return self._final


class MF(_BPRModel):
    """Matrix factorisation with the BPR loss (Rendle et al., UAI 2009): score(u, i) = e_u . e_i."""


class LightGCN(_BPRModel):
    """LightGCN (He et al., SIGIR 2020).

    e^(l+1) = D^-1/2 A D^-1/2 e^(l) on the training user-item graph; final e = mean over l = 0..L.
    The normalised adjacency is built once, not per batch.
    """

    def _build(self, data: InteractionData) -> None:
        super()._build(data)
        n = data.num_users + data.num_items
        edge_index, weight = gcn_norm(bipartite_edge_index(data), num_nodes=n, add_self_loops=False)
        adj = torch.sparse_coo_tensor(edge_index.flip(0), weight, (n, n), check_invariants=True)
        with warnings.catch_warnings():            # "CSR support is in beta"
            warnings.simplefilter("ignore", UserWarning)
            adj = adj.coalesce().to_sparse_csr()   # [N, N], symmetric
        self.register_buffer("adj", adj, persistent=False)

    def propagate(self) -> torch.Tensor:
        h = out = self.embedding.weight
        for _ in range(self.config.layers):
            h = sparse_matmul(self.adj, h)
            out = out + h
        return out / (self.config.layers + 1)


class _SparseMatmul(torch.autograd.Function):
    """adj @ x whose backward multiplies by a given adj^T. torch's own backward transposes the CSR matrix at
    every call: on demo's user-item graph that made three layers' forward + backward 38 ms; this takes 7 ms and
    gives the same bits (the transpose of a symmetric matrix is itself)."""

    @staticmethod
    def forward(ctx, adj: torch.Tensor, adj_t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.adj_t = adj_t
        return adj @ x

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return None, None, ctx.adj_t @ grad


def sparse_matmul(adj: torch.Tensor, x: torch.Tensor, adj_t: torch.Tensor | None = None) -> torch.Tensor:
    """adj @ x for sparse CSR adj [N, M] and dense x [M, D]; `adj_t` = adj^T (CSR [M, N]), default adj itself
    (a symmetric adjacency)."""
    return _SparseMatmul.apply(adj, adj if adj_t is None else adj_t, x)


# ---- FREEDOM: a frozen item-item graph beside a denoised user-item graph -------------------------------------


def _csr(rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """float32 sparse CSR from COO triples (duplicates summed): what PyG's spmm and `torch.sparse.mm` take."""
    with warnings.catch_warnings():                # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        coo = torch.sparse_coo_tensor(torch.stack([rows, cols]), values.float(), size)
        return coo.coalesce().to_sparse_csr()


def _transposed(adj: torch.Tensor) -> torch.Tensor:
    """The CSR transpose of CSR `adj`, built once for the backward passes of `sparse_matmul`."""
    coo = adj.to_sparse_coo().coalesce()
    rows, cols = coo.indices()
    return _csr(cols, rows, coo.values(), (adj.shape[1], adj.shape[0]))


def knn_item_graph(features: dict[str, np.ndarray], k: int = 10, device: torch.device | str = "cpu",
                   block_bytes: int = 2**28) -> torch.Tensor:
    """FREEDOM's item-item graph, float32 sparse CSR [I, I]: the modalities' kNN graphs, averaged.

    Per modality: cosine similarity; each item's k most similar items (itself included, as in the paper's code)
    become edges of weight 1, normalised D^-1/2 S D^-1/2 with D the row degrees, which are all k, so every
    edge weighs 1/k. Similarities are computed for blocks of rows of at most `block_bytes` ([rows, I] floats),
    never as a dense [I, I] matrix; memory is O(I k) beyond one block.
    """
    parts = []
    for x in features.values():
        x = torch.as_tensor(x, dtype=torch.float32, device=device)
        x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)                           # [I, d], unit rows
        n, kk = len(x), min(k, len(x))
        step = max(1, block_bytes // (4 * n))
        cols = torch.cat([torch.topk(x[s:s + step] @ x.T, kk, dim=1).indices          # [rows, k] per block
                          for s in range(0, n, step)]).flatten()                       # [I k]
        rows = torch.arange(n, device=device).repeat_interleave(kk)                    # [I k]
        deg = torch.bincount(rows, minlength=n).float()                                # [I], all k
        parts.append((rows, cols, deg[rows].rsqrt() * deg[cols].rsqrt() / len(features)))
    rows, cols, values = (torch.cat(t) for t in zip(*parts))
    return _csr(rows, cols, values, (n, n))


def bipartite_norm_adj(users: np.ndarray, items: np.ndarray, num_users: int, num_items: int,
                       device: torch.device | str = "cpu") -> torch.Tensor:
    """LightGCN's D^-1/2 A D^-1/2 of the user-item graph of the edges given (users first), CSR [U + I, U + I]."""
    u, i = torch.from_numpy(users).to(device), torch.from_numpy(items).to(device)
    d_u = torch.bincount(u, minlength=num_users).float()
    d_i = torch.bincount(i, minlength=num_items).float()
    w = (d_u[u] * d_i[i]).rsqrt()                                                      # [E]
    n = num_users + num_items
    return _csr(torch.cat([u, i + num_users]), torch.cat([i + num_users, u]), torch.cat([w, w]), (n, n))


def degree_sensitive_probabilities(users: np.ndarray, items: np.ndarray, num_users: int,
                                   num_items: int) -> np.ndarray:
    """float64 [E]: FREEDOM's chance of drawing each edge, proportional to 1 / sqrt(d_u d_i) (full-graph
    degrees), so edges between popular nodes, the likeliest noise, are pruned first."""
    w = 1.0 / np.sqrt(np.bincount(users, minlength=num_users)[users] * np.bincount(items, minlength=num_items)[items])
    return w / w.sum()


def prune_edges(probabilities: np.ndarray, keep: float, rng: np.random.Generator) -> np.ndarray:
    """int64 [int(E keep)] sorted ids of the edges kept: drawn without replacement with `probabilities` [E].

    Vectorised weighted sampling (Efraimidis & Spirakis 2006): the edges with the smallest Exp(1) / p are
    distributed as successive draws without replacement (`torch.multinomial` in the paper's code, which is
    limited to 2^24 edges).
    """
    n = int(len(probabilities) * keep)
    if n >= len(probabilities):
        return np.arange(len(probabilities))
    keys = rng.exponential(size=len(probabilities)) / probabilities
    return np.sort(np.argpartition(keys, n)[:n])


@dataclass(frozen=True)
class FREEDOMConfig(BPRConfig):
    """FREEDOM's settings beside the BPR training ones (paper values in the comments)."""

    layers: int = 2               # user-item propagation layers (paper: 2)
    item_layers: int = 1          # layers over the frozen item-item graph (paper: 1)
    knn_k: int = 10               # neighbours per item in each modality's graph (paper: 10)
    keep: float = 0.8             # share of user-item edges kept each epoch (paper's code keeps 0.1-0.2: below)
    lam: float = 1e-4             # weight of the modality BPR terms (paper's code: reg_weight, 0...1e-3)


class FREEDOM(_BPRModel):
    """FREEDOM (Zhou & Shen, "A Tale of Two Graphs: Freezing and Denoising Graph Structures for Multimodal
    Recommendation", ACM MM 2023), following the paper and its code (github.com/enoche/FREEDOM).

    - Freezing: an item-item graph S built once from the raw features (`knn_item_graph`: top-k cosine
      neighbours per modality, D^-1/2 S D^-1/2) and never updated.
    - Denoising: each epoch keeps `keep` of the training edges, drawn without replacement with probability
      proportional to 1 / sqrt(d_u d_i), and renormalises the pruned graph; inference uses the full graph.
    - Item i: mean over l = 0..L of LightGCN's propagation of the ID embeddings on the (pruned) user-item graph,
      plus S^L' e_i (ID embeddings propagated over S); user u: the LightGCN part only.
    - Loss: BPR(u, i, j) + lam * sum_m BPR(u, W_m x_i^m, W_m x_j^m) + reg * L2, where x^m are the item's raw
      features of modality m and W_m a linear map to D; the projected features shape the user embeddings
      through the loss only and are not used in scoring, as in the paper's code.

    Departures: the modality graphs are averaged with equal fixed weights (the code fixes 0.1 image / 0.9 text
    for its two modalities; our modalities vary per dataset); the raw features are fixed (the code fine-tunes
    them as embeddings), only W_m is learnt; the L2 term (`reg`, on the batch's ID embeddings, as MF and
    LightGCN here) replaces the code's weight decay of 0, so it can be tuned; embeddings start at N(0, 0.1^2)
    as the other baselines here, not Xavier; pruning samples by exponential keys instead of
    `torch.multinomial` (the same distribution), seeded by (seed, epoch). The code's `dropout: [0.8, 0.9]` is
    the share pruned (it keeps 10-20% of the edges each epoch); on demo's validation Recall@20 keeping 0.2 gave
    0.327, 0.5 gave 0.337, 0.8 gave 0.346, 0.9 0.338, so we keep 0.8.
    """

    config: FREEDOMConfig

    def fit(self, data: InteractionData, progress: Progress | None = None) -> FREEDOM:
        if not data.features:
            raise ValueError(f"dataset {data.name!r} has no item features; FREEDOM needs at least one modality")
        return super().fit(data, progress)

    def _build(self, data: InteractionData) -> None:
        super()._build(data)
        cfg, device = self.config, default_device()
        self.edge_users, self.edge_items = data.pairs("train")
        self.edge_p = degree_sensitive_probabilities(self.edge_users, self.edge_items, self.num_users,
                                                     self.num_items)
        self.register_buffer("adj", bipartite_norm_adj(self.edge_users, self.edge_items, self.num_users,
                                                       self.num_items, device), persistent=False)
        self.register_buffer("item_adj", knn_item_graph(data.features, cfg.knn_k, device), persistent=False)
        for m, x in enumerate(data.features.values()):
            self.register_buffer(f"features_{m}", torch.from_numpy(x).to(device), persistent=False)   # [I, d_m]
        self.projections = nn.ModuleList(nn.Linear(x.shape[1], cfg.dim) for x in data.features.values())
        self.register_buffer("item_adj_t", _transposed(self.item_adj), persistent=False)   # not symmetric
        self.train_adj, self._epochs = self.adj, 0

    def propagate(self, adj: torch.Tensor | None = None) -> torch.Tensor:
        """Final embeddings [U + I, D] on `adj` (default: the full user-item graph)."""
        e = self.embedding.weight                                                          # [U + I, D]
        h = out = e
        for _ in range(self.config.layers):
            h = sparse_matmul(self.adj if adj is None else adj, h)                    # both symmetric
            out = out + h
        out = out / (self.config.layers + 1)
        items = e[self.num_users:]                                                         # [I, D]
        for _ in range(self.config.item_layers):
            items = sparse_matmul(self.item_adj, items, self.item_adj_t)
        return torch.cat([out[:self.num_users], out[self.num_users:] + items])

    def _epoch(self, data: InteractionData, rng: np.random.Generator, opt: torch.optim.Optimizer) -> float:
        self._epochs += 1
        kept = prune_edges(self.edge_p, self.config.keep, np.random.default_rng([self.config.seed, self._epochs]))
        self.train_adj = bipartite_norm_adj(self.edge_users[kept], self.edge_items[kept], self.num_users,
                                            self.num_items, self.embedding.weight.device)
        return super()._epoch(data, rng, opt)

    def _loss(self, u: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        h, ego = self.propagate(self.train_adj), self.embedding.weight
        nodes = torch.cat([u, i + self.num_users, j + self.num_users])                    # [3B], as in MF's
        users, pos, neg = h[nodes].split(len(u))
        loss = bpr_loss(users, pos, neg, ego[nodes].split(len(u)), self.config.reg)
        for m, proj in enumerate(self.projections):
            x = getattr(self, f"features_{m}")                                             # [I, d_m]
            loss = loss + self.config.lam * bpr_loss(users, *proj(x[torch.cat([i, j])]).split(len(u)), (), 0.0)
        return loss


# Chosen on validation Recall@20 of demo and movielens (benchmarks/results/tune_*.csv): MF needs strong L2
# (reg 1e-4 -> 1e-2 lifts it from 0.21 to 0.33 on demo); LightGCN is best at lr 5e-3, reg 1e-3 on both.
# FREEDOM takes LightGCN's lr and L2 (on demo reg 1e-4 / 1e-3 / 1e-2: 0.321 / 0.346 / 0.341).
DEFAULTS = {"mf": BPRConfig(lr=1e-3, reg=1e-2), "lightgcn": BPRConfig(lr=5e-3, reg=1e-3),
            "freedom": FREEDOMConfig(lr=5e-3, reg=1e-3)}


def make_baseline(name: str, **overrides) -> Popularity | EASE | MF | LightGCN | FREEDOM:
    """A baseline by name; `overrides` replace fields of its config (e.g. lr=5e-3, seed=1)."""
    if name == "popularity":
        return Popularity()
    if name == "ease":
        return EASE(dataclasses.replace(EASEConfig(), **overrides))
    if name not in DEFAULTS:
        raise ValueError(f"unknown baseline {name!r}; choose from {', '.join(MODELS)}")
    config = dataclasses.replace(DEFAULTS[name], **overrides)
    return {"mf": MF, "lightgcn": LightGCN, "freedom": FREEDOM}[name](config)


# The grid searched on each dataset's validation split when baselines are tuned (the default): defaults chosen
# on one dataset do not transfer (MF's best L2 on validation Recall@20: 1e-2 on MovieLens, 3e-2 on demo, 3e-1 on
# demo:preset=sparse).
# Each grid holds the model's default and varies L2, which moves the result most, at the learning rate that was
# best on demo and MovieLens (benchmarks/results/tune_*.csv): 1e-3 for MF (5e-3 lost 4% on MovieLens), 5e-3 for
# LightGCN and FREEDOM (2-3x sooner to converge, which keeps the whole grid inside one run).
GRIDS = {"mf": [{"lr": 1e-3, "reg": reg} for reg in (1e-3, 1e-2, 3e-2, 1e-1, 3e-1)],
         "lightgcn": [{"lr": 5e-3, "reg": reg} for reg in (1e-3, 1e-2, 1e-1)],
         "freedom": [{"lr": 5e-3, "reg": reg} for reg in (1e-3, 1e-2, 1e-1)]}


def train_baseline(name: str, data: InteractionData, progress: Progress | None = None, tune: bool = False,
                   **overrides) -> tuple[Popularity | EASE | MF | LightGCN | FREEDOM, dict]:
    """Fit one baseline and evaluate it: (model, {"valid": {...}, "test": {...}, "train_seconds": s}).

    With `tune`, MF and LightGCN are fitted once per setting of `GRIDS[name]` and the one with the best validation
    Recall@20 is kept; the entry then also lists every trial under "tuning" (EASE always picks its L2 on
    validation and lists its trials too). "train_seconds" is the kept model's, "tune_seconds" the whole search's.
    """
    trials, best, start = [], None, time.perf_counter()
    for setting in (GRIDS.get(name, [{}]) if tune else [{}]):
        model = make_baseline(name, **{**overrides, **setting})
        tic = time.perf_counter()
        model.fit(data, progress=progress)
        seconds = time.perf_counter() - tic
        score = evaluate(model, data, "valid", ks=(20,))["recall@20"]
        trials.append({**setting, "valid_recall@20": round(score, 4), "seconds": round(seconds, 2),
                       **({"best_epoch": model.best_epoch} if isinstance(model, _BPRModel) else {})})
        if best is None or score > best[0]:
            best = (score, model, seconds, setting)
    _, model, seconds, setting = best
    entry = {**evaluate_splits(model, data), "train_seconds": round(seconds, 2),
             "setting": {"lambdas": [model.lam]} if isinstance(model, EASE) else setting}
    if isinstance(model, EASE):
        entry["tuning"] = model.trials
    elif len(trials) > 1:
        entry["tuning"] = trials
        entry["tune_seconds"] = round(time.perf_counter() - start, 2)
    return model, entry


def refit_baseline(name: str, data: InteractionData, entry: dict, **overrides
                   ) -> Popularity | EASE | MF | LightGCN | FREEDOM:
    """The baseline a metrics.json `entry` describes, fitted again at its kept setting (the same seed gives the
    same model): what a resumed run needs when the model itself was not kept."""
    setting = {k: tuple(v) if isinstance(v, list) else v for k, v in entry.get("setting", {}).items()}
    return make_baseline(name, **{**overrides, **setting}).fit(data)
