"""Encoder inputs: each user's training items as a padded batch, at most N of them, without a loop over users."""

from __future__ import annotations

import torch
from torch import Tensor

from ..data.sampling import UserItems


def histories(seen: UserItems, users: Tensor, n: int, exclude: Tensor | None = None,
              generator: torch.Generator | None = None) -> Tensor:
    """int64 [B, <= n]: item id + 1 of each user's training items, 0 = padding.

    `exclude` [B] drops one item per row (the training target, so the input never contains the answer). When a
    history is longer than n, a random subset is kept: drawn from `generator` during training, and chosen by a
    fixed hash of (user, item) at inference so the same user always gets the same input.
    """
    users = users.to(seen.indptr.device)
    start = seen.indptr[users]
    length = seen.indptr[users + 1] - start
    width = max(int(length.max()) if len(users) else 0, 1)
    offset = torch.arange(width, device=users.device)
    valid = offset < length[:, None]                                       # [B, W]
    items = seen.indices[(start[:, None] + offset).clamp_max(max(len(seen.indices) - 1, 0))]
    if exclude is not None:
        valid &= items != exclude.to(items.device)[:, None]
    if width > n:
        if generator is not None:
            keys = torch.rand(valid.shape, generator=generator).to(items.device)
        else:
            keys = ((items * 2654435761 + users[:, None] * 40503) % 1000003).float()
        keys = keys.masked_fill(~valid, float("inf"))
        keep = keys.topk(n, 1, largest=False).indices.sort(1).values     # keep catalogue order among the chosen
        items, valid = items.gather(1, keep), valid.gather(1, keep)
    return torch.where(valid, items + 1, 0)
