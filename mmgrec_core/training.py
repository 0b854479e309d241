"""Pieces shared by every training loop: early stopping that keeps the best weights, and progress callbacks."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn


def bpr_loss(users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, inputs: tuple[torch.Tensor, ...],
             reg: float) -> torch.Tensor:
    """BPR (Rendle et al., UAI 2009) on scores u . i against u . j, for final vectors [B, D] each, plus `reg`
    times the L2 of the batch's input embeddings `inputs` (sum of squares / (2 x batch), as LightGCN does)."""
    rank = nn.functional.softplus((users * neg).sum(-1) - (users * pos).sum(-1)).mean()
    return rank + reg * sum(e.pow(2).sum() for e in inputs) / (2 * len(users))


# Called after each evaluation with (epoch, {"loss": x, "recall@20": y, ...}); the CLI feeds tqdm, the app a bar.
Progress = Callable[[int, dict[str, float]], None]


class EarlyStopping:
    """Stop when the validation score has not improved for `patience` evaluations; remember the best weights."""

    def __init__(self, patience: int):
        self.patience = patience
        self.best_score = float("-inf")
        self.best_epoch = -1
        self.best_state: dict[str, torch.Tensor] | None = None
        self._bad = 0

    def step(self, score: float, epoch: int, model: torch.nn.Module) -> bool:
        """Record `score`; return True when training should stop."""
        if score > self.best_score:
            self.best_score, self.best_epoch, self._bad = score, epoch, 0
            self.best_state = copy.deepcopy(model.state_dict())
        else:
            self._bad += 1
        return self.should_stop

    @property
    def should_stop(self) -> bool:
        return self._bad >= self.patience

    def state_dict(self) -> dict:
        """Everything needed to continue after a restart (tensors and plain values: loadable weights-only)."""
        return {"best_score": self.best_score, "best_epoch": self.best_epoch, "bad": self._bad,
                "best_state": self.best_state}

    def load_state_dict(self, state: dict) -> None:
        self.best_score, self.best_epoch, self._bad = state["best_score"], state["best_epoch"], state["bad"]
        self.best_state = state["best_state"]

    def restore(self, model: torch.nn.Module) -> None:
        """Load the best weights seen back into `model`."""
        if self.best_state is not None:
            model.load_state_dict(self.best_state)
