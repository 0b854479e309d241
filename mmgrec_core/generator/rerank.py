"""`mmgrec+dense`: the beam's candidates re-ranked with a dense recommender's scores (a dense stage inside
generation, as in COBRA arXiv 2503.02453 and LIGER arXiv 2411.18814).

The generator proposes `width` candidates per user by constrained beam search, with their exact sequence
log-probabilities; a dense model scores those candidates only, so the cost stays flat in the catalog size (EASE:
history x candidates; MF / LightGCN: candidates x D). Each score is standardised over the user's candidates and
the two are mixed, (1 - w) z(log p) + w z(dense), with w picked on validation NDCG@10 from `WEIGHTS`. The
dense model only reorders: what can be recommended is what the beam found, so every guarantee of beam search
(valid, unseen, distinct items) carries over. w = 0 is plain MMGRec on a beam `width` wide.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from ..data.dataset import InteractionData
from ..evaluate import evaluate, evaluate_splits
from .recommender import MMGRec

WEIGHTS = tuple(w / 10 for w in range(11))          # the dense model's share, searched on validation


class Scorer(Protocol):
    """A dense recommender that scores given items: every baseline but popularity (`baselines.py`)."""

    def score(self, users: Tensor, items: Tensor) -> Tensor:
        """float [B, C] scores of items [B, C] for users [B] (-1 entries: any value)."""
        ...


@dataclass(frozen=True)
class Candidates:
    """What the beam proposed for a batch of users and both models' scores of it."""

    items: Tensor                    # int64 [B, C] best first by log p; -1 where the beam found fewer
    log_p: Tensor                    # float [B, C] sequence log-probabilities (-inf with -1)
    dense: Tensor                    # float [B, C] the dense model's scores

    def take(self, rows: Tensor) -> Candidates:
        """The candidates of the given rows [R]."""
        return Candidates(self.items[rows], self.log_p[rows], self.dense[rows])

    @staticmethod
    def cat(parts: list[Candidates]) -> Candidates:
        return Candidates(*(torch.cat(f) for f in zip(*((p.items, p.log_p, p.dense) for p in parts))))

    def fused(self, weight: float) -> Tensor:
        """(1 - w) z(log p) + w z(dense) [B, C]; -inf where there is no candidate."""
        valid = self.items >= 0
        mixed = (1 - weight) * standardised(self.log_p, valid) + weight * standardised(self.dense, valid)
        return mixed.masked_fill(~valid, float("-inf"))

    def top(self, weight: float, k: int) -> Tensor:
        """int64 [B, k] the candidates in fused order, best first; -1 pads."""
        scores, order = self.fused(weight).topk(min(k, self.items.shape[1]), 1)
        items = self.items.gather(1, order).masked_fill(torch.isneginf(scores), -1)
        return torch.nn.functional.pad(items, (0, k - items.shape[1]), value=-1)


def standardised(x: Tensor, valid: Tensor) -> Tensor:
    """Per row, (x - mean) / std over the valid entries [B, C] (0 where a row has no spread)."""
    n = valid.sum(1, keepdim=True).clamp_min(1)
    x = torch.where(valid, x.float(), 0.0)
    mean = x.sum(1, keepdim=True) / n
    var = torch.where(valid, (x - mean) ** 2, 0.0).sum(1, keepdim=True) / n
    std = var.sqrt()
    return torch.where(std > 0, (x - mean) / std.clamp_min(1e-12), 0.0)


class DenseRerank:
    """A `Recommender`: beam search for `width` candidates, re-ranked by the fused score at `weight`."""

    def __init__(self, generator: MMGRec, dense: Scorer, weight: float = 0.5, width: int = 100):
        self.generator, self.dense, self.weight, self.width = generator, dense, weight, width

    def fit(self, data) -> DenseRerank:       # the Recommender protocol; both models arrive trained
        return self

    def candidates(self, users: Tensor) -> Candidates:
        """The beam's `width` candidates for users [B] and both scores, in batches of the generator's size."""
        parts = []
        step = self.generator.batch_size
        for s in range(0, len(users), step):
            batch = users[s:s + step]
            found = self.generator.search(batch, self.width)
            dense = self.dense.score(batch, found.items).to(found.items.device)
            parts.append(Candidates(found.items, found.scores.float(), dense.float()))
        return Candidates.cat(parts)

    def recommend(self, users: Tensor, k: int) -> Tensor:
        """int64 [B, k] item ids, best first: the beam's items, never a training item or a duplicate."""
        return self.candidates(users).top(self.weight, k)

    def tune(self, data: InteractionData, weights: tuple[float, ...] = WEIGHTS) -> dict:
        """Pick `weight` on validation NDCG@10; return {"valid", "test", "weight", "candidates", "tuning"}.

        The candidates do not depend on the weight (the beam sees only the training items), so they are searched
        once per user and every weight re-sorts them.
        """
        users = np.union1d(data.users_with("valid"), data.users_with("test"))
        fixed = _Precomputed(self.candidates(torch.from_numpy(users)), users, data.num_users)
        trials = []
        for w in weights:
            fixed.weight = w
            trials.append({"weight": w, "valid_ndcg@10": round(evaluate(fixed, data, "valid", ks=(10,))["ndcg@10"], 4)})
        self.weight = fixed.weight = max(trials, key=lambda t: t["valid_ndcg@10"])["weight"]   # first of ties
        return evaluate_splits(fixed, data) | {
            "weight": self.weight, "candidates": self.width, "tuning": trials}


class _Precomputed:
    """Recommend from candidates searched once for `users`, at whatever `weight` is set."""

    def __init__(self, candidates: Candidates, users: np.ndarray, num_users: int):
        self.candidates, self.weight = candidates, 0.0
        self.row = torch.full((num_users,), -1, dtype=torch.long)
        self.row[torch.from_numpy(users)] = torch.arange(len(users))

    def recommend(self, users: Tensor, k: int) -> Tensor:
        rows = self.row[users.cpu()].to(self.candidates.items.device)
        if bool((rows < 0).any()):
            raise KeyError("no candidates were searched for some of these users")
        return self.candidates.take(rows).top(self.weight, k)
