"""`checked_out(commit)`: an older commit in a temporary git worktree, for benchmarks that time it beside this
checkout in the same session (`train_time.py`, `train_step.py`, `beam_cache.py`)."""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def checked_out(commit: str) -> Iterator[Path]:
    """The path of a worktree of `commit`, removed on exit."""
    with tempfile.TemporaryDirectory(prefix="mmgrec-before-") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), commit], check=True,
                       stdout=subprocess.DEVNULL)
        try:
            yield tree
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=False)
