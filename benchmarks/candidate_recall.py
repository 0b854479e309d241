"""How good the beam's candidates are, apart from their order: Recall@20 and Recall@100 on test of a finished
run's beam search at width 100 (the candidates `mmgrec+dense` re-ranks) against its tuned EASE's top-100.

    python benchmarks/candidate_recall.py runs/demo [runs/movielens ...]

EASE is refitted at the setting the run's metrics.json kept, so the run needs an `ease` entry. Full ranking,
training items excluded, as everywhere.
"""

from __future__ import annotations

import json
import sys
import warnings

from mmgrec_core.baselines import refit_baseline
from mmgrec_core.evaluate import evaluate
from mmgrec_core.runs import load_run


def main(paths: list[str]) -> None:
    warnings.simplefilter("ignore")
    for path in paths:
        run = load_run(path)
        ease = refit_baseline("ease", run.data, run.metrics["models"]["ease"])
        row = {name: {k: round(v, 4) for k, v in evaluate(model, run.data, "test", ks=(20, 100)).items()
                      if k.startswith("recall")}
               for name, model in (("beam (width 100)", run.recommender), ("ease", ease))}
        print(path, json.dumps(row), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
