"""Fill a run's caches the app would otherwise compute on first use (today: the UMAP projections).

    python app/precompute.py assets/demo_run

Writes `projections.parquet` into the run directory, so a shipped run opens its Codewords page at once.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mmgrec_core.projections import FILE, cached_projections  # noqa: E402
from mmgrec_core.runs import RunError, load_run, load_tensors  # noqa: E402


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python app/precompute.py RUN_DIR", file=sys.stderr)
        return 2
    warnings.simplefilter("ignore")
    try:
        run = load_run(argv[0])
    except RunError as e:
        print(e, file=sys.stderr)
        return 2
    items = None
    if run.tokenizer is None or not hasattr(run.tokenizer, "trace"):
        items = load_tensors(run.path / "representations.safetensors")["items"].numpy()
    frame = cached_projections(run.path, run.tokenizer, items, seed=int(run.config.get("seed", 0)))
    print(f"{run.path / FILE}: {len(frame)} points in {frame['view'].nunique()} views")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
