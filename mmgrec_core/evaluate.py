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
    return evaluate_splits(model, data, (split,), ks, batch_size, users)[split]


def evaluate_splits(model: Recommender, data: InteractionData, splits: Sequence[str] = ("valid", "test"),
                    ks: Sequence[int] = KS, batch_size: int = 1024, users: np.ndarray | None = None
                    ) -> dict[str, dict[str, float]]:
    """`evaluate` of several splits, {split: metrics}, from one `recommend` per user.

    A user's list depends on the training items alone, which every split excludes, so it is the same list for
    every split: the users of all splits are ranked once (for a generator, beam search is the whole cost).
    """
    per_split = {}
    for split in splits:
        su = data.users_with(split) if users is None else np.intersect1d(users, data.users_with(split))
        u, i = data.pairs(split)
        per_split[split] = (su, np.sort(u * data.num_items + i), np.bincount(u, minlength=data.num_users))
    eval_users = np.unique(np.concatenate([su for su, _, _ in per_split.values()])).astype(np.int64)
    tu, ti = data.pairs("train")
    train = np.sort(tu * data.num_items + ti)
    k_max = max(ks)
    sums = {split: {f"{m}@{k}": 0.0 for k in ks for m in ("recall", "ndcg")} for split in splits}
    firsts = {split: np.zeros(data.num_items, np.int64) for split in splits}    # [I]: how often each comes first
    for start in range(0, len(eval_users), batch_size):
        batch = eval_users[start:start + batch_size]
        recs = model.recommend(torch.from_numpy(batch), k_max).cpu().numpy()
        _check_recommendations(recs, batch, train, data.num_items)
        for split, (su, relevant, n_relevant) in per_split.items():
            mine = np.isin(batch, su)                                   # this split's users in the batch
            hits = hit_matrix(batch[mine], recs[mine], relevant, data.num_items)
            n = n_relevant[batch[mine]]
            first = recs[mine, 0]
            firsts[split] += np.bincount(first[first >= 0], minlength=data.num_items)   # -1 pads an empty list
            for k in ks:
                sums[split][f"recall@{k}"] += recall_at_k(hits, n, k).sum()
                sums[split][f"ndcg@{k}"] += ndcg_at_k(hits, n, k).sum()
    out = {}
    for split, (su, _, _) in per_split.items():
        n = max(len(su), 1)
        out[split] = {key: float(total / n) for key, total in sums[split].items()}
        out[split]["top1_share"] = float(firsts[split].max() / n) if len(su) else 0.0
    return out


def _check_recommendations(recs: np.ndarray, users: np.ndarray, train_keys: np.ndarray, num_items: int) -> None:
    """A model that leaks training items or repeats an item would inflate or distort the metrics: refuse it."""
    if hit_matrix(users, recs, train_keys, num_items).any():
        raise AssertionError("recommend() returned a user's training item; models must exclude them")
    srt = np.sort(recs, axis=1)
    if ((srt[:, 1:] == srt[:, :-1]) & (srt[:, 1:] >= 0)).any():
        raise AssertionError("recommend() returned the same item twice for a user")
