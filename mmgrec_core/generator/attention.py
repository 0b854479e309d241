"""Relation-aware self-attention (MMGRec §4.3.2, Eq. 14-19): attention over an *unordered* history.

A user's history is a set, so absolute positions mean nothing. Instead every head adds a user-specific relation
term to its scores and values:

    scores_h = (E Wq_h)(E Wk_h)^T / sqrt(d_h)  +  s_q(u) s_k(u) (E Uq)(E Uk)^T / sqrt(D)
    values_h = E Wv_h  +  [s_v(u) E Uv]_h

with per-head Wq/Wk/Wv (the usual D -> H x d_h split), Uq/Uk/Uv (D x D) shared by all heads, and s_*(u) one
scalar per user from a small MLP on the user's representation. The user part costs three scalars per user,
which is the paper's point. The shared value term is split across heads like the per-head values, so the
concatenated heads carry E (Wv + Wv_u) as in Eq. 19.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F


def group_rows(rows: Tensor, groups: int) -> tuple[Tensor, int]:
    """Where each row goes in a [groups, W] grid of its group: (place [R], the rank of each row among its group's
    rows in order; W, the most rows a group has). `grid[rows, place]` then holds every row once, the rest padding.
    rows int64 [R] in 0..groups-1, any order, at least one."""
    order = rows.argsort(stable=True)
    counts = torch.bincount(rows, minlength=groups)
    place = torch.empty_like(rows)
    place[order] = torch.arange(len(rows), device=rows.device) - (counts.cumsum(0) - counts)[rows[order]]
    return place, int(counts.max())


def one_query_attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """softmax(q k^T / sqrt(d_h)) v [R, H, 1, d_h] for one query per row, q [R, H, 1, d_h], over k, v [R, H, t, d_h]:
    as elementwise products, twice as fast as SDPA's kernel at beam search's shapes (thousands of rows, t <= 4)."""
    if k.shape[2] == 1:                                                            # itself alone
        return v
    scores = (q * k).sum(-1, keepdim=True) * q.shape[-1] ** -0.5                # [R, H, t, 1]
    return (scores.softmax(2) * v).sum(2, keepdim=True)


class RelationAwareSelfAttention(nn.Module):
    """Multi-head self-attention with an optional user-specific relation term (`relation=False`: plain MHA) and
    optional similarity-reweighted values (`sim_buckets` = K > 0, BBQRec §4.2, Eq. 17):

        y_i = sum_j alpha_ij (e_sim[b_ij] * (W_V e_j))

    with b_ij the bucket of the two items' cosine similarity (`RecIDGenerator.similarity_buckets`, K + 2 rows:
    0..K and one for pairs with the user token) and e_sim a learned D-vector per bucket, split across heads like
    the values. It starts at ones (plain attention); the paper starts every embedding in (0, 0.01)."""

    def __init__(self, dim: int, heads: int, user_dim: int, relation: bool = True, sim_buckets: int = 0):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} must be divisible by heads {heads}")
        self.dim, self.heads = dim, heads
        self.qkv = nn.Linear(dim, 3 * dim)                                # per-head Wq, Wk, Wv
        self.out = nn.Linear(dim, dim)
        self.relation = relation
        if relation:
            self.u_qkv = nn.Linear(dim, 3 * dim, bias=False)              # shared Uq, Uk, Uv
            self.user_scale = nn.Sequential(nn.Linear(user_dim, dim), nn.ReLU(), nn.Linear(dim, 3))
        self.sim = nn.Embedding(sim_buckets + 2, dim) if sim_buckets else None
        if self.sim is not None:
            nn.init.ones_(self.sim.weight)

    def forward(self, e: Tensor, pad: Tensor, user: Tensor, buckets: Tensor | None = None) -> Tensor:
        """e [B, N, D] history embeddings, pad bool [B, N] (True = padding), user [B, user_dim], buckets int64
        [B, N, N] (with `sim_buckets`) -> [B, N, D]."""
        b, n, d = e.shape
        q, k, v = self._heads(self.qkv(e)).unbind(0)                      # [B, H, N, d_h] each
        mask = torch.zeros(b, 1, 1, n, dtype=e.dtype, device=e.device).masked_fill(pad[:, None, None], -math.inf)
        if self.relation:
            s_q, s_k, s_v = self.user_scale(user).unbind(-1)              # [B] each
            uq, uk, uv = self.u_qkv(e).chunk(3, -1)                       # [B, N, D] each
            rel = (s_q * s_k)[:, None, None] * (uq @ uk.transpose(1, 2)) / math.sqrt(d)
            mask = mask + rel[:, None]                                    # [B, 1, N, N], shared by heads
            v = v + self._split(s_v[:, None, None] * uv)
        if self.sim is None:
            x = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        else:
            if buckets is None:
                raise ValueError("similarity-reweighted attention needs the pairs' buckets")
            alpha = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]) + mask, -1)   # [B, H, N, N]
            scale = self.sim(buckets).view(b, n, n, self.heads, -1).permute(0, 3, 1, 2, 4)   # [B, H, N, N, d_h]
            x = (alpha[..., None, :] @ (scale * v[:, :, None]))[..., 0, :]   # [B, H, N, d_h]; 1.4x the sum's speed
        return self.out(x.transpose(1, 2).reshape(b, n, d))

    def _split(self, x: Tensor) -> Tensor:
        """[B, N, D] -> [B, H, N, d_h]."""
        b, n, _ = x.shape
        return x.view(b, n, self.heads, -1).transpose(1, 2)

    def _heads(self, qkv: Tensor) -> Tensor:
        """[B, N, 3D] -> [3, B, H, N, d_h]."""
        b, n, _ = qkv.shape
        return qkv.view(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)


class Dropout(nn.Module):
    """nn.Dropout whose CPU mask comes from numpy's PCG64 bits instead of torch's bernoulli_.

    torch's CPU bernoulli_ costs about 7 ns per element, a quarter of a demo TIGER training step; PCG64 bytes cost
    about 0.5 ns each, and one dropout of a demo step's shapes runs forward and backward 2-4x faster. Each call
    seeds its bit stream with one draw from torch's generator, so `torch.manual_seed` still makes a run repeatable.
    p is rounded to a multiple of 1 / 65536 (each element keeps when 16 random bits are at least p x 65536), and
    kept elements are scaled by 1 / (1 - p) of that p. Elsewhere than on the CPU, torch's own dropout.
    """

    def __init__(self, p: float):
        super().__init__()
        self.p = p
        self.threshold = round(p * 65536)
        self.scale = 65536 / (65536 - self.threshold) if self.threshold < 65536 else 0.0

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.threshold == 0:
            return x
        if x.device.type != "cpu":
            return F.dropout(x, self.p, True)
        seed = int(torch.randint(2**62, (1,)))
        bits = np.frombuffer(np.random.default_rng(seed).bytes(2 * x.numel()), np.uint16)
        keep = torch.from_numpy((bits >= self.threshold).astype(np.float32)).view(x.shape)
        return x * keep.mul_(self.scale).to(x.dtype)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class EncoderLayer(nn.Module):
    """Pre-norm Transformer encoder layer around `RelationAwareSelfAttention`."""

    def __init__(self, dim: int, heads: int, user_dim: int, dropout: float, relation: bool, sim_buckets: int = 0):
        super().__init__()
        self.attn = RelationAwareSelfAttention(dim, heads, user_dim, relation, sim_buckets)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), Dropout(dropout), nn.Linear(4 * dim, dim))
        self.drop = Dropout(dropout)

    def forward(self, x: Tensor, pad: Tensor, user: Tensor, buckets: Tensor | None = None) -> Tensor:
        x = x + self.drop(self.attn(self.norm1(x), pad, user, buckets))
        return x + self.drop(self.ff(self.norm2(x)))


class DecoderLayer(nn.Module):
    """Pre-norm decoder layer over R prefixes x [R, t, D], row r reading the memory of user `rows[r]`.

    Training decodes every held-out target of a user against that user's one memory, and beam search decodes W
    beams per user, so the memory's keys and values are computed once per user [B, N, D] and each
    user's rows read them together (`_cross`).
    """

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)                                # causal self-attention
        self.self_out = nn.Linear(dim, dim)
        self.query = nn.Linear(dim, dim)                                  # cross-attention
        self.key_value = nn.Linear(dim, 2 * dim)
        self.cross_out = nn.Linear(dim, dim)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), Dropout(dropout), nn.Linear(4 * dim, dim))
        self.drop = Dropout(dropout)

    def forward(self, x: Tensor, memory: Tensor, pad: Tensor, rows: Tensor, cache: list | None = None,
                memory_kv: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """x [R, t, D], memory [B, N, D], pad bool [B, N] (True = padding), rows int64 [R] -> [R, t, D].

        With `cache` (this layer's [keys, values] of the earlier positions, [] before the first), x is the one
        newest position [R, 1, D]: it attends to the cached positions and itself, and its keys and values are
        appended. Beam search then computes each level's position once instead of re-running the prefix, and
        passes the memory's keys and values (`memory_kv`), which are the same at every level.
        """
        q, k, v = (self._split(p) for p in self.qkv(self.norm1(x)).chunk(3, -1))
        if cache is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            if x.shape[1] != 1:
                raise ValueError(f"a cached decoder step takes one position, got {x.shape[1]}")
            if cache:
                k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
            cache[:] = [k, v]
            y = one_query_attention(q, k, v)                              # the newest sees every earlier one
        x = x + self.drop(self.self_out(self._merge(y)))
        k, v = self.memory_kv(memory) if memory_kv is None else memory_kv
        x = x + self.drop(self.cross_out(self._merge(self._cross(self._split(self.query(self.norm2(x))), k, v,
                                                                  pad, rows))))
        return x + self.drop(self.ff(self.norm3(x)))

    def memory_kv(self, memory: Tensor) -> tuple[Tensor, Tensor]:
        """The cross-attention's keys and values [B, H, N, d_h] of memory [B, N, D], per user."""
        k, v = self.key_value(memory).chunk(2, -1)
        return self._split(k), self._split(v)

    @staticmethod
    def _cross(q: Tensor, k: Tensor, v: Tensor, pad: Tensor, rows: Tensor) -> Tensor:
        """Cross-attention of queries q [R, H, t, d_h] (row r of user rows[r]) to per-user k, v [B, H, N, d_h].

        The queries are regrouped per user into [B, H, W t, d_h] (W the most rows any user has, the rest zeros)
        and read their user's keys directly. Queries do not interact, so this equals gathering k and v per row,
        without copying [R, H, N, d_h] keys and values forward and adding them back backward (training decodes up
        to 32 targets per user, beam search W beams per user). Where rows already are W consecutive rows per user
        (beam search) the grid is a view of q.
        """
        r, h, t, dh = q.shape
        b = len(k)
        if r == 0:
            return q
        regular = r % b == 0 and bool((rows.reshape(b, -1) == torch.arange(b, device=rows.device)[:, None]).all())
        if regular:
            place, w = None, r // b
            grid = q.view(b, w, h, t, dh)
        else:
            place, w = group_rows(rows, b)
            grid = q.new_zeros(b, w, h, t, dh).index_put((rows, place), q)  # [B, W, H, t, d_h]
        y = F.scaled_dot_product_attention(grid.transpose(1, 2).reshape(b, h, w * t, dh), k, v,
                                           attn_mask=(~pad)[:, None, None, :])
        y = y.view(b, h, w, t, dh).transpose(1, 2)
        return y.reshape(r, h, t, dh) if regular else y[rows, place]

    def _split(self, x: Tensor) -> Tensor:
        """[R, n, D] -> [R, H, n, d_h]."""
        r, n, d = x.shape
        return x.view(r, n, self.heads, d // self.heads).transpose(1, 2)

    @staticmethod
    def _merge(x: Tensor) -> Tensor:
        """[R, H, n, d_h] -> [R, n, D]."""
        r, h, n, d = x.shape
        return x.transpose(1, 2).reshape(r, n, h * d)
