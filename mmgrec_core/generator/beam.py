"""Constrained beam search over the Rec-ID trie, batched over users (MMGRec §4.4).

A beam's score is the log-probability of its prefix under the generator's mixture (`model.RecIDGenerator`):
each beam keeps one log-weight per mixture component, log pi_j + sum of log q_j over its tokens, and its score is
their log-sum-exp. So a beam as wide as the catalog returns exactly the top-K of full scoring. The trie only
removes candidates: a token is kept when it extends the prefix to a valid one *and* the new prefix still covers
at least one item the user has not seen in training. At the last level that is exactly "never recommend a
training item"; earlier it spends no beam slot on a branch that could only end in seen items.

Each beam keeps its decoder's self-attention keys and values (a KV cache that follows the beam when it is
extended), so a level decodes one position per beam instead of re-running the whole prefix; the memory's
cross-attention keys and values are computed once per search. Once every beam's prefix covers a single item its
remaining tokens are forced (probability 1), and the search stops there (`finished`): late-fusion and BBQRec
Rec-IDs of 10-13 tokens get there after about 4.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..checks import check_positive
from ..data.sampling import UserItems
from ..recid import PrefixTrie
from .cooccurrence import NodeMass
from .model import RecIDGenerator


@dataclass(frozen=True)
class DecodingConfig:
    # beam width B (at least the K asked for; a wider beam is used then). 50, not K = 20: with the co-occurrence
    # evidence an item's mass is spread over many first-level prefixes, and a beam of 20 prunes some of the top 20
    # (validation Recall@20 +0.7% demo, +4.7% MovieLens, +5.0% sparse world; 100 adds nothing more)
    beam: int = 50
    rerank: int = 100               # candidates the mmgrec+dense row re-ranks (generator/rerank.py); 0 = no row

    def __post_init__(self):
        check_positive(self, "beam")
        check_positive(self, "rerank", allow_zero=True)


@dataclass(frozen=True)
class BeamStep:
    """The beams alive after choosing the token of one level: tokens [B, W, d], log-probs [B, W] (-inf = empty)."""

    tokens: Tensor
    scores: Tensor


@dataclass(frozen=True)
class BeamResult:
    items: Tensor                    # int64 [B, K], best first, -1 where fewer than K unseen items exist
    scores: Tensor                   # float [B, K] sequence log-probabilities (-inf with -1)
    steps: list[BeamStep] | None     # one per level when asked for


class SeenCounts:
    """How many of each user's training items lie under a trie prefix, looked up per (row, prefix) in batch."""

    def __init__(self, trie: PrefixTrie, seen: UserItems, users: Tensor):
        rows, items = seen.pairs_of(users)
        rank = torch.empty_like(trie.items)
        rank[trie.items] = torch.arange(len(trie.items), device=rank.device)
        leaf_pos = rank[items.to(rank.device)]
        self.trie, self.keys, self.counts = trie, [], []
        for d in range(trie.depth + 1):
            node = torch.searchsorted(trie.bounds[d], leaf_pos, right=True) - 1
            key, count = torch.unique(rows.to(node.device) * trie.num_prefixes(d) + node, return_counts=True)
            self.keys.append(key)
            self.counts.append(count)

    def unseen(self, depth: int, rows: Tensor, prefixes: Tensor) -> Tensor:
        """Number of unseen items under each prefix [E] (at `depth`) for the given batch rows [E]."""
        start, end = self.trie.items_under(depth, prefixes)
        keys, counts = self.keys[depth], self.counts[depth]
        key = rows * self.trie.num_prefixes(depth) + prefixes
        if len(keys) == 0:
            return end - start
        pos = torch.searchsorted(keys, key).clamp_max(len(keys) - 1)
        return end - start - torch.where(keys[pos] == key, counts[pos], 0)


@torch.no_grad()
def beam_search(model: RecIDGenerator, history: Tensor, trie: PrefixTrie, k: int, beam: int,
                seen: UserItems | None = None, users: Tensor | None = None, return_steps: bool = False,
                mass: NodeMass | None = None) -> BeamResult:
    """Top-k items per history row [B, N] by sequence log-probability, searching `beam` (>= k) prefixes per level.

    With `seen` (and the rows' `users` [B]), the users' training items are never returned. A generator with
    `cooccurrence` needs the rows' `mass` (`CoOccurrence.node_mass`).
    """
    if beam < k:
        raise ValueError(f"beam width {beam} must be at least k = {k}")
    device = history.device
    b = len(history)
    memory, pad = model.encode(history)
    counts = SeenCounts(trie, seen, users) if seen is not None else None
    prefix = torch.zeros(b, 1, dtype=torch.long, device=device)            # trie node ids, -1 = empty slot
    log_w = model.log_prior(memory, pad)[:, None]                          # [B, W, N]: per-component weights
    scores = torch.zeros(b, 1, device=device)
    tokens = torch.zeros(b, 1, 0, dtype=torch.long, device=device)
    user_rows = torch.arange(b, device=device)
    component_items = model.component_items(history)                     # [B, M]
    cache = [[] for _ in model.decoder]                                  # self-attention keys/values per layer
    memory_kv = model.memory_kv(memory)                                  # cross-attention's, the same every level
    last = None                                                          # the token each beam chose last
    steps = []
    for d in range(trie.depth):
        if finished(trie, d, prefix):         # each beam's prefix holds one item: its remaining tokens are forced
            tokens, prefix = complete(trie, d, prefix, tokens, steps if return_steps else None, scores)
            break
        w = prefix.shape[1]
        flat = prefix.reshape(-1)
        children, child, valid = trie.children(d, flat)                   # [B*W, C]: what q_j normalises over
        c = children.shape[1]
        allowed = valid.clone()                                           # ... and what may be chosen
        if counts is not None:
            row, slot = valid.nonzero(as_tuple=True)
            empty = counts.unseen(d + 1, row // w, child[row, slot]) == 0
            allowed[row[empty], slot[empty]] = False
        hidden = model.decode_next(memory, pad, last, user_rows.repeat_interleave(w), cache, memory_kv)  # [B*W, D]
        base, comp = model.level_logits(hidden, d, model.components(memory, d), component_items)
        if model.config.cooccurrence:            # a prefix part like base: added at each beam's children
            evidence = model.evidence(d, mass, user_rows.repeat_interleave(w), child).float()
            base = base.scatter_add(1, children, evidence.masked_fill(~valid, 0.0))
        flat_w = log_w.reshape(b * w, -1)
        cand, log_z = mixture(base, comp, flat_w, children, valid)       # [B*W, C], [B*W, N]
        cand = cand.masked_fill(~allowed, float("-inf")).view(b, w * c)
        scores, pick = cand.topk(min(beam, w * c), 1)                    # [B, W']
        parent, slot = pick // c, pick % c
        picked = parent + user_rows[:, None] * w                          # rows of the flat [B*W] arrays
        token = children[picked, slot]
        chosen = base[picked, token][..., None] + comp[user_rows[:, None], :, token]      # z_j(token) [B, W', N]
        log_w = flat_w[picked] - log_z[picked] + chosen                   # [B, W', N]: + log q_j(chosen token)
        prefix = torch.where(torch.isneginf(scores), -1, child[picked, slot])
        last = token.reshape(-1)
        cache = [[kv[picked.reshape(-1)] for kv in layer] for layer in cache]   # follow each beam's parent
        tokens = torch.cat([tokens[user_rows[:, None], parent], token[..., None]], 2)
        if return_steps:
            steps.append(BeamStep(tokens=tokens.clone(), scores=scores.clone()))
    items = trie.item_of_leaf(prefix[:, :k])
    out_scores = scores[:, :k]
    if items.shape[1] < k:
        fill = k - items.shape[1]
        items = torch.nn.functional.pad(items, (0, fill), value=-1)
        out_scores = torch.nn.functional.pad(out_scores, (0, fill), value=float("-inf"))
    return BeamResult(items=items, scores=out_scores, steps=steps if return_steps else None)


def finished(trie: PrefixTrie, depth: int, prefix: Tensor) -> bool:
    """Whether every beam's prefix [B, W] at `depth` (-1 = empty slot) covers a single item. Each of its remaining
    tokens is then its prefix's only valid child, whose probability is 1 under every component: the beams' scores
    and order are final, and the search can stop (late-fusion and BBQRec Rec-IDs of 10-13 tokens get there after
    about 4)."""
    start, end = trie.items_under(depth, prefix.clamp_min(0))
    return bool(((end - start == 1) | (prefix < 0)).all())


def complete(trie: PrefixTrie, depth: int, prefix: Tensor, tokens: Tensor, steps: list | None, scores: Tensor
             ) -> tuple[Tensor, Tensor]:
    """The `finished` beams' whole Rec-IDs: (tokens [B, W, T], leaf ids [B, W]; -1 and token 0 on empty slots),
    appending one `BeamStep` per remaining level to `steps` when given."""
    dead = prefix < 0
    first = trie.bounds[depth][prefix.clamp_min(0)]                        # the one item's place in trie order
    for d in range(depth, trie.depth):
        node = torch.searchsorted(trie.bounds[d + 1], first, right=True) - 1  # its prefix at depth d + 1
        tokens = torch.cat([tokens, torch.where(dead, 0, trie.next_token[d][node])[..., None]], 2)
        prefix = torch.where(dead, -1, node)
        if steps is not None:
            steps.append(BeamStep(tokens=tokens.clone(), scores=scores.clone()))
    return tokens, prefix


def mixture(base: Tensor, comp: Tensor, log_w: Tensor, children: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
    """Each child's log-probability under the mixture, log sum_j w_j q_j(c) [R, C], and each component's
    normaliser over the valid children, log Z_j = log sum_c e^{z_j(c)} [R, M] (0 on a row without children).

    z_j(c) = base[r, c] + comp[g, j, c] (`RecIDGenerator.level_logits`; R = G x W rows, W beams per group) and
    log_w [R, M] the beams' component log-weights. As e^{z_j(c)} = e^{base(c)} e^{comp_j(c)}, both sums are
    batched matrix products over the level's vocabulary: Z = e^base . (e^comp)^T, and the mixture is
    e^base(c) sum_j (w_j / Z_j) e^{comp_j(c)}. Nothing of size R x M x C is formed, so the cost follows
    W x M x V per group whatever the children per beam. Each factor is shifted by its maximum; a row where a
    normaliser or a valid child still underflows float32 (a logit about 87 below the largest) is recomputed
    exactly in log space, so no valid item is ever lost (none did on the shipped run's users).
    """
    r, v = base.shape
    g, m, _ = comp.shape
    w = r // g
    neg = float("-inf")
    on = torch.zeros(r, v + 1, dtype=torch.bool, device=base.device)
    on = on.scatter_(1, torch.where(valid, children, v), True)[:, :v]             # [R, V] the valid children
    alive = valid.any(1)
    masked = base.masked_fill(~on, neg)
    top_b = masked.amax(1, keepdim=True).clamp_min(-1e30)                         # [R, 1]; finite on dead rows
    eb = (masked - top_b).exp()                                                    # [R, V], 0 off the children
    top_c = comp.amax(2, keepdim=True)                                             # [G, M, 1]
    ec = (comp - top_c).exp()                                                      # [G, M, V]
    top_c = top_c.view(g, 1, m).expand(g, w, m).reshape(r, m)
    zs = torch.bmm(eb.view(g, w, v), ec.transpose(1, 2)).view(r, m)                # Z_j / e^(top_b + top_c)
    log_z = torch.where(alive[:, None], zs.log() + top_b + top_c, 0.0)
    a = torch.where(alive[:, None], log_w - log_z + top_c, neg)                    # log (w_j / Z_j) e^top_c
    shift = a.amax(1, keepdim=True).clamp_min(-1e30)
    mix = torch.bmm((a - shift).exp().view(g, w, m), ec).view(r, v)                # [R, V]
    kid_eb, kid_mix = eb.gather(1, children), mix.gather(1, children)             # [R, C]: the children alone
    cand = ((kid_eb * kid_mix).log() + top_b + shift).masked_fill(~valid, neg)
    bad = alive & (((zs == 0) & torch.isfinite(log_w)).any(1) | (torch.isneginf(cand) & valid).any(1))
    if bool(bad.any()):
        rows = bad.nonzero()[:, 0]
        kids = children[rows]                                                          # [n, C]
        z = base[rows].gather(1, kids)[:, None] + comp[rows // w].gather(2, kids[:, None].expand(-1, m, -1))
        z = z.masked_fill(~valid[rows, None], neg)                                     # [n, M, C]
        log_z[rows] = z.logsumexp(2)
        cand[rows] = (log_w[rows, :, None] + z - log_z[rows, :, None]).logsumexp(1).masked_fill(~valid[rows], neg)
    return cand, log_z


@torch.no_grad()
def sequence_log_probs(model: RecIDGenerator, history: Tensor, trie: PrefixTrie, tokens: Tensor,
                       mass: NodeMass | None = None) -> Tensor:
    """log p(rec_id | history) [B, C] of the Rec-IDs `tokens` [C, T] (rows of the table): exact scoring
    (`mass` of the rows' users with `cooccurrence`)."""
    b, c = len(history), len(tokens)
    parents = [torch.zeros(c, dtype=torch.long, device=tokens.device)]
    for d in range(trie.depth - 1):
        parents.append(trie.step(d, parents[-1], tokens[:, d]))
    parents = torch.stack(parents, 1)                                          # [C, T]: prefix id per depth
    rows = torch.arange(b, device=history.device).repeat_interleave(c)
    out = model.log_likelihood(history, rows, tokens.repeat(b, 1), parents.repeat(b, 1), trie, mass)
    return out.view(b, c)
