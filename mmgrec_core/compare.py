"""`compare`: every system (`systems.SYSTEMS`) and baseline (`baselines.MODELS`) on one split and several seeds,
with one leaderboard.

    DIR/compare.json                    the request: dataset, --set settings (a DIR holds one comparison)
    DIR/runs/<system>-seed<s>/          a `train` run directory per generative system and seed (baselines off)
    DIR/runs/<model>-seed<s>/entry.json a baseline's metrics per seed (the model itself is not kept)
    .../entry.json                      what the leaderboard reads from each run, written when it finishes
    DIR/leaderboard.json, .csv, .html   mean and standard deviation over seeds, a plotly figure
    DIR/fits/rqvae-<key>.npy            per-modality RQ-VAE codes, fitted once for every run that needs them

The split is the dataset's own (a `demo:` world's seed is part of its spec); `--seeds` seed the models. Each
baseline is tuned on validation with the first seed (its grid, `baselines.GRIDS`) and refitted with the setting
it chose for the other seeds, so the spread is the seeds', not the grid's. Systems whose settings are the same
but for their name (`mgr-ef` is TIGER's pipeline on all modalities) are trained once per seed: the later ones
get a copy of the first one's run, renamed, and their entries say `same_run_as`. Late fusion, LF++ and TIGER's
AMI diagnostic fit the same per-modality RQ-VAEs (same features, options, seed): each is fitted once. A system
whose `entry.json` exists is skipped, and an interrupted run continues as `train --resume` does, so the command
resumes where it stopped. A system that fails is reported under "failed" in the leaderboard, with its error,
and the others still run; what finished is kept.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import shutil
import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
import torch
from sklearn.metrics import adjusted_mutual_info_score

from .baselines import MODELS, train_baseline
from .config import RunConfig, RunError, resolve
from .data.dataset import InteractionData
from .data.loaders import load_dataset
from .evaluate import KS
from .files import atomic_write_bytes, read_json, write_json
from .pipeline import RunProgress, train_run
from .rundir import CHECKPOINT, CONFIG, RunDir
from .runs import Run, load_run
from .systems import SYSTEMS
from .tokenizers.late_fusion import segments
from .tokenizers.rqvae import modality_codes, shared_fits

REQUEST, ENTRY, FITS = "compare.json", "entry.json", "fits"
LEADERBOARD, TABLE, FIGURE = "leaderboard.json", "leaderboard.csv", "leaderboard.html"
METRICS = tuple(f"{m}@{k}" for k in KS for m in ("recall", "ndcg"))
INFERENCE_USERS = 256          # users timed per run (top-20, seen items excluded)


@dataclass(frozen=True)
class CompareRequest:
    dataset: str
    systems: tuple[str, ...]
    seeds: tuple[int, ...] = (0, 1, 2)
    sets: tuple[str, ...] = ()          # --set KEY=VALUE for every generative system

    def __post_init__(self):
        if not self.systems:
            raise RunError("compare: --systems is empty; name at least one of "
                           f"{', '.join([*SYSTEMS, *MODELS])}")
        unknown = [s for s in self.systems if s not in SYSTEMS and s not in MODELS]
        if unknown:
            raise RunError(f"compare: unknown system {unknown[0]!r}; systems are {', '.join(SYSTEMS)} and "
                           f"baselines {', '.join(MODELS)}")
        if len(set(self.systems)) != len(self.systems):
            raise RunError(f"compare: --systems names a system twice ({','.join(self.systems)})")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise RunError(f"compare: --seeds must name distinct seeds, got {list(self.seeds)}")
        for system in self.generative:          # every setting checked against every system before any work
            self.config(system, self.seeds[0])

    @property
    def generative(self) -> tuple[str, ...]:
        return tuple(s for s in self.systems if s in SYSTEMS)

    def config(self, system: str, seed: int) -> RunConfig:
        """The run configuration of one generative system and seed (baselines are trained separately)."""
        return resolve({"dataset": self.dataset, "seed": seed, "system": system, "baselines": []},
                       [*self.sets, f"system={system}"], source=f"compare ({system})")


# (system, seeds done, seeds in all): one call when a system starts and after each of its seeds
CompareProgress = Callable[[str, int, int], None]


def compare(out: str | Path, request: CompareRequest, *, progress: CompareProgress | None = None,
            run_progress: Callable[[str], RunProgress | None] = lambda system: None,
            data: InteractionData | None = None, jobs: int = 1) -> dict:
    """Train and evaluate every requested system for every seed into `out`; return the leaderboard.

    With `jobs` > 1 that many worker processes train units side by side, each on its share of the CPU threads
    (a generative system's seed is a unit; a baseline's seeds are one unit, since the later seeds refit the
    first seed's choice). Every run seeds itself, so the entries do not depend on `jobs` or on the order.
    """
    if jobs < 1:
        raise RunError(f"compare: jobs={jobs}; must be at least 1")
    out = Path(out)
    stored = read_json(out / REQUEST) if (out / REQUEST).exists() else None
    mine = {"dataset": request.dataset, "sets": list(request.sets)}
    if stored is not None and {k: stored.get(k) for k in mine} != mine:
        raise RunError(f"{out} holds a comparison on {stored.get('dataset')!r} with settings "
                       f"{stored.get('sets')}; choose another --out")
    data = data if data is not None else load_dataset(request.dataset)
    write_json(out / REQUEST, {**mine, "systems": list(request.systems), "seeds": list(request.seeds)})
    failed: dict[str, str] = {}
    done = dict.fromkeys(request.systems, 0)
    pending = list(units(request))
    board = leaderboard(out, request, data, failed)

    def finish(system: str, seeds: tuple[int, ...], error: str | None) -> dict:
        if error:
            failed.setdefault(system, error)
        else:
            done[system] += len(seeds)
            if progress:
                progress(system, done[system], len(request.seeds))
        board = leaderboard(out, request, data, failed)
        write_leaderboard(out, board)
        return board

    def start(systems: tuple[str, ...]) -> None:
        for system in systems:
            if progress and done[system] == 0:
                progress(system, 0, len(request.seeds))

    def finish_unit(systems: tuple[str, ...], seeds: tuple[int, ...], error: str | None) -> dict:
        for system in systems:
            board = finish(system, seeds, error)
        return board

    if jobs == 1:
        for systems, seeds in pending:
            if systems[0] not in failed:                 # a system stops at its first failed seed
                start(systems)
                board = finish_unit(systems, seeds, run_unit(out, request, systems, seeds, data,
                                                             run_progress(systems[0])))
        return board
    threads = max(1, torch.get_num_threads() // jobs)
    took: dict[str, float] = {}                          # seconds of each system's last finished unit
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                             initializer=torch.set_num_threads, initargs=(threads,)) as pool:
        running: dict[Future, tuple[tuple[str, ...], tuple[int, ...], float]] = {}
        while pending or running:
            while pending and len(running) < jobs:       # submitted one by one, so a failure stops its system
                systems, seeds = pending.pop(next_unit(pending, took))
                if systems[0] not in failed:
                    start(systems)
                    future = pool.submit(run_unit, out, request, systems, seeds, data)
                    running[future] = (systems, seeds, time.perf_counter())
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                systems, seeds, began = running.pop(future)
                took[systems[0]] = time.perf_counter() - began
                board = finish_unit(systems, seeds, future.result())
    return board


def next_unit(pending: list[tuple[tuple[str, ...], tuple[int, ...]]], took: dict[str, float]) -> int:
    """Which pending unit a free worker takes: the first of a system not timed yet (so each system's first seed
    runs early), else the one whose system's last unit took longest, so that the last units to run are short
    and no worker idles long at the end while the other finishes a long one."""
    for k, (systems, _) in enumerate(pending):
        if systems[0] not in took:
            return k
    return max(range(len(pending)), key=lambda k: took[pending[k][0][0]])


def units(request: CompareRequest) -> list[tuple[tuple[str, ...], tuple[int, ...]]]:
    """The pieces of work, (systems, seeds): each baseline with all its seeds first, as they are the longest (a
    grid, then refits); then, seed by seed, the generative systems that share one configuration but for their
    name (usually one system; tiger and mgr-ef are two), in the request's order. With several workers
    `next_unit` reorders what is left once each system's first unit is timed."""
    same: dict[str, list[str]] = {}
    for system in request.generative:
        settings = {**request.config(system, request.seeds[0]).to_dict(), "system": None}
        same.setdefault(json.dumps(settings, sort_keys=True), []).append(system)
    return [*(((s,), request.seeds) for s in request.systems if s in MODELS),
            *((tuple(systems), (seed,)) for seed in request.seeds for systems in same.values())]


def run_unit(out: Path, request: CompareRequest, systems: tuple[str, ...], seeds: tuple[int, ...],
             data: InteractionData, progress: RunProgress | None = None) -> str | None:
    """Train (or read back) the entries of `systems[0]` for `seeds` in order, and copy each seed's run to the
    other `systems` (the same configuration); the first error as one line, else None. Per-modality RQ-VAE fits
    are shared through `out/fits` (`rqvae.shared_fits`)."""
    with shared_fits(out / FITS):
        for seed in seeds:
            try:
                entry = run_entry(out, request, systems[0], seed, data, progress)
                for twin in systems[1:]:
                    copy_entry(out, request, entry, twin)
            except (RunError, ValueError, RuntimeError, AssertionError, OSError) as e:
                return f"seed {seed}: {type(e).__name__}: {e}"
    return None


def run_dir(out: Path, system: str, seed: int) -> Path:
    return out / "runs" / f"{system}-seed{seed}"


def run_entry(out: Path, request: CompareRequest, system: str, seed: int, data: InteractionData,
              progress: RunProgress | None = None) -> dict:
    """The entry of one system and seed: read back when it exists, else trained (or resumed) and measured."""
    path = run_dir(out, system, seed)
    if (path / ENTRY).exists():
        return read_json(path / ENTRY)
    if system in MODELS:
        seeded = {} if system in ("popularity", "ease") else {"seed": seed}
        first = request.seeds[0]
        if seed == first or "tuning" not in (tuned := run_entry(out, request, system, first, data)):
            model, metrics = train_baseline(system, data, tune=True, **seeded)
        else:                                    # the setting the first seed chose on validation, refitted
            model, metrics = train_baseline(system, data, tune=False, **seeded, **chosen_setting(tuned))
            metrics["tuned_on_seed"] = first
        entry = {"kind": "baseline", **metrics, "inference_ms": inference_ms(model, data)}
    else:
        run = RunDir(path)
        if run.has(CONFIG):
            metrics = train_run(path, resume=True, progress=progress, data=data)
        else:
            metrics = train_run(path, request.config(system, seed), progress=progress, data=data)
        opened = load_run(path, data)
        entry = {"kind": "generative", **metrics["models"]["mmgrec"],
                 "inference_ms": inference_ms(opened.recommender, data),
                 "collision_rate": opened.tokenizer_stats.get("collision_rate"),
                 "rec_id_length": int(opened.table.tokens.shape[1]),
                 "ami": modality_ami(opened)}
    entry = {"system": system, "seed": seed, **entry}
    write_json(path / ENTRY, entry)
    return entry


def copy_entry(out: Path, request: CompareRequest, source: dict, system: str) -> dict:
    """The entry of `system`, whose configuration is that of the `source` entry's system but for the name: the
    source's finished run, copied with config.json naming `system` (so the app opens it as that system), and its
    entry marked `same_run_as`. Written beside the target and renamed into place, so an interruption leaves no
    half copy behind."""
    seed = source["seed"]
    path = run_dir(out, system, seed)
    if (path / ENTRY).exists():
        return read_json(path / ENTRY)
    partial = path.with_name(f".{path.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(run_dir(out, source["system"], seed), partial, ignore=shutil.ignore_patterns(ENTRY, CHECKPOINT))
    RunDir(partial).write_config(request.config(system, seed))
    entry = {**source, "system": system, "same_run_as": source["system"]}
    write_json(partial / ENTRY, entry)
    shutil.rmtree(path, ignore_errors=True)              # an unfinished run of its own, from an older compare
    partial.rename(path)
    return entry


def chosen_setting(entry: dict) -> dict:
    """The grid point a baseline's tuning kept (best validation Recall@20), as keyword overrides."""
    best = max(entry["tuning"], key=lambda t: t["valid_recall@20"])
    setting = {k: v for k, v in best.items() if k not in ("valid_recall@20", "seconds", "best_epoch")}
    return {"lambdas": (setting.pop("lambda"),), **setting} if "lambda" in setting else setting


def inference_ms(model, data: InteractionData, repeats: int = 3) -> float:
    """Median wall milliseconds per user of `recommend(users, 20)` for up to 256 test users (after a warm-up)."""
    users = torch.from_numpy(data.users_with("test")[:INFERENCE_USERS])
    model.recommend(users[:8], 20)
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        model.recommend(users, 20)
        times.append(time.perf_counter() - tic)
    return round(1000 * statistics.median(times) / max(len(users), 1), 4)


def modality_ami(run: Run) -> dict[str, float]:
    """MGR-LF's diagnostic (its Table 1 and §3): the adjusted mutual information between first-level tokens.

    Late fusion (and BBQRec's ID + modality parts): between each pair of parts of the Rec-ID. Early fusion (an
    RQ-VAE on all modalities, as tiger and mgr-ef use): between its first tokens and those of an RQ-VAE fitted
    on each modality alone with the same options and seed, and between those. Other tokenizers: {}.
    A value near 1 says two parts carry the same grouping; near 0, that they are independent.
    """
    names, tokens, options = list(run.data.features), run.table.tokens, run.config.tokenizer.options
    name = run.config.tokenizer.name
    if name == "late_fusion":
        parts = {m: tokens[:, seg.start] for m, seg in zip(names, segments(options.levels, len(names),
                                                                            options.separator))}
    elif name == "bbqrec":
        parts = {m: tokens[:, seg.start] for m, seg in zip(["id", *names], segments(options.levels,
                                                                                    len(names) + 1, False))}
    elif name == "rqvae" and len(names) > 1:
        parts = {"fused": tokens[:, 0]}
        for k, m in enumerate(names):
            parts[m] = modality_codes(run.data, m, options, run.config.seed + k)[:, 0]
    else:
        return {}
    keys = list(parts)
    return {f"{a}~{b}": round(float(adjusted_mutual_info_score(parts[a], parts[b])), 4)
            for i, a in enumerate(keys) for b in keys[i + 1:]}


# ---- the leaderboard -----------------------------------------------------------------------------------------

def _spread(values: Sequence[float]) -> dict[str, float]:
    """Mean and sample standard deviation (0 for one seed)."""
    values = [float(v) for v in values]
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def leaderboard(out: Path, request: CompareRequest, data: InteractionData, failed: dict[str, str]) -> dict:
    """Mean and spread over the seeds that finished, per system, in the request's order."""
    systems = {}
    for system in request.systems:
        entries = [read_json(p / ENTRY) for seed in request.seeds
                   if (p := run_dir(out, system, seed)).joinpath(ENTRY).exists()]
        if not entries:
            continue
        first = entries[0]
        row = {"kind": first["kind"], "seeds": [e["seed"] for e in entries],
               "runs": [str(run_dir(out, system, e["seed"]).relative_to(out)) for e in entries]
               if first["kind"] == "generative" else [],
               **{split: {m: _spread([e[split][m] for e in entries]) for m in (*METRICS, "top1_share")}
                  for split in ("valid", "test")},
               "train_seconds": _spread([e["train_seconds"] for e in entries]),
               "inference_ms": _spread([e["inference_ms"] for e in entries])}
        if first["kind"] == "generative":
            row["collision_rate"] = _spread([e["collision_rate"] or 0.0 for e in entries])
            row["rec_id_length"] = first["rec_id_length"]
            row["ami"] = {pair: _spread([e["ami"][pair] for e in entries]) for pair in first.get("ami", {})}
            if "same_run_as" in first:
                row["same_run_as"] = first["same_run_as"]
        systems[system] = row
    return {"dataset": request.dataset, "counts": data.counts(), "seeds": list(request.seeds),
            "sets": list(request.sets), "protocol": "random per-user 80/10/10 split, full ranking over all items, "
            "training items excluded; mean and sample std over model seeds", "systems": systems,
            "failed": failed}


def table(board: dict) -> pd.DataFrame:
    """One row per system: test metrics (mean, std), seconds, inference, Rec-ID statistics."""
    rows = []
    for system, row in board["systems"].items():
        out = {"system": system, "kind": row["kind"], "seeds": len(row["seeds"])}
        for m in METRICS:
            out[f"test_{m}"], out[f"test_{m}_std"] = row["test"][m]["mean"], row["test"][m]["std"]
        out["train_seconds"], out["inference_ms"] = row["train_seconds"]["mean"], row["inference_ms"]["mean"]
        out["collision_rate"] = row.get("collision_rate", {}).get("mean", math.nan)
        out["rec_id_length"] = row.get("rec_id_length", math.nan)
        rows.append(out)
    return pd.DataFrame(rows)


def figure(board: dict, metric: str = "ndcg@10") -> go.Figure:
    """Bars of the test `metric` per system (mean over seeds) with the seeds' standard deviation as error bars;
    generative systems in one colour, baselines in another."""
    names = list(board["systems"])
    rows = [board["systems"][n] for n in names]
    colours = ["#636efa" if r["kind"] == "generative" else "#a0a0a0" for r in rows]
    fig = go.Figure(go.Bar(x=names, y=[r["test"][metric]["mean"] for r in rows], marker_color=colours,
                           error_y={"type": "data", "array": [r["test"][metric]["std"] for r in rows]},
                           hovertemplate="%{x}: %{y:.4f}<extra></extra>"))
    n = len(board["seeds"])
    fig.update_layout(title=f"{board['dataset']}: test {metric} over {n} seed{'s' * (n > 1)} "
                            "(blue: generative, grey: baselines)",
                      yaxis_title=f"test {metric}", xaxis_title=None, height=420, margin={"t": 60})
    return fig


def write_leaderboard(out: Path, board: dict) -> None:
    write_json(out / LEADERBOARD, board)
    atomic_write_bytes(out / TABLE, table(board).to_csv(index=False).encode())
    if board["systems"]:
        atomic_write_bytes(out / FIGURE, figure(board).to_html(include_plotlyjs=True, full_html=True).encode())


def read_leaderboard(path: str | Path) -> dict:
    """A compare directory's leaderboard.json, checked for the fields the app reads."""
    path = Path(path)
    try:
        board = read_json(path / LEADERBOARD)
    except (OSError, ValueError) as e:
        raise RunError(f"{path}: no readable {LEADERBOARD} ({e})") from None
    systems = board.get("systems") if isinstance(board, dict) else None
    if not isinstance(systems, dict):
        raise RunError(f"{path}/{LEADERBOARD}: no 'systems' object")
    for name, row in systems.items():
        try:
            [float(row["test"][m]["mean"]) for m in METRICS]
        except (KeyError, TypeError, ValueError):
            raise RunError(f"{path}/{LEADERBOARD}: systems.{name}.test must hold mean and std of "
                           f"{', '.join(METRICS)}") from None
    return board
