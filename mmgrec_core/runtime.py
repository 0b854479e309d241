"""Where computations run and how they are made repeatable."""

from __future__ import annotations

import random

import numpy as np
import torch


def default_device() -> torch.device:
    """CUDA when present, else CPU: the library's one rule for placing work."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU and CUDA) so that a run with the same seed repeats."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
