"""The teaching notebooks run top to bottom on small settings (MMGREC_FAST=1), and are committed without outputs.

Each notebook runs in a fresh kernel started from this interpreter's environment (the venv's ipykernel), with
MMGREC_FAST=1 and a throw-away MMGREC_CACHE, from inside notebooks/ as jupyter lab would.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
TIMEOUT_S = 600           # per cell; with MMGREC_FAST=1 a whole notebook takes well under a minute


def test_notebooks_exist():
    assert [p.name for p in NOTEBOOKS] == ["01_rec_ids_from_scratch.ipynb", "02_train_and_recommend.ipynb",
                                           "03_why_this_rec_id.ipynb", "04_generative_vs_retrieval.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path: Path):
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, cell in enumerate(nb.cells)
             if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs; strip them before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_runs_top_to_bottom(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    monkeypatch.setenv("MMGREC_FAST", "1")
    monkeypatch.setenv("MMGREC_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))   # tiny work: threads only contend
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS_DIR)}})
    start = time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as e:
        pytest.fail(f"{path.name} failed:\n{e}")
    print(f"{path.name}: {time.perf_counter() - start:.1f} s")
    errors = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs if o.output_type == "error"]
    assert not errors
