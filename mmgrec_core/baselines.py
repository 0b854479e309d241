"""Baselines on the same split and evaluator as MMGRec: popularity, MF-BPR, LightGCN, EASE.

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
from torch_geometric.nn import LGConv
from torch_geometric.nn.conv.gcn_conv import gcn_norm

from .data.dataset import InteractionData
from .data.sampling import UserItems, bpr_triples, top_k_unseen
from .evaluate import evaluate
from .graph import bipartite_edge_index
from .runtime import default_device, seed_everything
from .training import EarlyStopping, Progress, bpr_loss

MODELS = ("popularity", "mf", "lightgcn", "ease")


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
        opt = torch.optim.Adam(self.parameters(), lr=cfg.lr)
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
            i, j = i + self.num_users, j + self.num_users
            h, ego = self.propagate(), self.embedding.weight
            loss = bpr_loss(h[u], h[i], h[j], (ego[u], ego[i], ego[j]), self.config.reg)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(u)
        self._final = None
        return total / len(users)

    @torch.no_grad()
    def recommend(self, users: torch.Tensor, k: int) -> torch.Tensor:
        if self.training or getattr(self, "_final", None) is None:
            self._final = self.propagate()
        h = self._final
        users = users.to(self.device)
        scores = h[users] @ h[self.num_users:].T                                    # [B, I]
        return top_k_unseen(scores, users, self.seen, k)


class MF(_BPRModel):
    """Matrix factorisation with the BPR loss (Rendle et al., UAI 2009): score(u, i) = e_u . e_i."""


class LightGCN(_BPRModel):
    """LightGCN (He et al., SIGIR 2020) with torch_geometric's `LGConv`.

    e^(l+1) = D^-1/2 A D^-1/2 e^(l) on the training user-item graph; final e = mean over l = 0..L.
    The normalised adjacency is built once, not per batch.
    """

    def _build(self, data: InteractionData) -> None:
        super()._build(data)
        n = data.num_users + data.num_items
        edge_index, weight = gcn_norm(bipartite_edge_index(data), num_nodes=n, add_self_loops=False)
        adj = torch.sparse_coo_tensor(edge_index.flip(0), weight, (n, n), check_invariants=True)
        with warnings.catch_warnings():            # "CSR support is in beta": PyG's spmm needs CSR anyway
            warnings.simplefilter("ignore", UserWarning)
            adj = adj.coalesce().to_sparse_csr()   # [N, N], symmetric
        self.register_buffer("adj", adj, persistent=False)
        self.convs = nn.ModuleList(LGConv(normalize=False) for _ in range(self.config.layers))

    def propagate(self) -> torch.Tensor:
        h = self.embedding.weight
        out = h
        for conv in self.convs:
            h = conv(h, self.adj)
            out = out + h
        return out / (len(self.convs) + 1)


# Chosen on validation Recall@20 of demo and movielens (benchmarks/results/tune_*.csv): MF needs strong L2
# (reg 1e-4 -> 1e-2 lifts it from 0.21 to 0.33 on demo); LightGCN is best at lr 5e-3, reg 1e-3 on both.
DEFAULTS = {"mf": BPRConfig(lr=1e-3, reg=1e-2), "lightgcn": BPRConfig(lr=5e-3, reg=1e-3)}


def make_baseline(name: str, **overrides) -> Popularity | EASE | MF | LightGCN:
    """A baseline by name; `overrides` replace fields of its config (e.g. lr=5e-3, seed=1)."""
    if name == "popularity":
        return Popularity()
    if name == "ease":
        return EASE(dataclasses.replace(EASEConfig(), **overrides))
    if name not in DEFAULTS:
        raise ValueError(f"unknown baseline {name!r}; choose from {', '.join(MODELS)}")
    config = dataclasses.replace(DEFAULTS[name], **overrides)
    return {"mf": MF, "lightgcn": LightGCN}[name](config)


# The grid searched on each dataset's validation split when baselines are tuned (the default): defaults chosen
# on one dataset do not transfer (MF's best L2 on validation Recall@20: 1e-2 on MovieLens, 3e-2 on demo, 3e-1 on
# demo:preset=sparse).
# Each grid holds the model's default and varies L2, which moves the result most, at the learning rate that was
# best on demo and MovieLens (benchmarks/results/tune_*.csv): 1e-3 for MF (5e-3 lost 4% on MovieLens), 5e-3 for
# LightGCN (2-3x sooner to converge, which keeps the whole grid inside one run).
GRIDS = {"mf": [{"lr": 1e-3, "reg": reg} for reg in (1e-3, 1e-2, 3e-2, 1e-1, 3e-1)],
         "lightgcn": [{"lr": 5e-3, "reg": reg} for reg in (1e-3, 1e-2, 1e-1)]}


def train_baseline(name: str, data: InteractionData, progress: Progress | None = None, tune: bool = False,
                   **overrides) -> tuple[Popularity | EASE | MF | LightGCN, dict]:
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
            best = (score, model, seconds)
    _, model, seconds = best
    entry = {"valid": evaluate(model, data, "valid"), "test": evaluate(model, data, "test"),
             "train_seconds": round(seconds, 2)}
    if isinstance(model, EASE):
        entry["tuning"] = model.trials
    elif len(trials) > 1:
        entry["tuning"] = trials
        entry["tune_seconds"] = round(time.perf_counter() - start, 2)
    return model, entry
