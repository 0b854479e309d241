"""2-D UMAP maps of the quantizer's space, for the app's Codewords page and the notebooks.

Level m of a residual quantizer picks the codeword of codebook m nearest to the item's *residual* after levels
1..m-1 (level 1's residual is the item latent z itself). So one map per level places that level's codewords among
the residuals they quantize; "all codewords" maps every codebook together. Tokenizers without codebooks
(hkmeans, late_fusion) get one map of the item representations the generator reads.

Projections cost seconds (UMAP's first call also compiles numba code), so `cached_projections` computes them once
and keeps them in the run directory as `projections.parquet`, keyed by a hash of its inputs.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .files import atomic_write_bytes
from .rundir import PROJECTIONS, REPRESENTATIONS, TOKENIZER
from .tokenizers import Explainable

WEIGHTS = (TOKENIZER, REPRESENTATIONS)                                  # what the projections are computed from
ALL_CODEWORDS = "all codewords"
ITEMS = "items"
COLUMNS = ["view", "kind", "level", "id", "x", "y"]


def umap_2d(x: np.ndarray, *, seed: int = 0, n_neighbors: int = 15) -> np.ndarray:
    """UMAP coordinates [N, 2] of the rows of x [N, D] (seeded, single-threaded: reproducible).

    The exact k-nearest-neighbour graph comes from scikit-learn and is handed to UMAP: that skips compiling
    UMAP's own neighbour search, two thirds of the cost of a first call in a fresh process.
    """
    # imported here: umap-learn pulls in numba, seconds that most callers never need
    import umap
    from sklearn.neighbors import NearestNeighbors

    x = np.asarray(x, np.float32)
    n = len(x)
    if n < 4:                      # UMAP needs a neighbourhood; a handful of points is shown as they come
        return np.c_[np.arange(n, dtype=np.float32), np.zeros(n, np.float32)]
    k = min(n_neighbors, n - 1)
    dist, idx = NearestNeighbors(n_neighbors=k).fit(x).kneighbors(x)                # [N, k], self first
    reducer = umap.UMAP(n_neighbors=k, random_state=seed, n_components=2,
                        precomputed_knn=(idx, dist.astype(np.float32), None),
                        init="spectral" if n > 10 else "random")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                # "n_jobs overridden by random_state", spectral fallbacks
        return reducer.fit_transform(x).astype(np.float32)


def codeword_projections(residuals: np.ndarray, codebooks: np.ndarray, *, seed: int = 0,
                         n_neighbors: int = 15) -> pd.DataFrame:
    """One UMAP per level (residuals [L, I, D] of all items + that level's codewords [L, K, D]) and one of all
    codewords together.

    Returns columns view ("level m" | "all codewords"), kind ("item" | "codeword"), level (1-based; the level
    the row's residual enters or its codebook), id (item id or codeword index), x, y.
    """
    frames = []
    num_items, (levels, k, _) = residuals.shape[1], codebooks.shape
    for m, r in enumerate(residuals):                      # r [I, D]: what level m quantizes
        xy = umap_2d(np.concatenate([r, codebooks[m]]), seed=seed, n_neighbors=n_neighbors)
        frames.append(_frame(f"level {m + 1}", ["item"] * num_items + ["codeword"] * k, m + 1,
                             np.r_[np.arange(num_items), np.arange(k)], xy))
    xy = umap_2d(codebooks.reshape(levels * k, -1), seed=seed, n_neighbors=n_neighbors)
    frames.append(_frame(ALL_CODEWORDS, ["codeword"] * (levels * k), np.repeat(np.arange(1, levels + 1), k),
                         np.tile(np.arange(k), levels), xy))
    return pd.concat(frames, ignore_index=True)


def item_projection(items: np.ndarray, *, seed: int = 0, n_neighbors: int = 15) -> pd.DataFrame:
    """One UMAP of item vectors [I, F] (tokenizers without codebooks), in `codeword_projections`' columns."""
    xy = umap_2d(items, seed=seed, n_neighbors=n_neighbors)
    return _frame(ITEMS, ["item"] * len(items), 0, np.arange(len(items)), xy)


def _frame(view: str, kind: list[str], level, ids: np.ndarray, xy: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"view": view, "kind": kind, "level": level, "id": ids.astype(np.int64),
                         "x": xy[:, 0], "y": xy[:, 1]})


def cached_projections(run_dir: str | Path, tokenizer, items: np.ndarray | None = None, *, seed: int = 0,
                       n_neighbors: int = 15) -> pd.DataFrame:
    """The run's projections: read from `run_dir/projections.parquet` when its key matches, else computed and
    written there atomically (a read-only run directory only loses the cache). The key hashes the run's weight
    files (or, without them, the arrays projected) and the UMAP settings.

    Codeword maps when the tokenizer has codebooks, else an item map of `items` [I, F] (required then).
    """
    space = tokenizer.quantizer_space() if isinstance(tokenizer, Explainable) else None
    if space is None and items is None:
        raise ValueError("this run's tokenizer has no codebooks; pass the item vectors to project instead")
    arrays = space if space is not None else (np.asarray(items, np.float32),)
    digest = hashlib.sha256(json.dumps({"seed": seed, "n_neighbors": n_neighbors}).encode())
    # Keyed by the run's weight files when it has them: bit-identical everywhere, unlike latents recomputed on
    # another CPU, so a shipped cache stays valid; else by the arrays themselves.
    sources = [Path(run_dir) / n for n in WEIGHTS if (Path(run_dir) / n).exists()]
    for f in sources:
        digest.update(f.read_bytes())
    for a in () if sources else arrays:
        digest.update(np.ascontiguousarray(a, np.float32).tobytes())
    key = digest.hexdigest()[:16]
    path = Path(run_dir) / PROJECTIONS
    if path.exists():
        try:
            table = pq.read_table(path)
            if (table.schema.metadata or {}).get(b"mmgrec_key") == key.encode():
                return table.to_pandas()
        except (OSError, pa.ArrowException):
            pass                                       # unreadable cache: compute again and replace it
    frame = (codeword_projections(*space, seed=seed, n_neighbors=n_neighbors) if space is not None
             else item_projection(arrays[0], seed=seed, n_neighbors=n_neighbors))
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"mmgrec_key": key.encode()})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    try:
        atomic_write_bytes(path, buf.getvalue())
    except OSError:
        pass
    return frame
