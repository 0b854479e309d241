"""Fill a run's caches the app would otherwise compute on first use.

    python app/precompute.py assets/demo_run [--sweep]

Writes `projections.parquet` (the Codewords page's UMAP maps, seconds) into the run directory, and with `--sweep`
also `sweep.parquet`: the default collision sweep of `mmgrec_core.analysis` on the run's dataset (about two minutes
on two CPU cores for the demo world), which the Collisions page shows without asking to compute it.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mmgrec_core.analysis import SweepConfig, sweep  # noqa: E402
from mmgrec_core.files import atomic_write_bytes  # noqa: E402
from mmgrec_core.projections import cached_projections  # noqa: E402
from mmgrec_core.rundir import PROJECTIONS, REPRESENTATIONS, SWEEP  # noqa: E402
from mmgrec_core.runs import RunError, load_run, load_tensors  # noqa: E402
from mmgrec_core.tokenizers import Explainable  # noqa: E402


def main(argv: list[str]) -> int:
    with_sweep = "--sweep" in argv
    argv = [a for a in argv if a != "--sweep"]
    if len(argv) != 1:
        print("usage: python app/precompute.py RUN_DIR [--sweep]", file=sys.stderr)
        return 2
    warnings.simplefilter("ignore")
    try:
        run = load_run(argv[0])
    except RunError as e:
        print(e, file=sys.stderr)
        return 2
    items = None
    if not isinstance(run.tokenizer, Explainable):
        items = load_tensors(run.path / REPRESENTATIONS)["items"].numpy()
    frame = cached_projections(run.path, run.tokenizer, items, seed=run.config.seed)
    print(f"{run.path / PROJECTIONS}: {len(frame)} points in {frame['view'].nunique()} views")
    if with_sweep:
        config = SweepConfig(seed=run.config.seed)
        result = sweep(run.data, config, progress=lambda frac, text: print(f"{frac:4.0%} {text}", flush=True))
        atomic_write_bytes(run.path / SWEEP, result.to_parquet())
        print(f"{run.path / SWEEP}: {len(result)} points")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
