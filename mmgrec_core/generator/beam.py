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

A level's mixture sums are matrix products over its vocabulary, with each beam's children laid out one of three
ways by how many there are: child by child where they are few (`children_mixture`), on rows padded to the most
children of a beam where that is under half the vocabulary (`mixture`), and over the whole vocabulary, -inf off
the children, where it is more (`vocabulary_mixture`). On balanced 3 x 256 tries a prefix has about 3 children at
the third level of 100k items, 19 at the second of 6k, 185 at the second of 1M. At the last choice, where every
child holds one item, a beam with a single valid child is not decoded (its child has q = 1) and the cache is not
carried on.
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


class SeenPrefixes:
    """The trie prefixes all of whose items a user has seen in training, per depth, for a batch of users: the
    children beam search must not choose, as they could only end in training items. A user has few training
    items, so there are few of these (at most one per item and depth), and clearing them from a level's children
    costs (these) x (beams) instead of a lookup per child (at 100k items, 256 users and 20 beams, the second
    level's 630k children: 8.3 -> 0.3 ms). Each level works out its own depth, so a search that stops early
    (`finished`) never computes the deeper ones."""

    def __init__(self, trie: PrefixTrie, seen: UserItems, users: Tensor):
        rows, items = (t.to(trie.items.device) for t in seen.pairs_of(users))
        # each seen item's place in trie order, sorted per user: then its prefixes at every depth are sorted too
        key = torch.sort(rows * len(trie.items) + trie.place[items]).values
        self.trie, self.rows, self.leaf_pos = trie, key // len(trie.items), key % len(trie.items)

    def children_of(self, depth: int, prefix: Tensor) -> tuple[Tensor, Tensor]:
        """The children at depth + 1 of the beams' prefixes [B, W] at `depth` under which the beam's user has seen
        every item: (beam row in the flat [B * W], child id)."""
        trie, n = self.trie, self.trie.num_prefixes(depth + 1)
        key, count = torch.unique_consecutive(self.rows * n + trie.prefix_at(depth + 1, self.leaf_pos),
                                              return_counts=True)
        rows, nodes = key // n, key % n
        start, end = trie.items_under(depth + 1, nodes)
        full = count == end - start
        rows, nodes = rows[full], nodes[full]                                    # [F]
        parent = trie.parent_of(depth, nodes)
        hit, beam = (prefix[rows] == parent[:, None]).nonzero(as_tuple=True)   # [F, W]: which beams hold it
        return rows[hit] * prefix.shape[1] + beam, nodes[hit]


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
    fully_seen = SeenPrefixes(trie, seen, users) if seen is not None else None
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
        first, count = trie.child_ranges(d, prefix.reshape(-1))           # [B*W]: each beam's children
        rows = user_rows.repeat_interleave(w)
        final = trie.num_prefixes(d + 1) == len(trie.items)     # the last choice: every child holds one item
        if final:     # a beam with one valid child gives it q = 1 whatever its state; no later level reads the cache
            many = count > 1
            state = model.decode_next(memory, pad, None if last is None else last[many], rows[many],
                                      [[kv[many] for kv in layer] for layer in cache], memory_kv)
            hidden = state.new_zeros(b * w, state.shape[1]).index_put_((many,), state)
        else:
            hidden = model.decode_next(memory, pad, last, rows, cache, memory_kv)    # [B*W, D]
        comp = model.memory_logits(memory, d, component_items)            # [B, M, V]
        flat_w = log_w.reshape(b * w, -1)
        v = comp.shape[2]
        seen_row, seen_child = fully_seen.children_of(d, prefix) if fully_seen is not None else (None, None)
        entries = int(count.sum())
        if 0 < entries and entries * comp.shape[1] < b * w * v:          # [E, M] terms fewer than [B*W, V]
            # every candidate child in one flat list: its beam row, token, trie id, prefix part, score; a user's
            # are together, from offset[user] on, and `grid` [B, X] holds each user's scores for the top-k
            row, child, token, row_start = trie.listed(d, first, count, entries)
            base = model.token_logits(hidden[row], d, token)              # [E]
            if model.config.cooccurrence:
                base = base + model.evidence(d, mass, row // w, child[:, None])[:, 0].float()
            cand, log_z = children_mixture(base, comp, flat_w, row, token, w)
            if seen_row is not None:                                      # what may be chosen
                cand[row_start[seen_row] + seen_child - first[seen_row]] = float("-inf")
            per_user = count.view(b, w).sum(1)                            # a user's children follow each other
            offset = per_user.cumsum(0) - per_user
            user = row // w
            grid = cand.new_full((b, max(int(per_user.max()), 1)), float("-inf"))
            grid = grid.index_put_((user, torch.arange(entries, device=device) - offset[user]), cand)
            scores, pick = grid.topk(min(beam, grid.shape[1]), 1)        # [B, W']
            entry = (offset[:, None] + pick).clamp_max(entries - 1)       # an empty slot may point past its user
            picked, token, child, chosen = row[entry], token[entry], child[entry], base[entry]
        elif 2 * int(count.max()) >= v:       # most of the vocabulary: scored over it, without a per-child layout
            nodes, node_of_row = prefix.view(-1).unique(return_inverse=True)   # the beams' distinct prefixes
            table = trie.child_table(d, nodes)                             # [U, V]: child ids, -1 = not valid
            off = torch.where(table < 0, float("-inf"), 0.0)[node_of_row]  # float rows: cheaper than a bool mask
            base = model.prefix_logits(hidden, d).add_(off)                # [B*W, V], -inf off the children
            if model.config.cooccurrence:
                base = base + model.evidence(d, mass, rows, table[node_of_row]).float()
            cand, log_z = vocabulary_mixture(base, comp, flat_w, count)    # [B*W, V], [B*W, M]
            if seen_row is not None:
                cand[seen_row, trie.next_token[d][seen_child]] = float("-inf")
            scores, pick = cand.view(b, w * v).topk(min(beam, w * v), 1)  # [B, W']
            picked, token = user_rows[:, None] * w + pick // v, pick % v
            child, chosen = table[node_of_row[picked], token], base[picked, token]
        else:
            children, child, valid = trie.padded(d, first, count)         # [B*W, C]: what q_j normalises over
            c = children.shape[1]
            base = model.prefix_logits(hidden, d)                          # [B*W, V]
            if model.config.cooccurrence:        # a prefix part like base: added at each beam's children
                evidence = model.evidence(d, mass, rows, child).float()
                base = base.scatter_add(1, children, evidence.masked_fill(~valid, 0.0))
            cand, log_z = mixture(base, comp, flat_w, children, valid)    # [B*W, C], [B*W, M]
            if seen_row is not None:
                cand[seen_row, seen_child - first[seen_row]] = float("-inf")
            scores, pick = cand.view(b, w * c).topk(min(beam, w * c), 1)  # [B, W']
            picked = user_rows[:, None] * w + pick // c
            token, child = children[picked, pick % c], child[picked, pick % c]
            chosen = base[picked, token]
        dead = torch.isneginf(scores)                                     # empty slots: -1, token 0, parent 0
        picked = torch.where(dead, user_rows[:, None] * w, picked)
        parent, token = picked - user_rows[:, None] * w, torch.where(dead, 0, token)
        prefix = torch.where(dead, -1, child)
        if not final:          # chosen: the prefix part of z_j(token), each beam's row of `base`
            log_w = flat_w[picked] - log_z[picked] + chosen[..., None] + comp[user_rows[:, None], :, token]
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
        node = trie.prefix_at(d + 1, first)                                  # its prefix at depth d + 1
        tokens = torch.cat([tokens, torch.where(dead, 0, trie.next_token[d][node])[..., None]], 2)
        prefix = torch.where(dead, -1, node)
        if steps is not None:
            steps.append(BeamStep(tokens=tokens.clone(), scores=scores.clone()))
    return tokens, prefix


def mixture(base: Tensor, comp: Tensor, log_w: Tensor, children: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
    """Each child's log-probability under the mixture, log sum_j w_j q_j(c) [R, C], and each component's
    normaliser over the valid children, log Z_j = log sum_c e^{z_j(c)} [R, M] (0 on a row without children).

    z_j(c) = base[r, c] + comp[g, j, c] (`RecIDGenerator.level_logits`; R = G x W rows, W beams per group) and
    log_w [R, M] the beams' component log-weights; each row's valid children come first, as
    `PrefixTrie.children` pads them. The sums run over the level's vocabulary (`_vocabulary_sums`), with
    e^base scattered from the children and the mixture read back at them.
    """
    neg = float("-inf")
    alive = valid[:, :1]                                                           # children come first
    kid_base = base.gather(1, children)                                            # [R, C]
    top_b = kid_base.masked_fill(~valid, neg).amax(1, keepdim=True).clamp_min(-1e30)   # [R, 1]; finite if dead
    kid_eb = (kid_base - top_b).exp_().masked_fill_(~valid, 0.0)
    eb = torch.zeros_like(base).scatter_add_(1, children, kid_eb)                 # [R, V], 0 off the children
    mix, shift, log_z = _vocabulary_sums(eb, top_b, comp, log_w, alive)
    cand = mix.gather(1, children).log_().add_(kid_base).add_(shift)               # [R, C]: the children alone
    # an underflow shows as -inf (a child) or nan (a normaliser of 0): not a finite sum over the row's children
    bad = alive[:, 0] & ~torch.isfinite(cand.sum(1))
    cand = cand.masked_fill_(~valid, neg)
    if bool(bad.any()):
        rows = bad.nonzero()[:, 0]
        kids = children[rows]                                                          # [n, C]
        z = base[rows].gather(1, kids)[:, None] + comp[rows // (len(base) // len(comp))].gather(
            2, kids[:, None].expand(-1, comp.shape[1], -1))
        cand[rows], log_z[rows] = _exact(z.masked_fill(~valid[rows, None], neg), log_w[rows])
    return cand, log_z


def vocabulary_mixture(base: Tensor, comp: Tensor, log_w: Tensor, count: Tensor) -> tuple[Tensor, Tensor]:
    """`mixture` where the beams' children are most of the vocabulary (a prefix at the second level of a 3 x 256
    trie of 1M items has about 185 of 256): base [R, V] is -inf off each row's count [R] children, and cand
    [R, V] comes out -inf there, so no per-child layout is built, gathered or scattered."""
    alive = (count > 0)[:, None]
    top_b = base.amax(1, keepdim=True).clamp_min(-1e30)                            # [R, 1]; finite if dead
    mix, shift, log_z = _vocabulary_sums((base - top_b).exp_(), top_b, comp, log_w, alive)
    log_mix = mix.log_()
    # an underflow, as in `mixture`, tested over the whole row: an off-child one is a false alarm that `_exact`
    # settles, and a float sum costs a tenth of counting the finite children (0.9 ms at [5,120 x 256])
    bad = alive[:, 0] & ~torch.isfinite(log_mix.sum(1))
    cand = log_mix.add_(base).add_(shift)                                          # [R, V]
    if bool(bad.any()):
        rows = bad.nonzero()[:, 0]
        cand[rows], log_z[rows] = _exact(base[rows, None] + comp[rows // (len(base) // len(comp))], log_w[rows])
    return cand, log_z


def _vocabulary_sums(eb: Tensor, top_b: Tensor, comp: Tensor, log_w: Tensor, alive: Tensor
                     ) -> tuple[Tensor, Tensor, Tensor]:
    """The mixture's two sums as batched matrix products over the vocabulary: eb [R, V] = e^(base - top_b), 0
    off each row's children, alive [R, 1] the rows with children. Returns (mix [R, V], shift [R, 1], log Z [R,
    M]) with log sum_j w_j q_j(c) = log mix[r, c] + base[r, c] + shift[r] at the children.

    As e^{z_j(c)} = e^{base(c)} e^{comp_j(c)}, Z = e^base . (e^comp)^T, and the mixture is
    e^base(c) sum_j (w_j / Z_j) e^{comp_j(c)}. Nothing of size R x M x V is formed, so the cost follows
    W x M x V per group whatever the children per beam. Each factor is shifted by its maximum; a row where a
    normaliser or a valid child still underflows float32 (a logit about 87 below the largest) is recomputed
    exactly in log space by the caller (`_exact`), so no valid item is ever lost (none did on the shipped run's
    users).
    """
    r, v = eb.shape
    g, m, _ = comp.shape
    w = r // g
    top_c = comp.amax(2, keepdim=True)                                             # [G, M, 1]
    ec = (comp - top_c).exp_()                                                     # [G, M, V]
    top_c = top_c.view(g, 1, m).expand(g, w, m).reshape(r, m)
    zs = torch.bmm(eb.view(g, w, v), ec.transpose(1, 2)).view(r, m)                # Z_j / e^(top_b + top_c)
    log_z = torch.where(alive, zs.log() + top_b + top_c, 0.0)
    a = torch.where(alive, log_w - log_z + top_c, float("-inf"))                   # log (w_j / Z_j) e^top_c
    shift = a.amax(1, keepdim=True).clamp_min(-1e30)
    mix = torch.bmm((a - shift).exp_().view(g, w, m), ec).view(r, v)               # [R, V]
    return mix, shift, log_z


def _exact(z: Tensor, log_w: Tensor) -> tuple[Tensor, Tensor]:
    """The mixture in log space from z_j(c) [n, M, X] (-inf off the children) and log_w [n, M]: (cand [n, X],
    log Z [n, M]); for the few rows where the factorised sums underflow."""
    log_z = z.logsumexp(2)
    return (log_w[:, :, None] + z - log_z[:, :, None]).logsumexp(1), log_z


def children_mixture(base: Tensor, comp: Tensor, log_w: Tensor, row: Tensor, token: Tensor, w: int
                     ) -> tuple[Tensor, Tensor]:
    """`mixture` where the prefixes have few children, listed one by one: child e is token[e] of row row[e] (E
    of them, each row's together), base [E] its prefix part. Returns cand [E] and log Z [R, M] (0 on a row
    without children).

    The terms are [E, M] instead of [R, V] and [R, M] products over the vocabulary: on the last levels of a
    balanced 3 x 256 trie a prefix has about 3 children, not 256. z_j(c) is formed for every child and every sum is
    in log space, so nothing underflows.
    """
    g, m, v = comp.shape
    r = len(log_w)
    z = base[:, None] + comp.transpose(1, 2).reshape(g * v, m).index_select(0, row // w * v + token)   # [E, M]
    top = z.new_full((r, m), float("-inf")).scatter_reduce_(0, row[:, None].expand(-1, m), z, "amax")
    sums = z.new_zeros(r, m).index_add_(0, row, (z - top[row]).exp())
    log_z = torch.where(sums > 0, sums.log() + top, 0.0)
    return (log_w[row] - log_z[row] + z).logsumexp(1), log_z


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
