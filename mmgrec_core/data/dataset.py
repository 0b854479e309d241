"""`InteractionData`: the one in-memory form every dataset is loaded into.

Interactions are three parallel arrays (user, item, split label) so that every later step (graphs, samplers,
evaluation) is a vectorised numpy/torch operation. Validation happens once, at construction, and names the file,
row or column that is wrong, because a user who brings their own files needs to know *where* to look.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

TRAIN, VALID, TEST = 0, 1, 2
SPLITS = {"train": TRAIN, "valid": VALID, "test": TEST}


class DatasetError(ValueError):
    """A dataset that cannot be used; the message says what is wrong and where."""


class DatasetWarning(UserWarning):
    """Something unusual but usable in a dataset (users without training data, cold items)."""


@dataclass(frozen=True)
class InteractionData:
    """Users, items and their implicit interactions, split into train / valid / test.

    Arrays (n = number of interactions):
        users, items: int64 [n]   ids in [0, num_users) and [0, num_items)
        split:        int8  [n]   TRAIN = 0, VALID = 1, TEST = 2
        timestamps:   int64 [n] or None
    features: modality name -> float32 [num_items, d]; row r describes item r.
    item_table: one row per item (index = item id) with at least a `name` column.
    sources: where each part came from (`"interactions"`, `"features/<name>"`), used in error messages.
    """

    name: str
    num_users: int
    num_items: int
    users: np.ndarray
    items: np.ndarray
    split: np.ndarray
    features: dict[str, np.ndarray] = field(default_factory=dict)
    item_table: pd.DataFrame | None = None
    timestamps: np.ndarray | None = None
    sources: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "users", np.asarray(self.users, dtype=np.int64))
        object.__setattr__(self, "items", np.asarray(self.items, dtype=np.int64))
        raw_split = np.asarray(self.split)  # kept for validation: the int8 cast would wrap a label of 256 to 0
        object.__setattr__(self, "split", np.asarray(raw_split, dtype=np.int8))
        features = {k: np.asarray(v, dtype=np.float32) for k, v in self.features.items()}
        object.__setattr__(self, "features", features)
        if self.item_table is None:
            table = pd.DataFrame({"name": [f"item {i}" for i in range(self.num_items)]})
            object.__setattr__(self, "item_table", table)
        _validate(self, raw_split)

    # ---- views -------------------------------------------------------------------------------------------

    def pairs(self, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
        """(users, items) of one split."""
        mask = self.split == SPLITS[split]
        return self.users[mask], self.items[mask]

    def matrix(self, split: str = "train") -> sp.csr_matrix:
        """Binary user x item matrix of one split, CSR with sorted indices."""
        u, i = self.pairs(split)
        m = sp.csr_matrix((np.ones(len(u), np.float32), (u, i)), shape=(self.num_users, self.num_items))
        m.sort_indices()
        return m

    @property
    def popularity(self) -> np.ndarray:
        """Training interaction count per item, int64 [num_items]."""
        return np.bincount(self.pairs("train")[1], minlength=self.num_items)

    def users_with(self, split: str) -> np.ndarray:
        """Users with at least one interaction in `split`, sorted."""
        return np.unique(self.pairs(split)[0])

    def counts(self) -> dict[str, int]:
        """The counts that `metrics.json` reports."""
        n = np.bincount(self.split, minlength=3)
        return {"users": self.num_users, "items": self.num_items,
                "train": int(n[TRAIN]), "valid": int(n[VALID]), "test": int(n[TEST])}

    def cold_items(self) -> np.ndarray:
        """Items that appear in valid/test but never in train."""
        seen = np.zeros(self.num_items, bool)
        seen[np.unique(self.items)] = True
        return np.flatnonzero(seen & (self.popularity == 0))

    def users_without_train(self) -> np.ndarray:
        """Users that have interactions but none in train."""
        has_any = np.zeros(self.num_users, bool)
        has_any[self.users] = True
        has_train = np.zeros(self.num_users, bool)
        has_train[self.pairs("train")[0]] = True
        return np.flatnonzero(has_any & ~has_train)

    def __repr__(self) -> str:
        c = self.counts()
        mods = ", ".join(f"{k}[{v.shape[1]}]" for k, v in self.features.items()) or "none"
        return (f"InteractionData({self.name!r}: {c['users']} users, {c['items']} items, "
                f"train/valid/test {c['train']}/{c['valid']}/{c['test']}, features: {mods})")


def _validate(d: InteractionData, raw_split: np.ndarray | None = None) -> None:
    """Fail on anything that would silently corrupt training or evaluation; warn on the merely unusual."""
    raw_split = d.split if raw_split is None else raw_split
    where = d.sources.get("interactions", d.name)
    n = len(d.users)
    if n == 0:
        raise DatasetError(f"{where}: the dataset has no interactions")
    if d.num_users <= 0 or d.num_items <= 0:
        raise DatasetError(f"{where}: num_users={d.num_users}, num_items={d.num_items}; both must be positive")
    for col, arr in (("items", d.items), ("split", d.split)):
        if len(arr) != n:
            raise DatasetError(f"{where}: column {col} has {len(arr)} rows but users has {n}")
    if d.timestamps is not None and len(d.timestamps) != n:
        raise DatasetError(f"{where}: column timestamp has {len(d.timestamps)} rows but users has {n}")
    for col, arr, hi in (("user", d.users, d.num_users), ("item", d.items, d.num_items)):
        bad = np.flatnonzero((arr < 0) | (arr >= hi))
        if len(bad):
            r = bad[0]
            raise DatasetError(f"{where}: row {r}: {col} id {arr[r]} is out of range [0, {hi}) "
                               f"({len(bad)} such rows)")
    bad = np.flatnonzero((d.split < 0) | (d.split > 2) | (raw_split != d.split))
    if len(bad):
        raise DatasetError(f"{where}: row {bad[0]}: split label {raw_split[bad[0]]} is not 0/1/2 "
                           f"(train/valid/test) ({len(bad)} such rows)")
    _check_duplicates(d, where)
    per_split = np.bincount(d.split, minlength=3)
    for name, code in SPLITS.items():
        if per_split[code] == 0:
            raise DatasetError(f"{where}: the {name} split is empty")
    for mod, x in d.features.items():
        _check_features(mod, x, d.num_items, d.sources.get(f"features/{mod}", f"features[{mod!r}]"))
    if len(d.item_table) != d.num_items or "name" not in d.item_table.columns:
        raise DatasetError(f"{d.sources.get('item_table', 'item table')}: needs a 'name' column and one row per "
                           f"item ({d.num_items}), got {len(d.item_table)} rows and columns "
                           f"{list(d.item_table.columns)}")
    _warn_unusual(d, where)


def _check_duplicates(d: InteractionData, where: str) -> None:
    key = d.users * d.num_items + d.items
    order = np.argsort(key, kind="stable")
    dup = np.flatnonzero(key[order][1:] == key[order][:-1])
    if len(dup):
        first, second = sorted((order[dup[0]], order[dup[0] + 1]))
        raise DatasetError(f"{where}: rows {first} and {second} repeat the pair (user {d.users[first]}, "
                           f"item {d.items[first]}) ({len(dup)} duplicate rows in all)")


def _check_features(mod: str, x: np.ndarray, num_items: int, where: str) -> None:
    if x.ndim != 2:
        raise DatasetError(f"{where}: modality {mod!r} must be a 2-d [items, dim] matrix, got shape {x.shape}")
    if x.shape[0] != num_items:
        raise DatasetError(f"{where}: modality {mod!r} has {x.shape[0]} rows but there are {num_items} items "
                           f"(row r must describe item r)")
    finite = np.isfinite(x)
    if not finite.all():
        r, c = np.argwhere(~finite)[0]
        raise DatasetError(f"{where}: modality {mod!r} row {r} column {c} is {x[r, c]} "
                           f"({int((~finite).sum())} non-finite values in all)")


def _warn_unusual(d: InteractionData, where: str) -> None:
    no_train = len(d.users_without_train())
    cold = len(d.cold_items())
    if no_train:
        warnings.warn(f"{where}: {no_train} users have no training interactions; they cannot be personalised",
                      DatasetWarning, stacklevel=5)
    if cold:
        warnings.warn(f"{where}: {cold} items appear only in valid/test (cold items)", DatasetWarning,
                      stacklevel=5)
