"""Full-ranking evaluation of any model that can `recommend(users, k)`.

Protocol (MMGREC.md §1): every item is a candidate except the user's own training items, which the model must
not return (we check); Recall@K and NDCG@K are averaged over the users with at least one item in the evaluated
split.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch

from .data.dataset import InteractionData
from .metrics import hit_matrix, ndcg_at_k, recall_at_k

KS = (5, 10, 20)


class Recommender(Protocol):
    """The one contract every model (baselines and MMGRec) offers to the evaluator, app and notebooks."""

    def fit(self, data: InteractionData) -> Recommender: ...

    def recommend(self, users: torch.Tensor, k: int) -> torch.Tensor:
        """int64 [B, k] item ids, best first, never one of the user's training items (-1 pads short lists)."""
        ...


def evaluate(model: Recommender, data: InteractionData, split: str = "test", ks: Sequence[int] = KS,
             batch_size: int = 1024, users: np.ndarray | None = None) -> dict[str, float]:
    """{"recall@K": x, "ndcg@K": x, ..., "top1_share": x} on `split`, full ranking over all items.

    `top1_share` is the share of the evaluated users whose first recommendation is the most common first
    recommendation (1.0 for popularity): a model that has not learnt to personalise shows it at a glance.
    `users` restricts evaluation to a subset (e.g. for quick validation during training).
    """
    eval_users = data.users_with(split) if users is None else np.intersect1d(users, data.users_with(split))
    u, i = data.pairs(split)
    relevant = np.sort(u * data.num_items + i)
    n_relevant = np.bincount(u, minlength=data.num_users)
    tu, ti = data.pairs("train")
    train = np.sort(tu * data.num_items + ti)
    k_max = max(ks)
    sums = {f"{m}@{k}": 0.0 for k in ks for m in ("recall", "ndcg")}
    firsts = np.zeros(data.num_items, np.int64)                        # [I]: how often each item comes first
    for start in range(0, len(eval_users), batch_size):
        batch = eval_users[start:start + batch_size]
        recs = model.recommend(torch.from_numpy(batch), k_max).cpu().numpy()
        _check_recommendations(recs, batch, train, data.num_items)
        first = recs[:, 0]
        firsts += np.bincount(first[first >= 0], minlength=data.num_items)    # -1 pads an empty list
        hits = hit_matrix(batch, recs, relevant, data.num_items)
        for k in ks:
            sums[f"recall@{k}"] += recall_at_k(hits, n_relevant[batch], k).sum()
            sums[f"ndcg@{k}"] += ndcg_at_k(hits, n_relevant[batch], k).sum()
    n = max(len(eval_users), 1)
    out = {key: float(total / n) for key, total in sums.items()}
    out["top1_share"] = float(firsts.max() / n) if len(eval_users) else 0.0
    return out


def _check_recommendations(recs: np.ndarray, users: np.ndarray, train_keys: np.ndarray, num_items: int) -> None:
    """A model that leaks training items or repeats an item would inflate or distort the metrics: refuse it."""
    if hit_matrix(users, recs, train_keys, num_items).any():
        raise AssertionError("recommend() returned a user's training item; models must exclude them")
    srt = np.sort(recs, axis=1)
    if ((srt[:, 1:] == srt[:, :-1]) & (srt[:, 1:] >= 0)).any():
        raise AssertionError("recommend() returned the same item twice for a user")
