"""Training the Rec-ID generator: teacher forcing, early stopping on validation Recall@10, atomic checkpoints.

Every epoch draws its shuffling, history sampling and dropout from seeds derived from (seed, epoch), and the
checkpoint holds the model, optimizer and early-stopping state, so `resume` after a kill ends with the same
weights as an uninterrupted run.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .checks import check_positive, check_range
from .data.dataset import InteractionData
from .data.sampling import UserItems
from .evaluate import evaluate
from .files import atomic_write_bytes
from .generator.beam import DecodingConfig
from .generator.history import histories
from .generator.model import RecIDGenerator
from .generator.recommender import MMGRec
from .recid import RecIDTable
from .training import EarlyStopping, Progress


@dataclass(frozen=True)
class TrainingConfig:
    lr: float = 2e-3
    weight_decay: float = 1e-5
    batch_size: int = 256
    epochs: int = 60
    patience: int = 8               # evaluations without a better validation Recall@10
    eval_every: int = 1
    valid_users: int = 1000         # validation subset for early stopping (beam search is the costly part)
    history_dropout: float = 0.5    # share of input items hidden per training instance: without it the model
                                    # learns to name the one item missing from a memorised set, and overfits

    def __post_init__(self):
        check_positive(self, "lr", "batch_size", "patience", "eval_every", "valid_users")
        check_positive(self, "weight_decay", "epochs", allow_zero=True)
        check_range(self, "history_dropout", 0.0, 1.0, high_open=True)


def validation_users(data: InteractionData, n: int, seed: int) -> np.ndarray:
    """A fixed random subset of the users with validation items (beam search on all of them costs minutes)."""
    users = data.users_with("valid")
    if len(users) <= n:
        return users
    return np.sort(np.random.default_rng(seed).choice(users, n, replace=False))


def fit_generator(model: RecIDGenerator, data: InteractionData, table: RecIDTable, training: TrainingConfig,
                  decoding: DecodingConfig, seed: int = 0, checkpoint: Path | None = None,
                  progress: Progress | None = None) -> list[dict]:
    """Train `model` in place (best weights restored at the end); return one history row per epoch.

    With `checkpoint`, the state is saved there after every epoch and training continues from an existing
    checkpoint instead of starting over.
    """
    cfg, n_history = training, model.config.max_history
    device = next(model.parameters()).device
    seen = UserItems(data, device=device)
    targets = torch.tensor(table.tokens, device=device)
    u_all, i_all = (torch.from_numpy(a).to(device) for a in data.pairs("train"))
    history_len = (seen.indptr[u_all + 1] - seen.indptr[u_all] - 1).clamp_max(n_history).cpu()
    valid_users = torch.from_numpy(validation_users(data, cfg.valid_users, seed))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    stopper, rows, start_epoch = EarlyStopping(cfg.patience), [], 1
    path = checkpoint
    if path and path.exists():
        state = torch.load(path, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        stopper.load_state_dict(state["stopper"])
        rows, start_epoch = state["history"], state["epoch"] + 1
    use_amp = device.type == "cuda"
    stop = bool(rows) and stopper.should_stop
    for epoch in range(start_epoch, cfg.epochs + 1):
        if stop:
            break
        tic = time.perf_counter()
        torch.manual_seed(seed * 100_003 + epoch)                     # dropout
        gen = torch.Generator().manual_seed(seed * 100_019 + epoch)   # order and history sampling
        model.train()
        total = 0.0
        for idx in length_buckets(history_len, cfg.batch_size, gen):
            idx = idx.to(device)
            users, items = u_all[idx], i_all[idx]
            history = histories(seen, users, n_history, exclude=items, generator=gen)
            if cfg.history_dropout:                                       # see TrainingConfig.history_dropout
                history = history.masked_fill(torch.rand(history.shape, generator=gen).to(device)
                                              < cfg.history_dropout, 0)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                loss = model.loss(history, users, targets[items])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        row = {"stage": "generator", "epoch": epoch, "loss": total / len(u_all)}
        if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
            metrics = evaluate(MMGRec(model, table, seen, beam=decoding.beam), data, "valid", ks=(10, 20),
                               users=valid_users.numpy())
            row.update({f"valid_{k}": v for k, v in metrics.items()})
            stop = stopper.step(metrics["recall@10"], epoch, model)
        row["seconds"] = time.perf_counter() - tic
        rows.append(row)
        if path:
            save_checkpoint(path, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                   "stopper": stopper.state_dict(), "history": rows, "epoch": epoch})
        if progress:
            progress(epoch, {k: v for k, v in row.items() if k not in ("stage", "epoch")})
    stopper.restore(model)
    model.eval()
    return rows


def length_buckets(lengths: torch.Tensor, batch_size: int, generator: torch.Generator,
                   chunk: int = 50) -> list[torch.Tensor]:
    """Random batches of instance indices in which histories have similar lengths.

    A batch is padded to its longest history; on a Zipf-like catalog most histories are short, so random
    batches are mostly padding. Shuffle, sort by length within chunks of `chunk` batches, cut, shuffle batches.
    """
    order = torch.randperm(len(lengths), generator=generator)
    span = batch_size * chunk
    parts = []
    for s in range(0, len(order), span):
        piece = order[s:s + span]
        parts.append(piece[torch.sort(lengths[piece], stable=True).indices])
    batches = list(torch.cat(parts).split(batch_size))
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def save_checkpoint(path: Path, state: dict) -> None:
    """torch.save to memory, then one atomic write: a kill mid-save leaves the previous checkpoint intact."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())
