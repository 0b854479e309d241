"""The Rec-ID generator (MMGRec §4.3): an encoder over the user's history, a decoder over Rec-ID tokens.

Encoder input: the user's training items (a set, at most `max_history`), embedded with the tokenizer's item
representations (`item_emb="graph"`: frozen, projected to D, plus a learned per-item offset that starts at zero)
or with learned embeddings only (`"learned"`, the paper's "Emb w/o"), and the user's representation as one more
token (`user_token`; not in the paper: it gives the decoder the user directly). Position information:
relation-aware self-attention (`pe="relation"`), sinusoidal encodings (`"sinusoidal"`) or nothing (`"none"`).
Decoder: Transformer layers (`attention.DecoderLayer`); token t of level d has its own embedding and the
next-token head of level d scores only level d's range, so a token means one thing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..checks import check_choice, check_positive, check_range
from .attention import DecoderLayer, EncoderLayer

PES = ("relation", "sinusoidal", "none")
ITEM_EMBS = ("graph", "learned")


@dataclass(frozen=True)
class GeneratorConfig:
    """The generator's architecture; how it is trained is `train.TrainingConfig`, how it decodes `DecodingConfig`."""

    dim: int = 64                   # D
    heads: int = 2
    encoder_layers: int = 1
    decoder_layers: int = 1
    dropout: float = 0.1
    max_history: int = 50           # N: longer histories are sampled (training) or subsampled by a fixed hash
    user_token: bool = True         # the user's representation as one more memory token (not in the paper)
    pe: str = "relation"
    item_emb: str = "graph"

    def __post_init__(self):
        check_positive(self, "dim", "heads", "encoder_layers", "decoder_layers", "max_history")
        check_range(self, "dropout", 0.0, 1.0, high_open=True)
        check_choice(self, "pe", PES)
        check_choice(self, "item_emb", ITEM_EMBS)
        if self.dim % self.heads:
            raise ValueError(f"dim={self.dim} must be divisible by heads={self.heads}")


def sinusoidal(n: int, dim: int) -> Tensor:
    """[n, dim] the Transformer's fixed position encodings."""
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(n, dim)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq[: dim // 2])
    return pe


class RecIDGenerator(nn.Module):
    """history [B, N] (item id + 1, 0 = padding), users [B] -> next-token log-probabilities per Rec-ID level."""

    def __init__(self, config: GeneratorConfig, item_vectors: Tensor, user_vectors: Tensor, vocab: tuple[int, ...]):
        super().__init__()
        d = config.dim
        self.config, self.vocab = config, tuple(int(v) for v in vocab)
        self.register_buffer("user_vectors", user_vectors.float())         # [U, F_u], for the relation scalars
        self.item_table = nn.Embedding(len(item_vectors), d)
        if config.item_emb == "graph":
            self.register_buffer("item_vectors", item_vectors.float())     # [I, F], frozen
            self.item_proj = nn.Linear(item_vectors.shape[1], d)
            nn.init.zeros_(self.item_table.weight)                         # a learned offset, starting at 0
        else:
            nn.init.normal_(self.item_table.weight, std=0.1)
        self.empty = nn.Parameter(torch.zeros(d))           # stands in for an empty history (one-item users)
        self.user_proj = nn.Linear(user_vectors.shape[1], d) if config.user_token else None
        self.register_buffer("positions", sinusoidal(config.max_history, d), persistent=False)
        relation = config.pe == "relation"
        self.encoder = nn.ModuleList(EncoderLayer(d, config.heads, user_vectors.shape[1], config.dropout, relation)
                                     for _ in range(config.encoder_layers))
        self.encoder_norm = nn.LayerNorm(d)
        self.bos = nn.Parameter(torch.randn(d) * 0.1)
        self.tokens = nn.ModuleList(nn.Embedding(v, d) for v in self.vocab)
        self.level = nn.Parameter(torch.randn(len(self.vocab), d) * 0.1)
        self.decoder = nn.ModuleList(DecoderLayer(d, config.heads, config.dropout)
                                     for _ in range(config.decoder_layers))
        self.decoder_norm = nn.LayerNorm(d)
        self.heads = nn.ModuleList(nn.Linear(d, v) for v in self.vocab)

    @property
    def depth(self) -> int:
        return len(self.vocab)

    def embed_items(self, history: Tensor) -> Tensor:
        """[B, N] shifted ids -> [B, N, D] (padding rows are masked later, their value does not matter)."""
        items = (history - 1).clamp_min(0)
        if self.config.item_emb == "graph":
            return self.item_proj(self.item_vectors[items]) + self.item_table(items)
        return self.item_table(items)

    def encode(self, history: Tensor, users: Tensor) -> tuple[Tensor, Tensor]:
        """Memory [B, N, D] and its padding mask [B, N] (True = padding)."""
        pad = history == 0
        x = self.embed_items(history)
        if self.config.pe == "sinusoidal":
            x = x + self.positions[: x.shape[1]]
        user = self.user_vectors[users]
        if self.config.user_token:                                         # the user joins the memory
            x = torch.cat([self.user_proj(user)[:, None], x], 1)
            pad = torch.cat([torch.zeros_like(pad[:, :1]), pad], 1)
        else:                                                              # give empty histories one token
            empty = pad.all(1)
            x[:, 0] = torch.where(empty[:, None], self.empty, x[:, 0])
            pad = pad & ~(empty[:, None] & (torch.arange(pad.shape[1], device=pad.device) == 0))
        for layer in self.encoder:
            x = layer(x, pad, user)
        return self.encoder_norm(x), pad

    def decode(self, memory: Tensor, pad: Tensor, prefix: Tensor) -> Tensor:
        """Hidden states [B, W, d + 1, D] after BOS and each of W prefixes per user [B, W, d] (causal)."""
        b, w, d = prefix.shape
        steps = [self.bos.expand(b, w, -1)] + [self.tokens[j](prefix[..., j]) for j in range(d)]
        x = torch.stack(steps, 2) + self.level[: d + 1]
        for layer in self.decoder:
            x = layer(x, memory, pad)
        return self.decoder_norm(x)

    def next_log_probs(self, memory: Tensor, pad: Tensor, prefix: Tensor) -> Tensor:
        """log p(token at level d | history, prefix) [B, W, V_d] for W prefixes per user [B, W, d]."""
        d = prefix.shape[-1]
        return F.log_softmax(self.heads[d](self.decode(memory, pad, prefix)[:, :, -1]).float(), -1)

    def loss(self, history: Tensor, users: Tensor, targets: Tensor) -> Tensor:
        """Teacher-forced cross-entropy of the target Rec-IDs [B, T], averaged over tokens."""
        memory, pad = self.encode(history, users)
        hidden = self.decode(memory, pad, targets[:, None, :-1])[:, 0]       # [B, T, D]
        return sum(F.cross_entropy(self.heads[j](hidden[:, j]).float(), targets[:, j])
                   for j in range(self.depth)) / self.depth

    @torch.no_grad()
    def sequence_log_probs(self, history: Tensor, users: Tensor, rec_ids: Tensor) -> Tensor:
        """log p(rec_id | history) [B, C] for every candidate row of rec_ids [C, T] (exact scoring, small C)."""
        memory, pad = self.encode(history, users)
        targets = rec_ids.expand(len(users), -1, -1)                         # [B, C, T]
        hidden = self.decode(memory, pad, targets[..., :-1])                 # [B, C, T, D]
        return sum(F.log_softmax(self.heads[j](hidden[:, :, j]).float(), -1).gather(2, targets[..., j:j + 1])[..., 0]
                   for j in range(self.depth))
