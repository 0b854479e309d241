"""Residual vector quantization (RQ-VAE's quantizer, MMGRec §4.2), with the codebook health peers needed.

At level m the residual r_m (r_1 = z) is replaced by its nearest codeword b_m = C_m[c_m] (squared Euclidean
distance), and r_{m+1} = r_m - b_m. The codes (c_1..c_M) are an item's semantic Rec-ID prefix; the quantized
vector is z_hat = sum_m b_m, passed on with the straight-through estimator z + sg(z_hat - z).

Loss (MMGRec Eq. 10, the quantizer part): sum_m ||sg(r_m) - b_m||^2 + beta ||r_m - sg(b_m)||^2, summed over
dimensions and averaged over the batch (peers found averaging over dimensions weakens the signal).

Codebook collapse (all items on a few codewords) is the usual failure of RQ-VAE tokenizers, so we add:
- k-means initialisation: on the first training batch, level m's codebook is k-means on the residuals r_m
  left by the (already initialised) levels before it;
- dead-code restart: a codeword unused for `dead_after` training steps is re-seeded from a random residual of
  its level in the current batch, so it lands where data is.
The codebooks are an `nn.Parameter` trained by the codebook term of the loss; give them `weight_decay=0`
(decay pulls unused codewords to the origin, one cause of collapse in the original MMGRec code).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class QuantizerOutput:
    quantized: Tensor       # [N, D] z + sg(z_hat - z): values of z_hat, gradients of z
    codes: Tensor           # int64 [N, L]
    loss: Tensor            # [] codebook + beta * commitment, summed over levels
    residual_norms: Tensor  # [N, L + 1] ||r_1|| = ||z||, ..., ||r_{L+1}|| (the final error); no grad


# ---- helpers ---------------------------------------------------------------------------------------------

def sq_dist(x: Tensor, c: Tensor) -> Tensor:
    """Squared Euclidean distances [N, K] between rows of x [N, D] and c [K, D], by one matmul."""
    d = x.pow(2).sum(-1, keepdim=True) - 2 * x @ c.t() + c.pow(2).sum(-1)
    return d.clamp_min(0)


def _nearest(r: Tensor, codebook: Tensor) -> tuple[Tensor, Tensor]:
    """Two nearest codewords of each row of r [N, D]: (indices, distances) [N, min(2, K)], nearest first.

    Every code path (forward, encode, trace) picks codes here, so they agree even on exact ties.
    """
    neg, idx = (-sq_dist(r, codebook)).topk(min(2, codebook.shape[0]), dim=-1)
    return idx, -neg


def _kmeans_pp(x: Tensor, k: int, generator: torch.Generator | None) -> Tensor:
    """k-means++ seeding: each next centre drawn with probability proportional to squared distance."""
    n = x.shape[0]
    c = x.new_empty(k, x.shape[1])
    c[0] = x[torch.randint(n, (1,), generator=generator, device=x.device)]
    dmin = sq_dist(x, c[:1]).squeeze(1)                                     # [N]
    for i in range(1, k):
        j = torch.multinomial(dmin + 1e-12, 1, generator=generator)   # + eps: all zero if points repeat
        c[i] = x[j]
        dmin = torch.minimum(dmin, sq_dist(x, c[i : i + 1]).squeeze(1))
    return c


def kmeans(x: Tensor, k: int, iters: int = 20, generator: torch.Generator | None = None) -> Tensor:
    """Centroids [k, D] of x [N, D]: k-means++ seeding, then `iters` Lloyd steps.

    Empty clusters are re-seeded from the points farthest from their centroid, so every centroid sits on data.
    With fewer points than clusters the centroids are the points (each once, the rest drawn with replacement)
    plus small noise, so no two codewords coincide. `generator` must live on x's device.
    """
    x = x.detach()
    n = x.shape[0]
    if n < k:
        extra = torch.randint(n, (k - n,), generator=generator, device=x.device)
        idx = torch.cat([torch.randperm(n, generator=generator, device=x.device), extra])
        scale = 1e-2 * (x.std() if n > 1 else x.new_tensor(1.0)).clamp_min(1e-3)
        noise = torch.randn(k, x.shape[1], generator=generator, device=x.device, dtype=x.dtype)
        return x[idx] + scale * noise
    c = _kmeans_pp(x, k, generator)
    for _ in range(iters):
        dmin, assign = sq_dist(x, c).min(-1)                                # [N], [N]
        counts = torch.bincount(assign, minlength=k)                        # [k]
        sums = torch.zeros_like(c).index_add_(0, assign, x)                 # [k, D]
        c = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], c)
        empty = (counts == 0).nonzero().squeeze(1)
        if len(empty):
            c[empty] = x[dmin.topk(len(empty)).indices]
    return c


def code_usage(codes: Tensor, codebook_size: int) -> list[float]:
    """Share of codewords used at least once, per level; codes int64 [N, L]."""
    return [torch.unique(codes[:, m]).numel() / codebook_size for m in range(codes.shape[1])]


def code_perplexity(codes: Tensor, codebook_size: int) -> list[float]:
    """exp(entropy) of the code distribution per level: the effective number of codewords in use."""
    out = []
    for m in range(codes.shape[1]):
        p = torch.bincount(codes[:, m], minlength=codebook_size).double() / codes.shape[0]
        out.append(float(torch.exp(-(p * p.clamp_min(1e-30).log()).sum())))
    return out


def capacity_assign(dist: Tensor, group: Tensor, capacity: int) -> Tensor:
    """A column for each row of dist [N, K], nearest first, with no (group, column) pair taking more than
    `capacity` rows; group int64 [N] (0..G-1).

    Greedy in rounds: every unplaced row proposes its nearest column not yet closed to it, a pair keeps its closest
    proposers up to its room, and the others close that column for themselves and try again. Each round closes a
    column for every row it leaves unplaced, so it ends after at most K rounds; when no pair overflows it is the
    plain nearest column. A group of more than K * capacity rows leaves the rows no column can take on their
    nearest one.
    """
    n, k = dist.shape
    nearest = dist.argmin(1)
    dist = dist.clone()
    choice = torch.full((n,), -1, dtype=torch.long, device=dist.device)
    load = torch.zeros(int(group.max()) + 1 if n else 0, k, dtype=torch.long, device=dist.device)
    todo = torch.arange(n, device=dist.device)
    while len(todo):
        d, col = dist[todo].min(1)                                              # [T]
        stuck = torch.isinf(d)                                                  # every column closed to it
        choice[todo[stuck]] = nearest[todo[stuck]]
        todo, d, col = todo[~stuck], d[~stuck], col[~stuck]
        key = group[todo] * k + col
        order = torch.argsort(d, stable=True)
        order = order[torch.argsort(key[order], stable=True)]                   # by pair, nearest first
        key, col, rows = key[order], col[order], todo[order]
        first = torch.ones_like(key, dtype=torch.bool)
        first[1:] = key[1:] != key[:-1]
        start = torch.cummax(torch.where(first, torch.arange(len(key), device=key.device), 0), 0).values
        rank = torch.arange(len(key), device=key.device) - start                # place among the pair's proposers
        accept = rank < capacity - load.view(-1)[key]
        choice[rows[accept]] = col[accept]
        load.view(-1).index_add_(0, key[accept], torch.ones_like(key[accept]))
        dist[rows[~accept], col[~accept]] = float("inf")
        todo = rows[~accept]
    return choice


def balanced_codes(z: Tensor, codebooks: Tensor) -> Tensor:
    """Codes int64 [N, L] of z [N, D] for codebooks [L, K, D], collision-free while N <= K^L.

    Level m < L gives each item its nearest codeword among those whose prefix (c_1..c_m) still holds fewer than
    K^(L-m) items (`capacity_assign`): no prefix takes more items than the levels below it can tell apart, so a
    dense region of the catalogue spills into neighbouring codewords instead of piling into one prefix. The last
    level is then a linear assignment within each prefix (`balanced_last_level`). Where no prefix is over-full
    this is nearest-codeword residual quantization with the last level balanced.
    """
    levels, k = codebooks.shape[:2]
    codes = torch.zeros(len(z), levels, dtype=torch.long, device=z.device)
    group = torch.zeros(len(z), dtype=torch.long, device=z.device)
    residual = z
    for m in range(levels):
        d = sq_dist(residual, codebooks[m])                                    # [N, K]
        if m < levels - 1:
            codes[:, m] = capacity_assign(d, group, k ** (levels - 1 - m))
            group = group * k + codes[:, m]
            group = torch.unique(group, return_inverse=True)[1]
        else:
            codes[:, m] = d.argmin(1)
            codes = balanced_last_level(codes, residual, codebooks[m])
        residual = residual - codebooks[m][codes[:, m]]
    return codes


def balanced_last_level(codes: Tensor, residual: Tensor, codebook: Tensor) -> Tensor:
    """codes [N, L] with the last level reassigned so that items sharing codes[:, :-1] take distinct last codes.

    Within each such group the last code is a minimum-distance linear assignment of the group's last residuals
    [N, D] to the codewords of the last codebook [K, D] (Hungarian, scipy). A group larger than K keeps the K
    best-placed items distinct and leaves the rest on their nearest codeword (the collision token separates them).
    Only groups that collide are solved: a python loop over them, each a small dense problem.
    """
    from scipy.optimize import linear_sum_assignment

    out = codes.clone()
    prefix, last = codes[:, :-1].cpu().numpy(), codes[:, -1].cpu().numpy()
    if prefix.shape[1]:
        _, group, size = np.unique(prefix, axis=0, return_inverse=True, return_counts=True)
        group = group.ravel()
    else:                                                       # one level: all items share the empty prefix
        group, size = np.zeros(len(codes), np.int64), np.array([len(codes)])
    clash = np.flatnonzero(size[group] > 1)
    if len(clash) == 0:
        return out
    order = clash[np.argsort(group[clash], kind="stable")]
    bounds = np.flatnonzero(np.r_[True, group[order][1:] != group[order][:-1], True])
    dist = sq_dist(residual[torch.from_numpy(order).to(residual.device)], codebook).cpu().numpy()   # [C, K]
    for a, b in zip(bounds[:-1], bounds[1:]):
        rows, cols = linear_sum_assignment(dist[a:b])
        last[order[a:b][rows]] = cols
    out[:, -1] = torch.from_numpy(last).to(codes.device)
    return out


# ---- the module ------------------------------------------------------------------------------------------

class ResidualQuantizer(nn.Module):
    """Residual quantizer with `levels` codebooks of `codebook_size` codewords in `dim` dimensions.

    Args:
        levels: number of codebooks M (MMGRec: 3).
        codebook_size: codewords per level L (MMGRec: 64/128/256).
        dim: latent dimension D.
        beta: commitment weight (0.25).
        dead_after: training steps a codeword may go unused before it is re-seeded from a residual.
        kmeans_iters: Lloyd iterations of the k-means initialisation.
        kmeans_init: initialise each level by k-means on the first training batch; otherwise codewords start
            uniform in +-1/L as in the original code (kept as an ablation: it collapses).
        restart_dead: re-seed dead codewords during training.
    """

    def __init__(self, *, levels: int, codebook_size: int, dim: int, beta: float = 0.25,
                 dead_after: int = 200, kmeans_iters: int = 20, kmeans_init: bool = True,
                 restart_dead: bool = True):
        super().__init__()
        if levels < 1 or codebook_size < 1 or dim < 1 or dead_after < 1:
            raise ValueError(f"levels, codebook_size, dim and dead_after must be positive, got {levels}, "
                             f"{codebook_size}, {dim}, {dead_after}")
        self.levels, self.codebook_size, self.dim = levels, codebook_size, dim
        self.beta, self.dead_after, self.kmeans_iters = beta, dead_after, kmeans_iters
        self.kmeans_init, self.restart_dead = kmeans_init, restart_dead
        bound = 1.0 / codebook_size
        codebooks = torch.empty(levels, codebook_size, dim).uniform_(-bound, bound)   # [L, K, D]
        self.codebooks = nn.Parameter(codebooks)
        # buffers, so a reloaded quantizer neither re-initialises nor forgets which codewords are dying
        self.register_buffer("initialized", torch.tensor(not kmeans_init))
        self.register_buffer("unused_steps", torch.zeros(levels, codebook_size, dtype=torch.long))  # [L, K]

    def extra_repr(self) -> str:
        return (f"levels={self.levels}, codebook_size={self.codebook_size}, dim={self.dim}, "
                f"beta={self.beta}, dead_after={self.dead_after}, kmeans_init={self.kmeans_init}, "
                f"restart_dead={self.restart_dead}")

    def forward(self, z: Tensor) -> QuantizerOutput:
        """Quantize z [N, D]; in training mode also run the k-means init (once) and dead-code restarts."""
        if self.training and not bool(self.initialized):
            self.init_codebooks(z)
        residual, z_hat, loss = z, torch.zeros_like(z), z.new_zeros(())
        codes, norms = [], [z.detach().norm(dim=-1)]
        for m in range(self.levels):
            idx = _nearest(residual.detach(), self.codebooks[m].detach())[0][:, 0]   # [N]
            b = self.codebooks[m][idx]                                               # [N, D]
            loss = loss + (residual.detach() - b).pow(2).sum(-1).mean() \
                + self.beta * (residual - b.detach()).pow(2).sum(-1).mean()
            if self.training and self.restart_dead:
                self._restart_dead(m, idx, residual.detach())
            residual = residual - b.detach()       # later levels' commitment must not move this codebook
            z_hat = z_hat + b.detach()
            codes.append(idx)
            norms.append(residual.detach().norm(dim=-1))
        return QuantizerOutput(quantized=z + (z_hat - z).detach(), codes=torch.stack(codes, 1), loss=loss,
                               residual_norms=torch.stack(norms, 1))

    @torch.no_grad()
    def init_codebooks(self, z: Tensor, generator: torch.Generator | None = None) -> None:
        """k-means each level on the residuals of z [N, D] left by the levels before it."""
        residual = z.detach()
        for m in range(self.levels):
            self.codebooks[m] = kmeans(residual, self.codebook_size, self.kmeans_iters, generator)
            residual = residual - self.codebooks[m][_nearest(residual, self.codebooks[m])[0][:, 0]]
        self.unused_steps.zero_()
        self.initialized.fill_(True)

    @torch.no_grad()
    def _restart_dead(self, m: int, idx: Tensor, residual: Tensor) -> None:
        """Count steps since each codeword of level m was used; re-seed those past `dead_after`."""
        used = torch.zeros(self.codebook_size, dtype=torch.bool, device=idx.device)
        used[idx] = True
        self.unused_steps[m] = torch.where(used, 0, self.unused_steps[m] + 1)
        dead = (self.unused_steps[m] >= self.dead_after).nonzero().squeeze(1)
        if len(dead):
            n = residual.shape[0]
            pick = torch.randperm(n, device=idx.device)[: len(dead)] if len(dead) <= n \
                else torch.randint(n, (len(dead),), device=idx.device)
            self.codebooks[m, dead] = residual[pick].to(self.codebooks.dtype)
            self.unused_steps[m, dead] = 0

    @torch.no_grad()
    def encode(self, z: Tensor) -> Tensor:
        """Codes int64 [N, L] of z [N, D]; never changes the codebooks."""
        return self.trace(z)["codes"]

    def decode_codes(self, codes: Tensor) -> Tensor:
        """Sum of the chosen codewords: codes int64 [N, L] -> [N, D]."""
        level = torch.arange(self.levels, device=codes.device)
        return self.codebooks[level, codes].sum(1)                            # [N, L, D] -> [N, D]

    def _levels(self, z: Tensor, codes: Tensor | None = None):
        """Per level m: (residual r_m [N, D], chosen and runner-up codewords (idx, dist) [N, <= 2]); r_{m+1}
        subtracts the chosen one: the nearest, or `codes[:, m]` when codes [N, L] are given (balanced codes).
        The one recursion behind `trace` and `residuals`."""
        residual = z
        for m in range(self.levels):
            idx, dist = _nearest(residual, self.codebooks[m])
            if codes is not None:
                chosen = codes[:, m]
                d = sq_dist(residual, self.codebooks[m])                           # [N, K]
                other = d.scatter(1, chosen[:, None], float("inf")).min(1)
                idx = torch.stack([chosen, other.indices], 1)[:, :idx.shape[1]]
                dist = torch.stack([d.gather(1, chosen[:, None])[:, 0], other.values], 1)[:, :idx.shape[1]]
            yield residual, idx, dist
            residual = residual - self.codebooks[m][idx[:, 0]]

    @torch.no_grad()
    def residuals(self, z: Tensor) -> Tensor:
        """What each level quantizes [L, N, D]: r_1 = z, r_{m+1} = r_m - its chosen codeword of level m."""
        return torch.stack([r for r, _, _ in self._levels(z)])

    @torch.no_grad()
    def trace(self, z: Tensor, codes: Tensor | None = None) -> dict[str, Tensor]:
        """Per level, what was chosen (the nearest codeword, or `codes` [N, L]) and the best alternative: the raw
        material of explanations.

        Returns codes, dist (squared distance of the residual to its codeword), runner_up and runner_up_dist
        (the second-nearest codeword; -1 / inf when codebook_size = 1), each [N, L], and residual_norm
        [N, L + 1].
        """
        out: dict[str, list[Tensor]] = {k: [] for k in ("codes", "dist", "runner_up", "runner_up_dist")}
        norms = []
        for m, (residual, idx, dist) in enumerate(self._levels(z, codes)):
            if idx.shape[1] == 1:
                idx = torch.cat([idx, torch.full_like(idx, -1)], 1)
                dist = torch.cat([dist, torch.full_like(dist, float("inf"))], 1)
            for key, value in zip(out, (idx[:, 0], dist[:, 0], idx[:, 1], dist[:, 1]), strict=True):
                out[key].append(value)
            norms.append(residual.norm(dim=-1))
            if m == self.levels - 1:
                norms.append((residual - self.codebooks[m][idx[:, 0]]).norm(dim=-1))
        return {**{k: torch.stack(v, 1) for k, v in out.items()}, "residual_norm": torch.stack(norms, 1)}

    def usage(self, codes: Tensor) -> list[float]:
        """Share of codewords used per level by codes [N, L]."""
        return code_usage(codes, self.codebook_size)

    def perplexity(self, codes: Tensor) -> list[float]:
        """Effective number of codewords per level, exp(entropy)."""
        return code_perplexity(codes, self.codebook_size)
