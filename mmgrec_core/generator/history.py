"""Encoder inputs: each user's training items as a padded batch, and the held-out targets of a training step,
without a loop over users."""

from __future__ import annotations

import torch
from torch import Tensor

from ..data.sampling import UserItems


def padded_items(seen: UserItems, users: Tensor) -> tuple[Tensor, Tensor]:
    """(items int64 [B, W], valid bool [B, W]): each user's training items, W = the longest list."""
    users = users.to(seen.indptr.device)
    start, length = seen.indptr[users], seen.lengths(users)
    width = max(int(length.max()) if len(users) else 0, 1)
    offset = torch.arange(width, device=users.device)
    valid = offset < length[:, None]
    items = seen.indices[(start[:, None] + offset).clamp_max(max(len(seen.indices) - 1, 0))]
    return items, valid


def histories(seen: UserItems, users: Tensor, n: int) -> Tensor:
    """int64 [B, <= n]: item id + 1 of each user's training items, 0 = padding (what inference encodes).

    A history longer than n keeps a subset chosen by a fixed hash of (user, item), so the same user always gets
    the same input.
    """
    items, valid = padded_items(seen, users)
    if items.shape[1] > n:
        users = users.to(items.device)
        keys = ((items * 2654435761 + users[:, None] * 40503) % 1000003).float().masked_fill(~valid, float("inf"))
        keep = keys.topk(n, 1, largest=False).indices.sort(1).values     # keep catalogue order among the chosen
        items, valid = items.gather(1, keep), valid.gather(1, keep)
    return torch.where(valid, items + 1, 0)


def split_histories(seen: UserItems, users: Tensor, n: int, max_targets: int, keep: tuple[float, float],
                    generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """One training step's inputs and targets (the denoising objective of Mult-VAE, arXiv 1802.05814).

    Each user's training items are split at random: a share drawn from U(keep) stays in the input, the rest are
    the targets, all decoded against the one encoded input. The input never contains a target, and every user
    with a training item has at least one target. Returns history [B, <= n] (id + 1, 0 = padding; as wide as the
    longest input, whose encoder and mixture work follows the padded width), targets
    [B, <= max_targets] (item ids, -1 = padding) and their mask [B, <= max_targets].
    """
    items, valid = padded_items(seen, users)
    b, w = items.shape
    low, high = keep

    def uniform(*shape: int) -> Tensor:        # drawn on the CPU generator, then moved: CUDA draws what CPU draws
        return torch.rand(*shape, generator=generator).to(items.device)

    ratio = low + (high - low) * uniform(b, 1)
    key = uniform(b, w)
    kept = valid & (key < ratio)
    all_kept = (kept | ~valid).all(1) & valid.any(1)
    last = key.masked_fill(~valid, -1.0).argmax(1)                      # drop one item where none was
    kept[all_kept, last[all_kept]] = False
    dropped = valid & ~kept
    width = max(min(n, int(kept.sum(1).max()) if b else 0), 1)       # the longest input: no all-padding columns
    chosen = key.masked_fill(~kept, 2.0).topk(width, 1, largest=False).indices
    history = torch.where(kept.gather(1, chosen), items.gather(1, chosen) + 1, 0)
    pick = uniform(b, w).masked_fill(~dropped, 2.0).topk(min(max_targets, w), 1, largest=False).indices
    mask = dropped.gather(1, pick)
    return history, torch.where(mask, items.gather(1, pick), -1), mask
