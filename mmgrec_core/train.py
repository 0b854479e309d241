"""Training the Rec-ID generator: several held-out targets per encoded history, warm-up and cosine decay, early
stopping on validation NDCG@10, atomic checkpoints.

One step takes `batch_size` users, splits each one's training items into an input and held-out targets
(`generator.history.split_histories`), encodes each input once and decodes all its targets against it. An epoch
visits every user with a training item once. Every epoch draws its order, splits and dropout from seeds derived
from (seed, epoch), and the checkpoint holds the model, optimizer, schedule and early-stopping state, so `resume`
after a kill ends with the same weights as an uninterrupted run.

Under `torchrun` (`distributed.World`), every rank draws the same global batch and splits, keeps its own rows
(`World.rows`), and DistributedDataParallel averages gradients weighted by each rank's share of the batch's
targets, so a step is the single-process step on the whole batch up to float rounding (and dropout, which each
rank draws for its own rows). Rank 0 validates and writes checkpoints; the others receive its decision.
"""

from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .checks import check_positive, check_range
from .data.dataset import InteractionData
from .data.sampling import UserItems
from .distributed import SINGLE, World
from .evaluate import evaluate
from .files import atomic_write_bytes
from .generator.beam import DecodingConfig
from .generator.history import split_histories
from .generator.model import RecIDGenerator
from .generator.recommender import MMGRec
from .recid import RecIDTable
from .training import EarlyStopping, Progress


@dataclass(frozen=True)
class TrainingConfig:
    lr: float = 2e-3                # peak learning rate (AdamW), reached after the warm-up
    weight_decay: float = 0.05      # on weight matrices; embeddings, biases and norms get none
    warmup: float = 0.05            # share of all steps spent warming up; then cosine decay to zero
    batch_size: int = 32            # users per step
    epochs: int = 20
    keep_min: float = 0.2           # each user keeps a share drawn from U(keep_min, keep_max) of their items
    keep_max: float = 0.8           # as input; the rest are the targets of that step
    max_targets: int = 32           # held-out targets decoded per user and step
    eval_every: int = 2             # epochs between validation checks (and at the last epoch)
    patience: int = 5               # checks without a better validation NDCG@10 before stopping
    valid_users: int = 1000         # validation subset for early stopping (beam search is the costly part)
    align_epochs: int = 0           # MGR-LF++: epochs of cross-modal Rec-ID prediction before the task (late fusion)

    def __post_init__(self):
        check_positive(self, "lr", "batch_size", "max_targets", "eval_every", "patience", "valid_users")
        check_positive(self, "weight_decay", "epochs", "align_epochs", allow_zero=True)
        check_range(self, "warmup", 0.0, 1.0, high_open=True)
        check_range(self, "keep_min", 0.0, 1.0)
        check_range(self, "keep_max", self.keep_min, 1.0)


def validation_users(data: InteractionData, n: int, seed: int) -> np.ndarray:
    """A fixed random subset of the users with validation items (beam search on all of them costs minutes)."""
    users = data.users_with("valid")
    if len(users) <= n:
        return users
    return np.sort(np.random.default_rng(seed).choice(users, n, replace=False))


def fit_generator(model: RecIDGenerator, data: InteractionData, table: RecIDTable, training: TrainingConfig,
                  decoding: DecodingConfig, seed: int = 0, checkpoint: Path | None = None,
                  progress: Progress | None = None, world: World = SINGLE,
                  segments: list[range] | None = None) -> list[dict]:
    """Train `model` in place (best weights restored at the end); return one history row per epoch.

    With `checkpoint`, the state is saved there after every epoch (by rank 0) and training continues from an
    existing checkpoint instead of starting over. With `training.align_epochs`, the modality alignment of
    `align_modalities` runs first on the Rec-ID `segments` of late fusion (its rows have stage "align").
    """
    cfg = training
    device = next(model.parameters()).device
    seen = UserItems(data, device=device)
    trie = table.trie.to(device)
    tokens = torch.tensor(table.tokens, device=device)                  # [I, T]
    paths = trie.item_paths()                                              # [I, T + 1] prefix ids
    users = torch.from_numpy(np.unique(data.pairs("train")[0]))
    valid_users = validation_users(data, cfg.valid_users, seed)
    opt = _optimizer(model, cfg)
    per_epoch = len(users)
    if 0 < per_epoch % cfg.batch_size < world.size:     # a last batch every rank can share: a few users wait
        per_epoch -= per_epoch % cfg.batch_size          # for the next epoch's random order
    steps_per_epoch = math.ceil(per_epoch / cfg.batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, _warmup_cosine(cfg, steps_per_epoch * cfg.epochs))
    stopper, rows, start_epoch = EarlyStopping(cfg.patience), [], 1
    if checkpoint and checkpoint.exists():
        state = torch.load(checkpoint, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        stopper.load_state_dict(state["stopper"])
        rows, start_epoch = state["history"], state["epoch"] + 1
    elif cfg.align_epochs:               # before the first checkpoint: a crash here re-runs it, seeded, identically
        rows = align_modalities(model, tokens, segments or [], cfg, seed)
        opt = _optimizer(model, cfg)     # the task starts afresh from the aligned weights, as in the paper
        schedule = torch.optim.lr_scheduler.LambdaLR(opt, _warmup_cosine(cfg, steps_per_epoch * cfg.epochs))
    recommender = MMGRec(model, table, seen, beam=decoding.beam)    # validation's; its co-occurrences train too
    cooccurrence = recommender.cooccurrence
    use_amp = device.type == "cuda"
    step_loss = model.loss
    if world.size > 1:
        # a level where none of a rank's targets has a choice is not scored (`decode_log_likelihood`): its
        # parameters may go unused on some ranks and steps
        step_loss = torch.nn.parallel.DistributedDataParallel(_Loss(model), find_unused_parameters=True)
    stop = bool(rows) and stopper.should_stop
    for epoch in range(start_epoch, cfg.epochs + 1):
        if stop:
            break
        tic = time.perf_counter()
        torch.manual_seed(seed * 100_003 + epoch)                         # dropout
        gen = torch.Generator().manual_seed(seed * 100_019 + epoch)       # order and splits
        model.train()
        total = 0.0
        order = users[torch.randperm(len(users), generator=gen)][:per_epoch]
        for s in range(0, len(order), cfg.batch_size):
            batch = order[s:s + cfg.batch_size].to(device)
            history, targets, mask = split_histories(seen, batch, model.config.max_history, cfg.max_targets,
                                                     (cfg.keep_min, cfg.keep_max), gen)
            share = 1.0
            if world.size > 1:                      # this rank's rows; its loss weighted by its share of targets
                n_all, mine = mask.sum(), world.rows(len(batch))
                history, targets, mask = history[mine], targets[mine], mask[mine]
                share = float(mask.sum() * world.size / n_all)
                batch = batch[mine]
            history, targets, mask = history.to(device), targets.to(device), mask.to(device)
            owner, items = mask.nonzero(as_tuple=True)[0], targets[mask]        # [n]: row in batch, item
            mass = cooccurrence.node_mass(history, batch, trie) if cooccurrence else None
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                loss = step_loss(history, owner, tokens[items], paths[items], trie, mass) * share
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            schedule.step()
            total += loss.item()
        row = {"stage": "generator", "epoch": epoch, "loss": world.sum(total) / world.size / steps_per_epoch}
        if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
            metrics = None
            if world.main:
                model.eval()
                metrics = evaluate(recommender, data, "valid", ks=(10, 20), users=valid_users)
            metrics = world.broadcast(metrics)
            row.update({f"valid_{k}": v for k, v in metrics.items() if "@" in k})
            stop = stopper.step(metrics["ndcg@10"], epoch, model)
        row["seconds"] = time.perf_counter() - tic
        rows.append(row)
        if checkpoint and world.main:
            save_checkpoint(checkpoint, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                         "schedule": schedule.state_dict(), "stopper": stopper.state_dict(),
                                         "history": rows, "epoch": epoch})
        if progress:
            progress(epoch, {k: v for k, v in row.items() if k not in ("stage", "epoch")})
    stopper.restore(model)
    model.eval()
    return rows


NETWORK_WEIGHTS = (1.0, 0.75, 0.5, 0.25)


@torch.no_grad()
def choose_network_weight(recommender: MMGRec, data: InteractionData) -> dict:
    """Set beta (`network_weight` of the recommender's model), the weight of the network's logits against the
    co-occurrence evidence, to the value of `NETWORK_WEIGHTS` with the best validation NDCG@10; return
    {"network_weight": beta, "tuning": [{"network_weight", "valid_ndcg@10"}, ...], "valid": all validation
    metrics at that beta (so the caller need not search the split again), "seconds": s}.

    Training fits both by likelihood, which on short histories trusts the network's popularity-heavy guesses more
    than ranking rewards (sparse world: validation NDCG@10 0.0561 at beta 1, 0.0589 at 0.5). The choice is made
    once, on the whole validation split like every baseline's setting and `mmgrec+dense`'s weight: on the
    1,000 early-stopping users it disagreed with the whole split on two of three sparse-world seeds. Ties keep
    the larger beta.
    """
    start = time.perf_counter()
    weight = recommender.model.network_weight
    best, trials = (float("-inf"), 1.0, {}), []
    for beta in NETWORK_WEIGHTS:
        weight.fill_(beta)
        valid = evaluate(recommender, data, "valid")
        trials.append({"network_weight": beta, "valid_ndcg@10": round(valid["ndcg@10"], 4)})
        if valid["ndcg@10"] > best[0]:
            best = (valid["ndcg@10"], beta, valid)
    weight.fill_(best[1])
    return {"network_weight": best[1], "tuning": trials, "valid": best[2],
            "seconds": round(time.perf_counter() - start, 2)}


def align_modalities(model: RecIDGenerator, tokens: torch.Tensor, segments: list[range], cfg: TrainingConfig,
                     seed: int, batch_items: int = 64) -> list[dict]:
    """MGR-LF++'s contrastive modality alignment (Zhu et al., §3.3): before the recommendation task the generator
    learns, from Rec-IDs alone, to produce one modality's codes given another's, for every ordered pair.

    The source segment's tokens enter the encoder as one position each (their token embeddings, tied with the
    decoder's); the target segment's codes are generated alone, as the paper's "Target: <txt-1-214><txt-2-250>"
    (`RecIDGenerator.segment_log_likelihood`). No history, no content vector, no interaction enters, as the paper
    requires. `cfg.align_epochs` passes over all items, seeded; returns one row per epoch (stage "align").
    """
    if len(segments) < 2:
        raise ValueError("training.align_epochs needs a Rec-ID of two or more modality segments "
                         "(tokenizer.name=late_fusion on data with two or more modalities)")
    if model.has_transition:
        raise ValueError("training.align_epochs needs generator.transition=false: the alignment input has no "
                         "history items whose transition rows it could train")
    device = tokens.device
    opt = _optimizer(model, cfg)
    n_items = len(tokens)
    steps = math.ceil(n_items / batch_items)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, _warmup_cosine(cfg, steps * cfg.align_epochs))
    rows = []
    for epoch in range(1, cfg.align_epochs + 1):
        tic = time.perf_counter()
        torch.manual_seed(seed * 100_043 + epoch)                         # dropout
        gen = torch.Generator().manual_seed(seed * 100_057 + epoch)       # order
        model.train()
        total = 0.0
        for batch in torch.randperm(n_items, generator=gen).to(device).split(batch_items):
            loss = alignment_loss(model, tokens[batch], segments)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            schedule.step()
            total += loss.item()
        rows.append({"stage": "align", "epoch": epoch, "loss": total / steps,
                     "seconds": time.perf_counter() - tic})
    return rows


def alignment_loss(model: RecIDGenerator, ids: torch.Tensor, segments: list[range]) -> torch.Tensor:
    """The mean over ordered pairs (source, target) of segments of -log p(target | source) / |target|, for Rec-IDs
    ids [B, T]. The S sources go through the encoder in one pass and each target through the decoder in one pass
    for all the other sources: 1 + S passes instead of 2 x S x (S - 1), the same loss as pair by pair."""
    n, s = len(ids), len(segments)
    memory, pad = (t.unflatten(0, (s, n)) for t in _encode_segments(model, ids, segments))  # [S, B, L + 1, ...]
    total = 0.0
    for t, target in enumerate(segments):
        others = [k for k in range(s) if k != t]                                  # the sources, segment-major
        log_p = model.segment_log_likelihood(memory[others].flatten(0, 1), pad[others].flatten(0, 1),
                                             ids.repeat(s - 1, 1), target)
        total = total - log_p.sum() / (n * len(target))
    return total / (s * (s - 1))


def alignment_log_likelihood(model: RecIDGenerator, ids: torch.Tensor, source: range, target: range
                             ) -> torch.Tensor:
    """log p(target segment | source segment) [B] of Rec-IDs ids [B, T]: the source's tokens are the encoder's
    positions (their token embeddings), the target's generated alone (`segment_log_likelihood`)."""
    return model.segment_log_likelihood(*_encode_segments(model, ids, [source]), ids, target)


def _encode_segments(model: RecIDGenerator, ids: torch.Tensor, segments: list[range]
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Memory and padding of each segment of ids [B, T] alone, segment-major: rows k x B .. (k + 1) x B - 1 hold
    segment k (all segments of one length, as late fusion's are)."""
    x = torch.cat([torch.stack([model.tokens[d](ids[:, d]) for d in seg], 1) for seg in segments])  # [S x B, L, D]
    pad = torch.zeros(x.shape[:2], dtype=torch.bool, device=ids.device)
    return model.encode_embedded(x, pad, x.new_zeros(*x.shape[:2], model.item_vectors.shape[1]))


class _Loss(torch.nn.Module):
    """The generator's training loss as a forward pass: what DistributedDataParallel wraps and synchronises."""

    def __init__(self, model: RecIDGenerator):
        super().__init__()
        self.model = model

    def forward(self, *args) -> torch.Tensor:
        return self.model.loss(*args)


def _optimizer(model: RecIDGenerator, cfg: TrainingConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on weight matrices only: decaying embeddings pulls rare items to the origin.

    The fused kernel updates each tensor in one pass instead of a chain of element-wise ops: one CPU step of the
    demo-sized generator takes 1.0 ms against 6.3 ms, 17x less at a million items (benchmarks/optimizer_step.py).
    """
    decay, rest = [], []
    for name, p in model.named_parameters():
        is_matrix = p.ndim >= 2 and not name.startswith(("item_table", "tokens", "level"))
        (decay if is_matrix else rest).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": rest, "weight_decay": 0.0}], lr=cfg.lr, fused=True)


def _warmup_cosine(cfg: TrainingConfig, total: int):
    warm = max(1, int(cfg.warmup * total))
    return lambda step: min(1.0, (step + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(1.0, step / max(total, 1))))


def save_checkpoint(path: Path, state: dict) -> None:
    """torch.save to memory, then one atomic write: a kill mid-save leaves the previous checkpoint intact."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())
