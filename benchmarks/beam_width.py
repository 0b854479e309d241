"""What the beam's width buys: validation and test NDCG@10 / Recall@20 of a finished run's generator decoded
with each width, and the seconds validation took.

    python benchmarks/beam_width.py runs/demo [runs/movielens ...] [--beams 20,50,100]

Validation is over all its users (not the early-stopping subset), full ranking, training items excluded. The
weights are the run's; only the search changes: a wider beam prunes less of the same model's distribution,
which need not give better recommendations; the table measures whether it does.
"""

from __future__ import annotations

import argparse
import time
import warnings

from mmgrec_core.evaluate import evaluate
from mmgrec_core.runs import load_run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", help="finished train runs")
    ap.add_argument("--beams", default="20,50,100", help="comma-separated beam widths")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    print("| run | beam | valid N@10 | valid R@20 | test N@10 | test R@20 | valid s |")
    print("|---|---|---|---|---|---|---|")
    for path in args.runs:
        run = load_run(path)
        for beam in (int(b) for b in args.beams.split(",")):
            run.recommender.beam = beam
            start = time.perf_counter()
            valid = evaluate(run.recommender, run.data, "valid", ks=(10, 20))
            seconds = time.perf_counter() - start
            test = evaluate(run.recommender, run.data, "test", ks=(10, 20))
            print(f"| {path} | {beam} | {valid['ndcg@10']:.4f} | {valid['recall@20']:.4f} | {test['ndcg@10']:.4f} "
                  f"| {test['recall@20']:.4f} | {seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
