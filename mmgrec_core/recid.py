"""Rec-IDs: semantic codes (c1..cM) plus a collision token p that makes every ID unique (MMGRec §4.2.2).

Items sharing a semantic prefix form a collision group; p is the item's 0-based rank in its group, by training
popularity (descending, ties by item id: stable across runs) or, as in TIGER, by a seeded random permutation.

`PrefixTrie` holds the valid Rec-IDs as tensors for constrained decoding. Items are kept sorted by token
tuple, so every prefix covers a contiguous range of that order; prefixes of length d are numbered
0..n_d - 1 in that order, and so are their children. Per depth d < T (T = M + 1 tokens) a CSR row
`indptr[d][j]:indptr[d][j + 1]` lists the children of prefix j; position q of the CSR *is* child id q at depth
d + 1, `next_token[d][q]` is the token leading there, and `keys[d][q] = parent * V_d + token` is sorted, so a
step is one searchsorted.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch import Tensor

from .arrays import group_ranks
from .files import atomic_write_bytes

COLLISIONS = ("popularity", "random")


def collision_tokens(codes: np.ndarray, popularity: np.ndarray, *, collision: str = "popularity",
                     seed: int = 0) -> np.ndarray:
    """Last token p [I]: each item's 0-based rank within the group of items sharing its codes [I, M]."""
    if collision not in COLLISIONS:
        raise ValueError(f"collision must be one of {COLLISIONS}, got {collision!r}")
    ids = np.arange(len(codes))
    if collision == "popularity":
        tiebreak = (ids, -np.asarray(popularity, np.int64))              # lexsort: last key is primary
    else:
        tiebreak = (np.random.default_rng(seed).permutation(len(codes)),)
    _, group = np.unique(codes, axis=0, return_inverse=True)
    order = np.lexsort(tiebreak + (group.ravel(),))
    return group_ranks(group.ravel(), order)[0]


@dataclass(frozen=True)
class PrefixTrie:
    """Valid Rec-ID prefixes as tensors; depth d = prefix length, 0 (root) .. T (whole IDs, the leaves)."""

    vocab: tuple[int, ...]           # V_d for d < T: width of the next-token mask at depth d
    indptr: tuple[Tensor, ...]       # d < T: int64 [n_d + 1], children of j = CSR rows indptr[j]:indptr[j+1]
    next_token: tuple[Tensor, ...]   # d < T: int64 [n_{d+1}], token from the parent to child q
    keys: tuple[Tensor, ...]         # d < T: int64 [n_{d+1}], parent * V_d + token, strictly increasing
    bounds: tuple[Tensor, ...]       # d <= T: int64 [n_d + 1], prefix j covers items[bounds[j]:bounds[j+1]]
    items: Tensor                    # int64 [I], item ids sorted by token tuple
    place: Tensor                    # int64 [I], where each item is in `items` (its inverse permutation)

    @classmethod
    def build(cls, tokens: np.ndarray, vocab: Sequence[int]) -> PrefixTrie:
        """Trie of unique token rows [I, T]; vocab[d] bounds the tokens at position d."""
        order = np.lexsort(tokens.T[::-1])
        s = tokens[order]                                                 # [I, T] sorted rows
        n, t = s.shape
        changed = np.zeros(n, bool)                         # does row i start a new prefix of length d?
        changed[0] = True
        bounds, indptr, next_token, keys = [np.array([0, n])], [], [], []
        for d in range(t):
            parent_of_row = np.cumsum(changed) - 1                        # prefix id at depth d of each row
            changed[1:] |= s[1:, d] != s[:-1, d]
            starts = np.flatnonzero(changed)                # first row of each depth-(d+1) prefix
            parent = parent_of_row[starts]                                # [n_{d+1}]
            indptr.append(np.r_[0, np.cumsum(np.bincount(parent, minlength=len(bounds[d]) - 1))])
            next_token.append(s[starts, d])
            keys.append(parent * vocab[d] + s[starts, d])
            bounds.append(np.r_[starts, n])
        place = np.empty_like(order)
        place[order] = np.arange(n)
        return cls(tuple(int(v) for v in vocab), _long(indptr), _long(next_token), _long(keys), _long(bounds),
                   *_long([order, place]))

    @property
    def depth(self) -> int:
        """T, the length of a whole Rec-ID."""
        return len(self.vocab)

    def num_prefixes(self, depth: int) -> int:
        return len(self.bounds[depth]) - 1

    def to(self, device: torch.device | str) -> PrefixTrie:
        return PrefixTrie(**{f.name: _move(getattr(self, f.name), device) for f in fields(self)})

    def valid_next(self, depth: int, prefix_ids: Tensor) -> Tensor:
        """bool [B, V_depth]: which tokens extend each prefix [B] to a valid one; all False for id -1."""
        return self.child_table(depth, prefix_ids) >= 0

    def child_table(self, depth: int, prefix_ids: Tensor) -> Tensor:
        """int64 [B, V_depth]: the child id each token leads to from each prefix [B], -1 where it is not valid
        (every token for id -1)."""
        tokens, child, mask = self.children(depth, prefix_ids)
        row, slot = mask.nonzero(as_tuple=True)
        out = torch.full((len(prefix_ids), self.vocab[depth]), -1, dtype=torch.long, device=tokens.device)
        out[row, tokens[row, slot]] = child[row, slot]
        return out

    def children(self, depth: int, prefix_ids: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The valid next tokens of each prefix [B], padded to the most children any of them has:
        (tokens int64 [B, C], child ids int64 [B, C], mask bool [B, C]); id -1 has none."""
        return self.padded(depth, *self.child_ranges(depth, prefix_ids))

    def child_ranges(self, depth: int, prefix_ids: Tensor) -> tuple[Tensor, Tensor]:
        """Each prefix's [B] children as a range of child ids: (the first int64 [B], how many int64 [B]); id -1
        has none."""
        indptr, ids = self.indptr[depth], prefix_ids.clamp_min(0)
        lo = indptr[ids]
        return lo, torch.where(prefix_ids >= 0, indptr[ids + 1] - lo, 0)

    def padded(self, depth: int, first: Tensor, count: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """`children` of the child ranges first, count [B] (`child_ranges`): one row per prefix, as wide as the
        most children."""
        width = max(int(count.max()) if len(count) else 0, 1)
        slot = torch.arange(width, device=first.device)
        mask = slot < count[:, None]
        child = (first[:, None] + slot).clamp_max_(len(self.next_token[depth]) - 1)
        return self.next_token[depth].take(child).masked_fill_(~mask, 0), child.masked_fill_(~mask, -1), mask

    def listed(self, depth: int, first: Tensor, count: Tensor, entries: int
               ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The same children one by one, in order, where `padded` would be mostly padding: (row [E], child id
        [E], token [E]) and where each row's children start in that list [B]; `entries` = count.sum()."""
        row_start = count.cumsum(0) - count
        row = torch.repeat_interleave(torch.arange(len(count), device=count.device), count, output_size=entries)
        child = first[row] + torch.arange(entries, device=count.device) - row_start[row]
        return row, child, self.next_token[depth][child], row_start

    def parent_of(self, depth: int, child_ids: Tensor) -> Tensor:
        """The prefix ids [B] at `depth` of children [B] at depth + 1 (read from their keys)."""
        return self.keys[depth][child_ids] // self.vocab[depth]

    def prefix_at(self, depth: int, positions: Tensor) -> Tensor:
        """The prefix ids [B] at `depth` that hold the items at `positions` [B] of `items` (trie order)."""
        return torch.searchsorted(self.bounds[depth], positions, right=True) - 1

    def step(self, depth: int, prefix_ids: Tensor, tokens: Tensor) -> Tensor:
        """Child ids [B] at depth + 1 reached by `tokens` [B] from `prefix_ids` [B]; -1 where invalid."""
        v, keys = self.vocab[depth], self.keys[depth]
        ok = (prefix_ids >= 0) & (tokens >= 0) & (tokens < v)
        key = prefix_ids.clamp_min(0) * v + tokens.clamp(0, v - 1)
        pos = torch.searchsorted(keys, key).clamp_max(len(keys) - 1)
        return torch.where(ok & (keys[pos] == key), pos, -1)

    def items_under(self, depth: int, prefix_ids: Tensor) -> tuple[Tensor, Tensor]:
        """[start, end) ranges [B] of `items` under each prefix."""
        return self.bounds[depth][prefix_ids], self.bounds[depth][prefix_ids + 1]

    def item_paths(self) -> Tensor:
        """int64 [I, T + 1]: each item's prefix id at every depth 0 (the root) .. T (its leaf)."""
        return torch.stack([self.prefix_at(d, self.place) for d in range(self.depth + 1)], 1)

    def item_of_leaf(self, leaf_ids: Tensor) -> Tensor:
        """Item ids [B] of leaves (depth T prefix ids); -1 stays -1."""
        return torch.where(leaf_ids >= 0, self.items[leaf_ids.clamp_min(0)], -1)


def _long(arrays: list[np.ndarray]) -> tuple[Tensor, ...]:
    return tuple(torch.as_tensor(a, dtype=torch.long) for a in arrays)


def _move(value, device):
    if isinstance(value, Tensor):
        return value.to(device)
    if isinstance(value, tuple) and value and isinstance(value[0], Tensor):
        return tuple(v.to(device) for v in value)
    return value


class RecIDTable:
    """Rec-IDs of all items: tokens [I, M + 1] = (c1..cM, p), unique rows, with trie and collision stats.

    Args:
        codes: int64 [I, M] semantic codes from the quantizer.
        popularity: int [I] training interaction counts (orders collision groups; summed in `tree_frame`).
        names: I item names.
        collision: "popularity" (MMGRec) or "random" (TIGER).
        seed: seed of the random order.
        codebook_size: vocabulary of c1..cM (default: largest code + 1); the generator's logits must match it.
    """

    def __init__(self, codes: np.ndarray, popularity: np.ndarray, names: Sequence[str], *,
                 collision: str = "popularity", seed: int = 0, codebook_size: int | None = None):
        codes = np.asarray(codes, np.int64)
        if codes.ndim != 2 or codes.size == 0 or np.shape(popularity) != (len(codes),):
            raise ValueError(f"codes must be a non-empty [items, levels] matrix and popularity [items], got "
                             f"shapes {codes.shape} and {np.shape(popularity)}")
        p = collision_tokens(codes, np.asarray(popularity), collision=collision, seed=seed)
        self._setup(np.column_stack([codes, p]), names, popularity, codebook_size, collision, seed)

    @classmethod
    def from_tokens(cls, tokens: np.ndarray, names: Sequence[str], *, popularity: np.ndarray | None = None,
                    codebook_size: int | None = None, collision: str = "given", seed: int = 0) -> RecIDTable:
        """A table from whole Rec-IDs [I, M + 1] (e.g. read back from a file); the rows must be unique."""
        table = cls.__new__(cls)
        table._setup(np.asarray(tokens, np.int64), names, popularity, codebook_size, collision, seed)
        return table

    def _setup(self, tokens, names, popularity, codebook_size, collision, seed) -> None:
        if tokens.ndim != 2 or tokens.shape[0] == 0 or tokens.shape[1] < 2:
            raise ValueError(f"tokens must be [items, levels + 1] with levels >= 1, got shape {tokens.shape}")
        n, m = tokens.shape[0], tokens.shape[1] - 1
        self.names = np.asarray(list(names), dtype=object)
        self.popularity = np.zeros(n, np.int64) if popularity is None else np.asarray(popularity, np.int64)
        if len(self.names) != n or self.popularity.shape != (n,):
            raise ValueError(f"{n} items but {len(self.names)} names and {len(self.popularity)} popularities")
        self.codebook_size = int(tokens[:, :m].max()) + 1 if codebook_size is None else int(codebook_size)
        if tokens.min() < 0 or tokens[:, :m].max() >= self.codebook_size:
            raise ValueError(f"codes must lie in [0, {self.codebook_size})")
        self.tokens, self.collision, self.seed = tokens, collision, seed              # [I, M + 1]
        self.trie = PrefixTrie.build(tokens, [self.codebook_size] * m + [self.max_p + 1])
        if self.trie.num_prefixes(m + 1) != n:
            raise ValueError(f"Rec-IDs are not unique: {n - self.trie.num_prefixes(m + 1)} repeated rows")
        # group size per item: the depth-M prefix range each item falls in, mapped back from sorted order
        bounds = self.trie.bounds[m].numpy()
        size_sorted = np.repeat(np.diff(bounds), np.diff(bounds))
        self.group_size = np.empty(n, np.int64)
        self.group_size[self.trie.items.numpy()] = size_sorted

    # ---- stats -------------------------------------------------------------------------------------------

    @property
    def num_items(self) -> int:
        return len(self.tokens)

    @property
    def levels(self) -> int:
        """M, the number of semantic tokens."""
        return self.tokens.shape[1] - 1

    @property
    def max_p(self) -> int:
        return int(self.tokens[:, -1].max())

    @property
    def collision_rate(self) -> float:
        """Share of items whose semantic prefix (c1..cM) is shared with another item."""
        return float((self.group_size > 1).mean())

    def largest_groups(self, n: int = 10) -> pd.DataFrame:
        """The n largest collision groups: prefix, size, items (in p order), names."""
        bounds = self.trie.bounds[self.levels].numpy()
        sizes = np.diff(bounds)
        top = np.argsort(-sizes, kind="stable")[:n]
        items = self.trie.items.numpy()
        rows = [(tuple(int(t) for t in self.tokens[items[bounds[g]], :-1]), int(sizes[g]),
                 items[bounds[g]:bounds[g + 1]].tolist(), self.names[items[bounds[g]:bounds[g + 1]]].tolist())
                for g in top]
        return pd.DataFrame(rows, columns=["prefix", "size", "items", "names"])

    # ---- lookups -----------------------------------------------------------------------------------------

    def rec_id(self, item: int) -> tuple[int, ...]:
        return tuple(int(t) for t in self.tokens[item])

    def _walk(self, prefix: Sequence[int]) -> int:
        """Prefix id at depth len(prefix), or -1."""
        node = torch.zeros(1, dtype=torch.long)
        for d, tok in enumerate(prefix):
            node = self.trie.step(d, node, torch.tensor([int(tok)]))
        return int(node)

    def item_of(self, rec_id: Sequence[int]) -> int | None:
        if len(rec_id) != self.levels + 1:
            return None
        leaf = self._walk(rec_id)
        return None if leaf < 0 else int(self.trie.items[leaf])

    def prefix_items(self, prefix: Sequence[int]) -> np.ndarray:
        """Items whose Rec-ID starts with `prefix`, in token order (empty if none)."""
        if len(prefix) > self.levels + 1:
            return np.empty(0, np.int64)
        node = self._walk(prefix)
        if node < 0:
            return np.empty(0, np.int64)
        start, end = self.trie.items_under(len(prefix), torch.tensor([node]))
        return self.trie.items[int(start):int(end)].numpy()

    # ---- frames and files --------------------------------------------------------------------------------

    def frame(self) -> pd.DataFrame:
        """One row per item: item, name, c1..cM, p."""
        cols = {"item": np.arange(self.num_items), "name": self.names}
        cols.update({f"c{m + 1}": self.tokens[:, m] for m in range(self.levels)})
        cols["p"] = self.tokens[:, -1]
        return pd.DataFrame(cols)

    def tree_frame(self, color: Sequence | None = None) -> pd.DataFrame:
        """Nodes for a plotly sunburst/treemap: id, parent, label, depth, items, popularity, item, name; with
        `color` (one value per item) also each node's most common value (`majority`) and its share (`purity`).

        Ids are token paths ("5/3/7"); depth-1 nodes have parent "". Leaves are the items, labelled by name.
        """
        items = self.trie.items.numpy()
        s = self.tokens[items]                                            # [I, T] sorted rows
        pop_cum = np.r_[0, np.cumsum(self.popularity[items])]
        if color is not None:
            values, codes = np.unique(np.asarray(color, dtype=str)[items], return_inverse=True)
        frames, path = [], np.array([""], dtype=object)
        for d in range(1, self.levels + 2):
            bounds = self.trie.bounds[d].numpy()
            start = bounds[:-1]
            parent_path = path[np.repeat(np.arange(len(path)), np.diff(self.trie.indptr[d - 1].numpy()))]
            tok = s[start, d - 1].astype(str).astype(object)
            path = np.where(parent_path == "", tok, parent_path + "/" + tok)
            leaf = d == self.levels + 1
            frame = pd.DataFrame({
                "id": path, "parent": parent_path,
                "label": self.names[items[start]] if leaf else f"c{d}=" + tok,
                "depth": d, "items": np.diff(bounds), "popularity": pop_cum[bounds[1:]] - pop_cum[start],
                "item": items[start] if leaf else -1, "name": self.names[items[start]] if leaf else "",
            })
            if color is not None:                                         # counts [nodes, values], one pass
                node = np.repeat(np.arange(len(start)), np.diff(bounds))
                counts = np.zeros((len(start), len(values)), np.int64)
                np.add.at(counts, (node, codes.ravel()), 1)
                frame["majority"] = values[counts.argmax(1)]
                frame["purity"] = counts.max(1) / counts.sum(1)
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)

    def to_parquet(self, path: str | Path) -> None:
        """Columns item, name, c1..cM, p; vocabulary and collision mode in the schema metadata. Atomic."""
        meta = {"codebook_size": self.codebook_size, "collision": self.collision, "seed": self.seed}
        table = pa.Table.from_pandas(self.frame(), preserve_index=False)
        table = table.replace_schema_metadata({**table.schema.metadata, b"mmgrec": json.dumps(meta).encode()})
        buf = io.BytesIO()
        pq.write_table(table, buf)
        atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def read_parquet(cls, path: str | Path, popularity: np.ndarray | None = None) -> RecIDTable:
        """Read a table written by `to_parquet`; popularity is not stored, pass it to get popularity sums."""
        table = pq.read_table(path)
        meta = json.loads((table.schema.metadata or {}).get(b"mmgrec", b"{}"))
        df = table.to_pandas().sort_values("item")
        if not np.array_equal(df["item"].to_numpy(), np.arange(len(df))):
            raise ValueError(f"{path}: column item must hold 0..{len(df) - 1} once each")
        codes = [c for c in df.columns if c.startswith("c") and c[1:].isdigit()]
        tokens = df[[*sorted(codes, key=lambda c: int(c[1:])), "p"]].to_numpy(np.int64)
        return cls.from_tokens(tokens, df["name"].tolist(), popularity=popularity,
                               codebook_size=meta.get("codebook_size"),
                               collision=meta.get("collision", "given"), seed=meta.get("seed", 0))

    def __repr__(self) -> str:
        return (f"RecIDTable({self.num_items} items, {self.levels} levels x {self.codebook_size} codes, "
                f"collision={self.collision!r}, collision rate {self.collision_rate:.1%}, "
                f"max p {self.max_p})")
