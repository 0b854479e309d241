"""Loaders for the layouts of MMRec (`*.inter` + `<modality>_feat.npy`, split given) and of the MMGCN / MMGRec
original code (`.npy` files whose item ids are offset by the number of users, `.npy`/`.pt` features).

Both end in an `InteractionData`, whose constructor validates ids, duplicates and features; the loaders report
only what they alone can see (missing files, unreadable bytes, wrong shapes, a wrong item offset). MMGCN files
are pickled numpy object arrays, so they are read with a restricted unpickler that cannot run code.
"""

from __future__ import annotations

import codecs
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from numpy.lib import format as npformat

from .dataset import TEST, TRAIN, VALID, DatasetError, InteractionData
from .split import random_split

try:  # numpy >= 2
    from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]

# What a pickled numpy object array of lists / ints / dicts / sets refers to; nothing here can run code.
# `_codecs.encode` rebuilds bytes in protocol-2 pickles, which numpy < 1.17 wrote (the MMGCN datasets' era).
_SAFE_GLOBALS = {
    ("_codecs", "encode"): codecs.encode, ("builtins", "set"): set, ("builtins", "frozenset"): frozenset,
    ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
    **{(mod, name): getattr(_multiarray, name)
       for mod in ("numpy._core.multiarray", "numpy.core.multiarray") for name in ("_reconstruct", "scalar")},
}
# MMGCN-layout files that hold interactions, not features (val/test: the variants with sampled negatives).
_MMGCN_NON_FEATURES = {"train", "val_full", "test_full", "user_item_dict", "val", "test"}
_MODALITY_ALIASES = (
    ("visual", ("v_feat", "featurevideo", "image", "visual")),
    ("acoustic", ("a_feat", "featureaudio", "acoustic", "audio")),
    ("textual", ("t_feat", "featuretext", "text")),
)


class _SafeUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the numpy/builtin names listed in `_SAFE_GLOBALS`."""

    def __init__(self, file, where: str) -> None:
        super().__init__(file, encoding="latin1")  # latin1: arrays pickled by Python 2 numpy
        self.where = where

    def find_class(self, module: str, name: str):
        module = "builtins" if module == "__builtin__" else module
        if (module, name) not in _SAFE_GLOBALS:
            raise DatasetError(f"refusing to unpickle {module}.{name} from {self.where}")
        return _SAFE_GLOBALS[(module, name)]


def _load_npy(path: Path) -> np.ndarray:
    """np.load without `allow_pickle=True`: object arrays go through `_SafeUnpickler`."""
    try:
        with open(path, "rb") as f:
            version = npformat.read_magic(f)
            header = npformat.read_array_header_1_0 if version == (1, 0) else npformat.read_array_header_2_0
            _, _, dtype = header(f)
            if not dtype.hasobject:
                return np.load(path, allow_pickle=False)
            array = _SafeUnpickler(f, str(path)).load()
    except DatasetError:
        raise
    except (ValueError, OSError, EOFError, TypeError, AttributeError, pickle.UnpicklingError) as e:
        raise DatasetError(f"{path}: cannot read this .npy file: {e}") from e
    if not isinstance(array, np.ndarray):
        raise DatasetError(f"{path}: expected a pickled numpy array, got {type(array).__name__}")
    return array


def _load_matrix(path: Path) -> np.ndarray:
    """A [items, dim] feature matrix from `.npy` or `.pt` (a tensor, loaded with weights_only)."""
    if path.suffix == ".pt":
        try:
            x = torch.load(path, weights_only=True, map_location="cpu")
        except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError) as e:
            raise DatasetError(f"{path}: cannot read this .pt file: {e}") from e
        if not isinstance(x, torch.Tensor):
            raise DatasetError(f"{path}: expected a tensor, got {type(x).__name__}")
        x = x.detach().float().numpy()
    else:
        x = _load_npy(path)
    try:
        x = np.asarray(x, dtype=np.float32)
    except (ValueError, TypeError) as e:
        raise DatasetError(f"{path}: feature values are not numeric: {e}") from e
    if x.ndim != 2:
        raise DatasetError(f"{path}: a feature matrix must be 2-d [items, dim], got shape {x.shape}")
    return x


def _load_features(paths: list[Path], modality: Callable[[Path], str], sources: dict[str, str]
                   ) -> tuple[dict[str, np.ndarray], int | None]:
    """Feature matrices by modality name (filling `sources`) and their common row count (None if no files)."""
    features: dict[str, np.ndarray] = {}
    for path in paths:
        mod = modality(path)
        if mod in features:
            raise DatasetError(f"{path}: modality {mod!r} is already given by {sources['features/' + mod]}")
        features[mod] = _load_matrix(path)
        sources[f"features/{mod}"] = str(path)
        first = next(iter(features))
        if len(features[mod]) != len(features[first]):
            raise DatasetError(f"{sources['features/' + first]} has {len(features[first])} rows but {path} "
                               f"has {len(features[mod])}; every feature file needs one row per item")
    return features, (len(next(iter(features.values()))) if features else None)


def _directory(directory: str | Path) -> Path:
    path = Path(directory)  # is_dir(), not exists(): a file passed by mistake gets the same clear message
    if not path.is_dir():
        raise DatasetError(f"{path}: dataset directory not found (or not a directory)")
    return path


def _int_column(df: pd.DataFrame, col: str, where: Path) -> np.ndarray:
    """A column as int64; names the first row that is empty, non-numeric or fractional."""
    values = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.flatnonzero(~np.isfinite(values) | (values != np.round(values)))
    if len(bad):
        r = bad[0]
        raise DatasetError(f"{where}: row {r} (line {r + 2}) column {col}: {df[col].iloc[r]!r} is not an "
                           f"integer ({len(bad)} such rows)")
    return values.astype(np.int64)


def _check_dense(df: pd.DataFrame, col: str, ids: np.ndarray, where: Path) -> None:
    """Ids count the users (items) 0..n-1, so the largest sizes every table: one stray huge id would allocate
    gigabytes. Refuse ids beyond twice the number of distinct ones (MMRec's files are remapped to 0..n-1)."""
    if len(ids) == 0:
        return
    distinct = len(np.unique(ids))
    if ids.max() >= 2 * distinct + 100:
        r = int(ids.argmax())
        raise DatasetError(f"{where}: row {r} (line {r + 2}) column {col}: id {df[col].iloc[r]} but only {distinct} "
                           f"distinct ids; ids must number them 0..n-1 (remap them first)")


def load_mmrec(directory: str | Path) -> InteractionData:
    """MMRec layout: `*.inter` (userID, itemID, x_label[, timestamp]) + `<modality>_feat.npy`; split kept."""
    root = _directory(directory)
    inters = sorted(root.glob("*.inter"))
    if len(inters) != 1:
        found = ", ".join(p.name for p in inters) or "none"
        raise DatasetError(f"{root}: expected exactly one *.inter file, found {len(inters)} ({found})")
    inter = inters[0]
    try:
        df = pd.read_csv(inter, sep="\t")
    except (ValueError, OSError) as e:
        raise DatasetError(f"{inter}: cannot read this tab-separated file: {e}") from e
    missing = [c for c in ("userID", "itemID", "x_label") if c not in df.columns]
    if missing:
        raise DatasetError(f"{inter}: header lacks column(s) {', '.join(missing)} (has {list(df.columns)})")
    users, items, split = (_int_column(df, c, inter) for c in ("userID", "itemID", "x_label"))
    timestamps = _int_column(df, "timestamp", inter) if "timestamp" in df.columns else None
    sources = {"interactions": str(inter)}
    features, rows = _load_features(sorted(root.glob("*_feat.npy")),
                                    lambda p: p.name.removesuffix("_feat.npy"), sources)
    _check_dense(df, "userID", users, inter)
    if rows is None:
        _check_dense(df, "itemID", items, inter)
    num_items = rows if rows is not None else int(items.max(initial=-1)) + 1
    return InteractionData(name=f"mmrec:{directory}", num_users=int(users.max(initial=-1)) + 1,
                           num_items=num_items, users=users, items=items, split=split, features=features,
                           timestamps=timestamps, sources=sources)


def _ids(x, where: str) -> np.ndarray:
    """Integer ids as int64 [k]; floats are accepted only when integral."""
    if isinstance(x, np.ndarray) and x.dtype.kind in "iu":
        return x.astype(np.int64).ravel()  # the common case, without a float copy of a large train.npy
    try:
        a = np.asarray(x, dtype=np.float64).ravel()
    except (ValueError, TypeError) as e:
        raise DatasetError(f"{where}: ids are not numeric: {e}") from e
    if not np.all(np.isfinite(a) & (a == np.round(a))):
        raise DatasetError(f"{where}: ids must be integers")
    return a.astype(np.int64)


def _rows_to_pairs(rows, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """[user, item, item, ...] rows (ragged object array, 2-d int array, list) -> (users, raw items)."""
    if getattr(rows, "ndim", 1) == 0:
        raise DatasetError(f"{path}: expected one [user, item, ...] row per user, got a single value")
    users, items = [], []
    for r, row in enumerate(rows):
        ids = _ids(row, f"{path} row {r}")
        if len(ids):
            users.append(np.full(len(ids) - 1, ids[0]))
            items.append(ids[1:])
    return np.concatenate([np.zeros(0, np.int64), *users]), np.concatenate([np.zeros(0, np.int64), *items])


def _mmgcn_modality(path: Path) -> str:
    """MMGCN-era file names -> the modality names used across this project."""
    low = path.stem.lower()
    for name, keys in _MODALITY_ALIASES:
        if any(k in low for k in keys):
            return name
    return path.stem


def load_mmgcn(directory: str | Path, seed: int = 0) -> InteractionData:
    """MMGCN layout: train/val_full/test_full.npy, or only user_item_dict.npy (split here with `seed`).

    Item ids in these files are offset by the number of users, which is not stored; it is taken as
    max user id + 1 and checked by requiring every item id to stay >= 0 after subtracting it.
    """
    root = _directory(directory)
    sources: dict[str, str] = {}
    if (root / "train.npy").exists():
        path = root / "train.npy"
        train = _load_npy(path)
        if train.ndim != 2 or train.shape[1] != 2:
            raise DatasetError(f"{path}: expected [n, 2] (user, item) pairs, got shape {train.shape}")
        train = _ids(train, str(path)).reshape(-1, 2)
        parts = [(TRAIN, path, train[:, 0], train[:, 1])]
        for code, name in ((VALID, "val_full.npy"), (TEST, "test_full.npy")):
            if not (root / name).exists():
                raise DatasetError(f"{root / name}: file not found (needed next to train.npy)")
            parts.append((code, root / name, *_rows_to_pairs(_load_npy(root / name), root / name)))
        sources.update({"interactions": str(path), "interactions/valid": str(root / "val_full.npy"),
                        "interactions/test": str(root / "test_full.npy")})
    elif (root / "user_item_dict.npy").exists():
        path = root / "user_item_dict.npy"
        table = _load_npy(path)
        table = table.item() if table.ndim == 0 else table
        if not isinstance(table, dict):
            raise DatasetError(f"{path}: expected a pickled dict {{user: [items]}}, "
                               f"got {type(table).__name__}")
        try:
            rows = [[k, *(sorted(v) if isinstance(v, (set, frozenset)) else v)] for k, v in table.items()]
        except TypeError as e:
            raise DatasetError(f"{path}: every value must be a list of item ids: {e}") from e
        users, items = _rows_to_pairs(rows, path)
        order = np.argsort(users, kind="stable")  # so the split does not depend on the dict's insertion order
        parts = [(-1, path, users[order], items[order])]
        sources["interactions"] = str(path)
    else:
        raise DatasetError(f"{root}: neither train.npy nor user_item_dict.npy found (not an MMGCN dataset?)")

    num_users = int(max(u.max(initial=-1) for _, _, u, _ in parts)) + 1
    for _, path, _, items in parts:
        if len(items) and items.min() - num_users < 0:
            raise DatasetError(f"{path}: item id {items.min()} minus the user count {num_users} is negative; "
                               f"the item offset looks wrong (items should be stored as item + num_users)")
    users = np.concatenate([u for _, _, u, _ in parts])
    items = np.concatenate([i for _, _, _, i in parts]) - num_users
    split = (random_split(users, seed) if parts[0][0] == -1
             else np.concatenate([np.full(len(u), code, np.int8) for code, _, u, _ in parts]))
    paths = sorted(p for p in root.iterdir()
                   if p.suffix in (".npy", ".pt") and p.stem not in _MMGCN_NON_FEATURES and p.is_file())
    features, rows = _load_features(paths, _mmgcn_modality, sources)
    num_items = rows if rows is not None else int(items.max(initial=-1)) + 1
    return InteractionData(name=f"mmgcn:{directory}", num_users=num_users, num_items=num_items, users=users,
                           items=items, split=split, features=features, sources=sources)
