"""A tiny finished run, trained once per test session, for the AppTest and browser tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:                        # `import app.figures` without installing the app
    sys.path.insert(0, str(ROOT))

SHIPPED = ROOT / "assets" / "demo_run"
TINY = {"dataset": "demo:items=120,users=150,seed=5",
        "tokenizer": {"codebook_size": 8, "steps": 100, "polish_steps": 30},
        "generator": {"dim": 16}, "training": {"epochs": 2, "valid_users": 50},
        "baselines": ["popularity", "mf"]}


@pytest.fixture(scope="session")
def tiny_config() -> dict:
    return TINY


@pytest.fixture(scope="session")
def runs_folder(tmp_path_factory) -> Path:
    """A runs folder holding `tiny` (graph_rqvae, 120 items, popularity + MF lists) and `broken` (unfinished)."""
    import warnings

    from mmgrec_core.pipeline import train_run

    folder = tmp_path_factory.mktemp("runs")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                              # the tiny world has a few cold items
        train_run(folder / "tiny", TINY)
    (folder / "broken").mkdir()
    (folder / "broken" / "config.json").write_text("{not json")
    return folder


@pytest.fixture(scope="session")
def tiny_run(runs_folder) -> Path:
    return runs_folder / "tiny"


@pytest.fixture
def app_env(monkeypatch, runs_folder, tiny_run, tmp_path):
    """Point the app at the tiny run (first in the picker) and keep sweep caches out of the home folder."""
    monkeypatch.setenv("MMGREC_RUN", str(tiny_run))
    monkeypatch.setenv("MMGREC_RUNS_DIR", str(runs_folder))
    monkeypatch.setenv("MMGREC_CACHE", str(tmp_path / "cache"))
    return tiny_run
