"""The Rec-ID generator (MMGRec §4.3): an encoder over the user's history, a decoder over Rec-ID tokens, and an
output that mixes the history's own next-token distributions.

Encoder. The user's training items (a set, at most `max_history`) embedded with the tokenizer's item vectors
(`item_emb="graph"`: projected to D plus a learned per-item offset; `"learned"`: the offset only, the paper's
"Emb w/o"; `"codes"`: the sum of the item's Rec-ID token embeddings, tied with the decoder's, as TIGER reads
items), and a user token: the projected mean item vector of the *input* history (with `"codes"`, the projected
mean of the input's embeddings). (A user vector computed from all training items would contain the held-out
targets; the model then learns to read them back and overfits.) Positions: relation-aware self-attention
(`pe="relation"`), sinusoidal encodings or nothing. `sim_buckets` > 0 adds BBQRec's similarity-reweighted
attention values (`attention.RelationAwareSelfAttention`).

Decoder. Pre-norm layers, causal over the Rec-ID prefix, cross-attending to the memory (`attention.DecoderLayer`).

Output: a mixture over the memory. Every memory position j (the user token and each history item) is a
component with its own next-token distribution, and the Rec-ID probability is the exact mixture

    q_j(c | prefix) = softmax over the valid children c of  (h_prefix . E_d[c] + b_d[c] + (m_j U_d) . E_d[c]
                                                              + A_d[item_j, c])
    p(rec_id | history) = sum_j pi_j prod_d q_j(c_d | prefix),     pi = softmax_j(w . m_j)

with h the decoder state, m the memory, E_d the level-d token embeddings (tied with the decoder's inputs) and
A_d a full-rank table (`transition`): everything else is rank D, so "after item j comes token c" could only be
said through a D-dimensional bottleneck, which is what EASE's item-item matrix does not have. With `cooccurrence`
every component's logits are beta z_j(c) + a_d log p_u(child), with p_u the users' co-occurrence distribution
under the child's trie node (`cooccurrence.py`): what other users had beside the input's items, a product of the
network's distribution and item-based collaborative filtering that factorises exactly along the trie. beta is 1
in training and chosen on validation afterwards (`train.choose_network_weight`).
A user with several interests puts probability on each of them *additively*, as the sum over j does; one softmax
of one decoder state multiplies its evidence instead and favours what all interests share (on the demo world the
mixture lifts validation Recall@20 of the same network by about a sixth: README, "what we tried"). Only valid
children share a level's probability, so p sums to one over the catalog and beam search with a beam as wide
as the catalog is exact (`beam.py`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..checks import check_choice, check_positive, check_range
from .attention import DecoderLayer, EncoderLayer, group_rows

PES = ("relation", "sinusoidal", "none")
ITEM_EMBS = ("graph", "learned", "codes")


@dataclass(frozen=True)
class GeneratorConfig:
    """The generator's architecture; how it is trained is `train.TrainingConfig`, how it decodes `DecodingConfig`."""

    dim: int = 64                   # D
    heads: int = 2
    encoder_layers: int = 1
    decoder_layers: int = 1
    dropout: float = 0.2
    max_history: int = 100          # N: longer histories are sampled (training) or subsampled by a fixed hash
    pe: str = "relation"
    item_emb: str = "graph"
    mixture: bool = True            # the output mixes every memory position; False: the user token's alone
    transition: bool = True         # per level a full-rank (history item, token) logit table; needs the mixture
    sim_buckets: int = 0            # K > 0: BBQRec's bucketed cosine similarity of item vectors scales the values
    cooccurrence: bool = True       # each level's logits add a_d log p_u(child) of the co-occurrence distribution

    def __post_init__(self):
        check_positive(self, "dim", "heads", "encoder_layers", "decoder_layers", "max_history")
        check_positive(self, "sim_buckets", allow_zero=True)
        check_range(self, "dropout", 0.0, 1.0, high_open=True)
        check_choice(self, "pe", PES)
        check_choice(self, "item_emb", ITEM_EMBS)
        if self.dim % self.heads:
            raise ValueError(f"dim={self.dim} must be divisible by heads={self.heads}")


def _shared(children: Tensor, mask: Tensor) -> bool:
    """Whether every row of children / mask [R, C] is the same (the root level: one flat vocabulary)."""
    return bool((children == children[:1]).all()) and bool((mask == mask[:1]).all())


def sinusoidal(n: int, dim: int) -> Tensor:
    """[n, dim] the Transformer's fixed position encodings."""
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(n, dim)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq[: dim // 2])
    return pe


class RecIDGenerator(nn.Module):
    """history [B, N] (item id + 1, 0 = padding) -> a distribution over Rec-IDs, one level at a time."""

    def __init__(self, config: GeneratorConfig, item_vectors: Tensor, vocab: tuple[int, ...],
                 item_tokens: Tensor | None = None):
        """item_vectors [I, F] (the tokenizer's), vocab the size of each level, item_tokens [I, T] the items'
        Rec-IDs (needed by `item_emb="codes"`)."""
        super().__init__()
        d = config.dim
        self.config, self.vocab = config, tuple(int(v) for v in vocab)
        self.register_buffer("item_vectors", item_vectors.float())         # [I, F], frozen
        f = item_vectors.shape[1]
        if config.item_emb == "codes":
            if item_tokens is None or item_tokens.shape != (len(item_vectors), len(self.vocab)):
                raise ValueError(f"item_emb='codes' needs the items' Rec-IDs [{len(item_vectors)}, {len(vocab)}]")
            self.register_buffer("item_tokens", torch.as_tensor(item_tokens, dtype=torch.long), persistent=False)
            self.user_proj = nn.Linear(d, d)
        else:
            self.item_table = nn.Embedding(len(item_vectors), d)
            nn.init.normal_(self.item_table.weight, std=0.02 if config.item_emb == "graph" else 0.1)
            if config.item_emb == "graph":                                  # projection + a small learned offset
                self.item_proj = nn.Linear(f, d)
            self.user_proj = nn.Linear(f, d)
        self.register_buffer("positions", sinusoidal(config.max_history, d), persistent=False)
        relation = config.pe == "relation"
        self.encoder = nn.ModuleList(EncoderLayer(d, config.heads, f, config.dropout, relation, config.sim_buckets)
                                     for _ in range(config.encoder_layers))
        self.encoder_norm = nn.LayerNorm(d)
        self.bos = nn.Parameter(torch.randn(d) * 0.02)
        self.level = nn.Parameter(torch.randn(len(self.vocab), d) * 0.02)
        self.tokens = nn.ModuleList(nn.Embedding(v, d) for v in self.vocab)
        for emb in self.tokens:
            nn.init.normal_(emb.weight, std=0.02)
        self.token_bias = nn.ParameterList(nn.Parameter(torch.zeros(v)) for v in self.vocab)
        self.decoder = nn.ModuleList(DecoderLayer(d, config.heads, config.dropout)
                                     for _ in range(config.decoder_layers))
        self.decoder_norm = nn.LayerNorm(d)
        self.component = nn.ModuleList(nn.Linear(d, d) for _ in self.vocab)     # U_d
        self.prior = nn.Linear(d, 1)                                             # w
        if config.cooccurrence:     # a_d starts at 1: the network starts on top of item-based CF, exactly factorised
            self.evidence_scale = nn.Parameter(torch.ones(len(self.vocab)))
            self.evidence_smooth = nn.Parameter(torch.tensor(math.log(0.1)))       # log kappa
            # beta, the weight of the network's logits against the evidence: 1 in training, then chosen on
            # validation (`train.choose_network_weight`); not a parameter, but saved with the weights
            self.register_buffer("network_weight", torch.ones(()))
        # A_d [I + 1, V_d]: row item + 1 is what that history item adds to each level-d token's logit, row 0 the
        # user token's. Zero at the start, so training begins from the low-rank model. Its rows belong to the
        # mixture's history components, so without the mixture there are none.
        self.has_transition = config.transition and config.mixture
        self.transition = nn.ParameterList(nn.Parameter(torch.zeros(len(item_vectors) + 1, v))
                                           for v in (self.vocab if self.has_transition else ()))

    @property
    def depth(self) -> int:
        return len(self.vocab)

    # ---- encoder ---------------------------------------------------------------------------------------------

    def encode(self, history: Tensor) -> tuple[Tensor, Tensor]:
        """Memory [B, N + 1, D] (the user token first) and its padding mask [B, N + 1] (True = padding)."""
        pad = history == 0
        items = (history - 1).clamp_min(0)
        vectors = F.embedding(items, self.item_vectors)                    # [B, N, F]
        if self.config.item_emb == "codes":
            codes = self.item_tokens[items]                                # [B, N, T]
            x = sum(self.tokens[d](codes[..., d]) for d in range(self.depth))
        else:
            x = self.item_table(items)
            if self.config.item_emb == "graph":
                x = x + self.item_proj(vectors)
        buckets = self.similarity_buckets(vectors, pad) if self.config.sim_buckets else None
        return self.encode_embedded(x, pad, vectors, buckets)

    def encode_embedded(self, x: Tensor, pad: Tensor, vectors: Tensor, buckets: Tensor | None = None
                        ) -> tuple[Tensor, Tensor]:
        """`encode` from embedded positions x [B, N, D] (pad [B, N]; vectors [B, N, F] their item vectors, which
        the user-specific attention scales read): the user token first, then the encoder layers."""
        keep = (~pad).float()[..., None]
        user = (vectors * keep).sum(1) / keep.sum(1).clamp_min(1)          # [B, F]: from the input only
        first = (x * keep).sum(1) / keep.sum(1).clamp_min(1) if self.config.item_emb == "codes" else user
        if self.config.pe == "sinusoidal":
            x = x + self.positions[: x.shape[1]]
        x = torch.cat([self.user_proj(first)[:, None], x], 1)
        pad = torch.cat([torch.zeros_like(pad[:, :1]), pad], 1)
        for layer in self.encoder:
            x = layer(x, pad, user, buckets)
        return self.encoder_norm(x), pad

    def similarity_buckets(self, vectors: Tensor, pad: Tensor) -> Tensor:
        """int64 [B, N + 1, N + 1]: BBQRec's Eq. 15, round((cos(v_i, v_j) + 1) / 2 x K) in 0..K, for every pair
        of memory positions; pairs with the user token (position 0) get their own bucket K + 1."""
        k = self.config.sim_buckets
        v = F.normalize(vectors, dim=-1)
        cos = (v @ v.transpose(1, 2)).clamp(-1, 1)                           # [B, N, N]
        inner = torch.round((cos + 1) / 2 * k).long()
        return F.pad(inner, (1, 0, 1, 0), value=k + 1)

    def log_prior(self, memory: Tensor, pad: Tensor) -> Tensor:
        """log pi [B, M]: how much each component speaks for the user (-inf on padding).

        With `mixture` the components are the M = N + 1 memory positions; without it the user token is the only
        one (M = 1, log pi = 0): one softmax of one state, as in a plain decoder, at a cost that does not grow
        with the history.
        """
        if not self.config.mixture:
            return torch.zeros(len(memory), 1, device=memory.device)
        return F.log_softmax(self.prior(memory)[..., 0].float().masked_fill(pad, float("-inf")), -1)

    def components(self, memory: Tensor, level: int) -> Tensor:
        """m_j U_d [B, M, D]: each component's offset direction at level d (M as in `log_prior`)."""
        return self.component[level](memory if self.config.mixture else memory[:, :1])

    def component_items(self, history: Tensor) -> Tensor:
        """[B, M] the item (id + 1) behind each component, 0 for the user token: the rows of the tables A_d."""
        if not self.config.mixture:
            return torch.zeros(len(history), 1, dtype=history.dtype, device=history.device)
        return F.pad(history, (1, 0))

    # ---- decoder ---------------------------------------------------------------------------------------------

    def decode(self, memory: Tensor, pad: Tensor, prefix: Tensor, rows: Tensor, start: int = 0) -> Tensor:
        """Hidden states [R, d + 1, D] after BOS and each token of prefixes [R, d] of users `rows` [R]. With
        `start`, the prefix holds the tokens of levels start.. (a segment decoded alone, from BOS at that level)."""
        r, d = prefix.shape
        steps = [self.bos.expand(r, -1)] + [self.tokens[start + j](prefix[:, j]) for j in range(d)]
        x = torch.stack(steps, 1) + self.level[start: start + d + 1]
        for layer in self.decoder:
            x = layer(x, memory, pad, rows)
        return self.decoder_norm(x)

    def decode_next(self, memory: Tensor, pad: Tensor, last: Tensor | None, rows: Tensor, cache: list[list],
                    memory_kv: list[tuple[Tensor, Tensor]] | None = None) -> Tensor:
        """The decoder state [R, D] after one more token, `last` [R] (None: the BOS position), reusing the earlier
        positions' keys and values in `cache` (one list per decoder layer, all empty before BOS; updated in
        place) and, when given, the memory's (`memory_kv`). Equal to `decode(...)[:, -1]` of the whole prefix, at
        the cost of one position."""
        t = cache[0][0].shape[2] if cache[0] else 0                              # positions decoded so far
        x = self.bos.expand(len(rows), -1) if last is None else self.tokens[t - 1](last)
        x = (x + self.level[t])[:, None]                                         # [R, 1, D]
        for j, (layer, layer_cache) in enumerate(zip(self.decoder, cache)):
            x = layer(x, memory, pad, rows, layer_cache, memory_kv[j] if memory_kv else None)
        return self.decoder_norm(x)[:, 0]

    def memory_kv(self, memory: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Each decoder layer's cross-attention keys and values of memory [B, M, D]: what every decoding step of
        the same users reads (`decode_next`)."""
        return [layer.memory_kv(memory) for layer in self.decoder]

    def evidence(self, level: int, mass, rows: Tensor, child: Tensor) -> Tensor:
        """a_d log p_u(n) [R, C] of the child nodes `child` [R, C] (trie ids at depth level + 1, -1 = none) for the
        users `rows` [R] (rows of `mass`, a `cooccurrence.NodeMass`); added to every component's logits."""
        if mass is None:
            raise ValueError("this generator has cooccurrence=True: pass the users' co-occurrence mass "
                             "(CoOccurrence(seen).node_mass(history, users, trie))")
        return self.evidence_scale[level] * mass.log_p(level + 1, rows, child, self.evidence_smooth.exp())

    def step_logits(self, hidden: Tensor, level: int, components: Tensor, items: Tensor, children: Tensor,
                    mask: Tensor, evidence: Tensor | None = None) -> Tensor:
        """Unnormalised logits z_j(c) [R, M, C] of each mixture component over the prefixes' valid children
        `children` [R, C] (mask [R, C]); padding children get -1e9 rather than -inf, so a row without any (a dead
        beam slot, which beam search masks anyway) stays finite and nothing turns into NaN.

        hidden [R, D] are the prefixes' decoder states. components [G, M, D] and items [G, M] (`components`,
        `component_items`) belong to G groups of R / G consecutive rows: in beam search a group is one user's
        beams, whose components are then read once rather than copied per beam (elsewhere G = R).
        Only the children are scored, so the cost follows the trie's branching, not the catalog. `evidence` [R, C]
        (`evidence`) is added to every component's logits.
        """
        g, r, m = len(components), len(hidden), components.shape[1]
        w = r // g
        if r > 1 and _shared(children, mask):
            children, keep = children[0], mask[0]                  # the root level, a flat vocabulary: shared
            e = self.tokens[level](children)                                        # [C, D]
            z = hidden @ e.T + self.token_bias[level][children]                     # [R, C]
            z = z.view(g, w, 1, -1) + (components @ e.T)[:, None]                   # [G, W, M, C]
        else:
            keep = mask.view(g, w, 1, -1)
            e = self.tokens[level](children)                                        # [R, C, D]
            z = (hidden[:, None] * e).sum(-1) + self.token_bias[level][children]    # [R, C]
            z = z.view(g, w, 1, -1) + torch.einsum("gmd,gwcd->gwmc", components, e.view(g, w, *e.shape[1:]))
        if self.has_transition:
            z = z + self._transition(level, items, children, w)
        z = z.float()
        if evidence is not None:
            z = self.network_weight * z + evidence.view(g, w, 1, -1)
        return z.masked_fill(~keep, -1e9).view(r, m, -1)

    def level_logits(self, hidden: Tensor, level: int, components: Tensor, items: Tensor) -> tuple[Tensor, Tensor]:
        """The two parts of `step_logits` over level d's whole vocabulary, z_j(c) = base[r, c] + comp[g, j, c]:
        the prefixes' h.E_d[c] + b_d[c] (base [R, V_d], `prefix_logits`) and each component's part (comp
        [G, M, V_d], `component_logits`; G groups of R / G rows as in `step_logits`). Neither depends on the
        prefix's children, and a component's part not on the beam, so beam search mixes them with matrix products
        instead of forming z [R, M, C] (`beam.mixture`)."""
        return self.prefix_logits(hidden, level), self.component_logits(components, level, items)

    def prefix_logits(self, hidden: Tensor, level: int) -> Tensor:
        """h.E_d[c] + b_d[c] [R, V_d] of decoder states hidden [R, D] (times beta with `cooccurrence`)."""
        return self._weighted(torch.addmm(self.token_bias[level], hidden, self.tokens[level].weight.T))

    def token_logits(self, hidden: Tensor, level: int, tokens: Tensor) -> Tensor:
        """`prefix_logits` at one token per row, tokens [R] -> [R]: a level's few children, without the rest."""
        return self._weighted((hidden * self.tokens[level](tokens)).sum(-1) + self.token_bias[level][tokens])

    def component_logits(self, components: Tensor, level: int, items: Tensor) -> Tensor:
        """(m_j U_d).E_d[c] + A_d[item_j, c] [G, M, V_d] of components [G, M, D] behind items [G, M]."""
        comp = components @ self.tokens[level].weight.T
        if self.has_transition:                 # F.embedding reads whole rows 6x faster than indexing [I + 1, V_d]
            comp = comp + F.embedding(items, self.transition[level])
        return self._weighted(comp)

    def memory_logits(self, memory: Tensor, level: int, items: Tensor) -> Tensor:
        """`component_logits` of `components(memory, level)` with U_d folded into E_d: one [D, V_d] product per
        call instead of a [G M, D] x [D, D] one per component, and the product added in place to the A_d rows
        (beam search, once per level and batch)."""
        u, e = self.component[level], self.tokens[level].weight
        memory = memory if self.config.mixture else memory[:, :1]
        g, m, d = memory.shape
        folded, bias = u.weight.T @ e.T, u.bias @ e.T                               # [D, V], [V]
        if not self.has_transition:
            return self._weighted(torch.addmm(bias, memory.reshape(g * m, d), folded).view(g, m, -1))
        comp = F.embedding(items, self.transition[level]).add_(bias)                 # [G, M, V], float32
        comp.view(g * m, -1).addmm_(memory.reshape(g * m, d).to(comp.dtype), folded.to(comp.dtype))
        return self._weighted(comp)

    def _weighted(self, logits: Tensor) -> Tensor:
        """float logits, times beta with `cooccurrence` (the evidence is added by the caller, unweighted)."""
        return self.network_weight * logits.float() if self.config.cooccurrence else logits.float()

    def step_log_probs(self, hidden: Tensor, level: int, components: Tensor, items: Tensor, children: Tensor,
                       mask: Tensor, evidence: Tensor | None = None) -> Tensor:
        """log q_j(c | prefix) [R, M, C]: `step_logits` normalised over each prefix's valid children."""
        z = self.step_logits(hidden, level, components, items, children, mask, evidence)
        return z - z.logsumexp(-1, keepdim=True)

    def _transition(self, level: int, items: Tensor, children: Tensor, w: int) -> Tensor:
        """A_d[item_j, c] [G, W, M, C] for components items [G, M] and children [G * W, C] (or [C], shared by
        all rows; then [G, 1, M, C]). One row per target (W = 1) reads the flat table by index, without a
        [R, M, V_d] copy of whole rows; a user's W beams share the user's M rows, copied once and then gathered."""
        table = self.transition[level]                                          # [I + 1, V]
        if w == 1 or children.dim() == 1:
            flat = items[..., None] * table.shape[1] + children[..., None, :]
            return table.view(-1)[flat][:, None]                                # [G, 1, M, C]
        g, m, c = len(items), items.shape[1], children.shape[1]
        rows = table[items][:, None].expand(g, w, m, table.shape[1])            # [G, W, M, V]: a view
        return rows.gather(3, children.view(g, w, 1, c).expand(g, w, m, c))

    def log_likelihood(self, history: Tensor, rows: Tensor, targets: Tensor, parents: Tensor, trie,
                       mass=None) -> Tensor:
        """log p(target | history) [n] for Rec-IDs targets [n, T] of users rows [n] (indices into history).

        `parents` [n, T] are the targets' prefix ids at depths 0..T-1 (`PrefixTrie.item_paths`), which say
        whose children share each level's probability. `mass` (a `cooccurrence.NodeMass` of the histories' users)
        is needed with `cooccurrence`.
        """
        memory, pad = self.encode(history)
        return self.decode_log_likelihood(memory, pad, self.component_items(history), rows, targets, parents, trie,
                                          mass=mass)

    def segment_log_likelihood(self, memory: Tensor, pad: Tensor, targets: Tensor, levels: range) -> Tensor:
        """log p(targets[:, levels] | memory) [B]: the tokens of one segment of the Rec-IDs targets [B, T]
        generated alone, from BOS at its first level, each level a softmax over that level's whole vocabulary
        (the output of `step_logits`, with no history items). MGR-LF++'s alignment target (§3.3): one modality's
        ID by itself, with no other modality's tokens before it and no trie (which, after a first modality's
        codes, would leave the later ones no choice)."""
        rows = torch.arange(len(memory), device=memory.device)
        hidden = self.decode(memory, pad, targets[:, levels.start:levels.stop - 1], rows, levels.start)
        log_w = self.log_prior(memory, pad)                                         # [B, M]
        items = torch.zeros(log_w.shape, dtype=torch.long, device=memory.device)
        for j, d in enumerate(levels):
            base, comp = self.level_logits(hidden[:, j], d, self.components(memory, d), items)
            z = base[:, None] + comp                                                # [B, M, V_d]
            log_w = log_w + z[rows, :, targets[:, d]] - z.logsumexp(2)
        return log_w.logsumexp(1)

    def decode_log_likelihood(self, memory: Tensor, pad: Tensor, items: Tensor, rows: Tensor, targets: Tensor,
                              parents: Tensor, trie, mass=None) -> Tensor:
        """`log_likelihood` from an encoded memory [B, M, D] (items [B, M] behind its components):
        log sum_j pi_j prod_d q_j(c_d | prefix) [n].

        A token whose prefix has one valid child has q_j = 1 for every component: it adds exactly 0 and no
        gradient, so only the rows of a level that have a choice are scored, and the decoder runs only up to the
        last such level. Late-fusion and BBQRec Rec-IDs are 10-13 tokens, of which 4-5 ever branch on demo.
        """
        log_w = self.log_prior(memory, pad)[rows]                                  # [n, M]
        scored = []                      # (level, children, child ids, mask, the rows with a choice; None: all)
        for d in range(self.depth):
            children, child, mask = trie.children(d, parents[:, d])
            choice = mask.sum(1) > 1
            if bool(choice.any()):
                scored.append((d, children, child, mask, None if bool(choice.all()) else choice.nonzero()[:, 0]))
        if not scored:
            return log_w.logsumexp(1)
        hidden = self.decode(memory, pad, targets[:, :scored[-1][0]], rows)        # [n, last + 1, D]
        for d, children, child, mask, keep in scored:
            h, r, target = hidden[:, d], rows, targets[:, d]
            if keep is not None:
                h, r, target, children, child, mask = (x[keep] for x in (h, r, target, children, child, mask))
            evidence = self.evidence(d, mass, r, child) if self.config.cooccurrence else None
            slot = (children == target[:, None]).float().argmax(1)                   # the target among them
            components = self.components(memory, d)                                 # [B, M, D]
            if self.config.mixture and _shared(children, mask):
                logq = self._shared_target_log_q(h, d, components, items, r, children[0], mask[0], evidence, slot)
            else:
                logq = self.step_log_probs(h, d, components[r], items[r], children, mask, evidence)
                logq = logq[torch.arange(len(slot), device=slot.device), :, slot]              # [n', M]
            log_w = log_w + logq if keep is None else log_w.index_add(0, keep, logq)
        return log_w.logsumexp(1)

    def _shared_target_log_q(self, hidden: Tensor, level: int, components: Tensor, items: Tensor, rows: Tensor,
                             children: Tensor, keep: Tensor, evidence: Tensor | None, slot: Tensor) -> Tensor:
        """log q_j(target) [n, M] when every row has the same children [C] (keep [C]), as at the root: what
        `step_log_probs` gives at the targets' `slot` [n], without its [n, M, C] logits.

        The components' part of the logits belongs to the user (components [B, M, D], items [B, M]), so only
        it is formed, [B, M, C], a user's targets sharing it. Each row's normaliser
        log Z_j = log sum_c e^{base(r, c) + comp(u, j, c)} is then a product of the two exponentials per user (as
        `beam.mixture` computes it), each shifted by its maximum; a row where it underflows float32 is recomputed
        in log space. On the demo world this takes a quarter off an MMGRec training step (110 -> 81 ms).
        """
        base, comp = self.level_logits(hidden, level, components, items)            # [n, V], [B, M, V]
        base, comp = base[:, children], comp[..., children]                        # [n, C], [B, M, C]
        if evidence is not None:
            base = base + evidence
        base = base.masked_fill(~keep, float("-inf"))
        top_b, top_c = base.amax(1, keepdim=True), comp.amax(2, keepdim=True)      # [n, 1], [B, M, 1]
        place, w = group_rows(rows, len(comp))
        grid = base.new_zeros(len(comp), w, base.shape[1]).index_put((rows, place), (base - top_b).exp())
        with torch.autocast(base.device.type, enabled=False):                      # float32 sums, also under AMP
            z = torch.bmm(grid, (comp - top_c).exp().transpose(1, 2))[rows, place]   # [n, M]
        log_z = z.clamp_min(torch.finfo(z.dtype).tiny).log() + top_b + top_c[rows, :, 0]
        under = (z == 0).any(1).nonzero()[:, 0]
        if len(under):
            log_z = log_z.index_put((under,), (base[under, None] + comp[rows[under]]).logsumexp(2))
        return base.gather(1, slot[:, None]) + comp[rows, :, slot] - log_z

    def loss(self, history: Tensor, rows: Tensor, targets: Tensor, parents: Tensor, trie, mass=None) -> Tensor:
        """Negative log-likelihood of the targets, per Rec-ID token (comparable across depths)."""
        return -self.log_likelihood(history, rows, targets, parents, trie, mass).mean() / self.depth
