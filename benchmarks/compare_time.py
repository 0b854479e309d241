"""Wall time of `compare` per system, and in all (issue: all systems, 3 seeds on demo within 30 min, 2 cores).

    python benchmarks/compare_time.py --dataset demo --out benchmarks/results/compare_time_demo.csv \
        [--systems a,b,...] [--seeds 0,1,2] [--dir runs/compare_demo] [--jobs 2]

Runs `compare` in this process (into `--dir`, default a temporary folder) and writes one row per system: the wall
seconds from its start to its last seed, its seeds, and the mean train seconds the leaderboard records; a last
row "all" holds the whole command's wall time. With `--dir` an existing comparison is resumed, and the systems it
already holds take no time: time a fresh folder. With `--jobs N` (`compare --jobs`), N worker processes train
side by side and the systems' wall times overlap; "all" is still the whole command's.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd

from mmgrec_core.baselines import MODELS
from mmgrec_core.compare import CompareRequest, compare
from mmgrec_core.systems import SYSTEMS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="demo")
    parser.add_argument("--systems", default=",".join([*SYSTEMS, *MODELS]))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--dir", type=Path, help="the comparison's folder (default: a temporary one)")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    request = CompareRequest(args.dataset, tuple(args.systems.split(",")),
                             tuple(int(s) for s in args.seeds.split(",")))
    started: dict[str, float] = {}
    ended: dict[str, float] = {}

    def progress(system: str, done: int, total: int) -> None:
        now = time.perf_counter()
        started.setdefault(system, now)
        if done == total:
            ended[system] = now

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        board = compare(args.dir or Path(tmp) / "compare", request, progress=progress, jobs=args.jobs)
        total = time.perf_counter() - start
    rows = [{"system": s, "seeds": len(board["systems"][s]["seeds"]),
             "wall_s": round(ended[s] - started[s], 1),
             "train_seconds_mean": round(board["systems"][s]["train_seconds"]["mean"], 1)}
            for s in request.systems if s in board["systems"] and s in ended]
    rows.append({"system": "all", "seeds": len(request.seeds), "wall_s": round(total, 1), "jobs": args.jobs})
    frame = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out, index=False)
    print(frame.to_string(index=False))
    for system, why in board["failed"].items():
        print(f"{system} failed: {why}")


if __name__ == "__main__":
    main()
