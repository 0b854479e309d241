"""The app's state: which runs exist, the open run (cached), URL parameters, and cached tables.

Pages call `current_run()` and the table helpers here; nothing in this module draws figures. Models and tries are
`st.cache_resource` (one copy per server), tables `st.cache_data`. Every cached function takes the run's path and
a stamp (the mtime of its metrics.json), so a run trained again is reloaded instead of served stale.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from mmgrec_core.compare import LEADERBOARD
from mmgrec_core.rundir import CONFIG, METRICS, REPRESENTATIONS, RunDir
from mmgrec_core.runs import Run, RunError, load_run
from mmgrec_core.tokenizers import Explainable

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "assets" / "demo_run"
SHIPPED_COMPARE = REPO / "assets" / "demo_compare"
REGENERATE = "python -m mmgrec_core train --dataset demo --out assets/demo_run"


# ---- runs on disk --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunEntry:
    label: str          # what the picker shows
    key: str            # what the URL carries: a path relative to the repository when inside it
    path: Path
    finished: bool


def runs_dir() -> Path:
    """The runs root, set by whoever starts the server and by nobody else:
    `streamlit run app/main.py -- --runs DIR`, else $MMGREC_RUNS_DIR, else runs/ (relative to the repository).

    The app lists, reads and writes runs only here (plus the shipped run and $MMGREC_RUN); a visitor picks among
    them and cannot point it at another folder.
    """
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--runs")
    chosen = parser.parse_known_args(sys.argv[1:])[0].runs or os.environ.get("MMGREC_RUNS_DIR") or "runs"
    path = Path(chosen).expanduser()
    return (path if path.is_absolute() else REPO / path).resolve()


def plain(text: object, limit: int = 120) -> str:
    """`text` as an inline code span for markdown (st.warning, st.error, ...), on one line, cut to `limit`.

    Values from the URL or a visitor's form reach messages. Inside a code span markdown renders nothing: no bold,
    no images (which the browser would fetch), and no links (GitHub-flavoured markdown links a bare URL even when
    its punctuation is backslash-escaped).
    """
    text = " ".join(str(text).split()).replace("`", "'")
    return "`" + text[:limit] + ("..." if len(text) > limit else "") + "`"


def run_key(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def list_runs(folder: Path) -> list[RunEntry]:
    """$MMGREC_RUN (if set), the shipped run (if present), every run directory directly under `folder`, then the
    runs of each comparison (`list_compares`)."""
    candidates = []
    if os.environ.get("MMGREC_RUN"):
        candidates.append(Path(os.environ["MMGREC_RUN"]).expanduser())
    if SHIPPED.is_dir():
        candidates.append(SHIPPED)
    if folder.is_dir():
        candidates += sorted(p for p in folder.iterdir() if p.is_dir() and RunDir(p).has(CONFIG))
    for entry in list_compares(folder):
        candidates += sorted(p for p in (entry.path / "runs").glob("*") if p.is_dir() and RunDir(p).has(CONFIG))
    entries, seen = [], set()
    for path in candidates:
        key = run_key(path)
        if key in seen:
            continue
        seen.add(key)
        finished = RunDir(path).finished
        label = "shipped demo run" if path.resolve() == SHIPPED.resolve() else key
        entries.append(RunEntry(label + ("" if finished else " (unfinished)"), key, path.resolve(), finished))
    return entries


def list_compares(folder: Path) -> list[RunEntry]:
    """The shipped comparison (if present), then every directory directly under `folder` with a leaderboard."""
    candidates = [SHIPPED_COMPARE] if (SHIPPED_COMPARE / LEADERBOARD).is_file() else []
    if folder.is_dir():
        candidates += sorted(p for p in folder.iterdir() if (p / LEADERBOARD).is_file())
    entries, seen = [], set()
    for path in candidates:
        key = run_key(path)
        if key not in seen:
            seen.add(key)
            label = "shipped demo comparison" if path.resolve() == SHIPPED_COMPARE.resolve() else key
            entries.append(RunEntry(label, key, path.resolve(), True))
    return entries


def stamp(path: Path) -> float:
    """Changes whenever the run is (re)trained: the cache key beside the path."""
    try:
        return (path / METRICS).stat().st_mtime
    except OSError:
        return 0.0


@st.cache_resource(show_spinner="Opening the run (dataset, Rec-ID trie, generator)...", max_entries=4)
def _load(path: str, stamp: float) -> Run:
    return load_run(path)


def open_run(path: Path) -> Run:
    """The run at `path`, loaded once per server; raises RunError with a readable message."""
    return _load(str(path), stamp(path))


def current_run() -> Run:
    """The run chosen in the sidebar; shows a friendly message and stops the page when there is none."""
    entry: RunEntry | None = st.session_state.get("run_entry")
    if entry is None:
        st.info(f"No run found. Train one on the **Train** page, or regenerate the shipped demo run with "
                f"`{REGENERATE}`; runs are listed from `{run_key(runs_dir())}` (start the app with "
                "`streamlit run app/main.py -- --runs DIR` for another folder).")
        st.stop()
    try:
        return open_run(entry.path)
    except RunError as e:
        st.error(f"This run cannot be opened: {e}")
        st.caption("Pick another run in the sidebar, or continue an unfinished one with "
                   f"`python -m mmgrec_core train --resume {entry.key}`.")
        st.stop()


# ---- URL parameters ------------------------------------------------------------------------------------------

def query_index(name: str, size: int, what: str) -> int | None:
    """A valid 0-based index from the URL parameter `name`, else None (with a warning when it was given)."""
    raw = st.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if 0 <= value < size:
        return value
    st.warning(f"{plain(f'{name}={raw}', 60)} in the URL is not a {what} of this run (valid: 0 to {size - 1}); "
               f"showing another one instead.")
    del st.query_params[name]
    return None


def remember(name: str, value: int) -> None:
    """Put a selection in the URL so the view can be shared."""
    if st.query_params.get(name) != str(value):
        st.query_params[name] = str(value)


# ---- cached tables -------------------------------------------------------------------------------------------

@st.cache_data(show_spinner=False, max_entries=8)
def items_frame(path: str, stamp: float) -> pd.DataFrame:
    """One row per item: item, name, metadata columns, popularity, c1..cM, p, rec_id ("c1-c2-c3-p")."""
    run = _load(path, stamp)
    meta = run.data.item_table.drop(columns=["name"], errors="ignore").reset_index(drop=True)
    frame = run.table.frame()
    frame.insert(2, "popularity", run.table.popularity)
    frame["rec_id"] = ["-".join(map(str, row)) for row in run.table.tokens]
    return pd.concat([frame, meta], axis=1)


def item_columns(frame: pd.DataFrame) -> list[str]:
    """Metadata columns worth colouring by (categorical, few distinct values)."""
    skip = {"item", "name", "rec_id", "p"}
    return [c for c in frame.columns if c not in skip and not c[1:].isdigit()
            and (frame[c].dtype == object or str(frame[c].dtype) in ("category", "string", "str"))
            and frame[c].nunique() <= 50]


@st.cache_data(show_spinner=False, max_entries=8)
def users_frame(path: str, stamp: float) -> pd.DataFrame:
    """One row per user: user, train / valid / test counts, and the most frequent category in training."""
    run = _load(path, stamp)
    data = run.data
    out = pd.DataFrame({"user": np.arange(data.num_users)})
    for split in ("train", "valid", "test"):
        out[split] = np.asarray(data.matrix(split).sum(1)).ravel().astype(int)
    if "category" in data.item_table.columns:
        users, items = data.pairs("train")
        codes, names = pd.factorize(data.item_table["category"].to_numpy()[items], sort=True)
        counts = np.zeros((data.num_users, len(names)), np.int64)              # [U, categories]
        np.add.at(counts, (users, codes), 1)
        out["top category"] = np.where(counts.sum(1) > 0, np.asarray(names, dtype=object)[counts.argmax(1)], "")
    return out


@st.cache_data(show_spinner=False, max_entries=512)
def user_items(path: str, stamp: float, user: int, split: str) -> np.ndarray:
    run = _load(path, stamp)
    m = run.data.matrix(split)
    return m.indices[m.indptr[user]:m.indptr[user + 1]].astype(np.int64)


@st.cache_data(show_spinner=False, max_entries=256)
def explanation(path: str, stamp: float, item: int):
    """`mmgrec_core.explain.explain` for one item (a few graph propagations: worth keeping)."""
    from mmgrec_core.explain import explain

    run = _load(path, stamp)
    return explain(run.tokenizer, run.table, item)


@st.cache_data(show_spinner="Projecting codewords and items with UMAP (once per run)...", max_entries=4)
def projections(path: str, stamp: float) -> pd.DataFrame:
    from mmgrec_core.projections import cached_projections
    run = _load(path, stamp)
    items = None
    if not isinstance(run.tokenizer, Explainable):
        items = RunDir(path).tensors(REPRESENTATIONS)["items"].numpy()
    return cached_projections(path, run.tokenizer, items, seed=run.config.seed)


def selected_items(points: list[dict], codes_at_level: np.ndarray | None) -> np.ndarray:
    """Item ids picked by a plotly selection: items by their id, codewords by the items assigned to them.

    `points` carry custom_data [id, kind]; `codes_at_level` [I] is each item's code at the view's level (None for
    views without codewords). Point indices are never used: they change with colour grouping.
    """
    items, words = set(), set()
    for p in points:
        data = p.get("customdata") or p.get("custom_data")
        if not data:
            continue
        (items if len(data) < 2 or data[1] == "item" else words).add(int(data[0]))
    if words and codes_at_level is not None:
        items |= set(np.flatnonzero(np.isin(codes_at_level, list(words))).tolist())
    return np.array(sorted(items), dtype=np.int64)


# ---- sweeps --------------------------------------------------------------------------------------------------

