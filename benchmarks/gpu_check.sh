#!/usr/bin/env bash
# The GPU check of issue 13, prepared to run as one command on a CUDA machine (about 6 min on one H200):
#   1. trains the demo run end to end on the GPU (no baselines) and prints its train seconds and test metrics,
#   2. decodes one user's top-10 from it (constrained beam search on the GPU),
#   3. times beam search against MF exact scoring and MF + HNSW at 6k / 100k / 1M items.
#
#     OUT=/tmp/gpu_check bash benchmarks/gpu_check.sh
#
# PYTHON defaults to .venv/bin/python; it needs a CUDA build of torch (the pinned CPU wheel cannot see a GPU).
# Everything it writes goes under $OUT (default: a temporary folder): the run, the CSV and the figure.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
OUT=${OUT:-$(mktemp -d)}
export PYTHONUNBUFFERED=1
"$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu_check: torch sees no CUDA device')"
"$PYTHON" -c "import torch; print('device:', torch.cuda.get_device_name(0), '| torch', torch.__version__)"

start=$(date +%s)
"$PYTHON" -m mmgrec_core train --dataset demo --out "$OUT/demo" --set 'baselines=[]'
echo "train wall s: $(( $(date +%s) - start ))"
"$PYTHON" -c "
import json; m = json.load(open('$OUT/demo/metrics.json'))['models']['mmgrec']
print('train_seconds', round(m['train_seconds'], 1), '| test', {k: round(v, 4) for k, v in m['test'].items()})"
"$PYTHON" -m mmgrec_core recommend --run "$OUT/demo" --user 0 --k 10
"$PYTHON" benchmarks/inference_vs_catalog.py --sizes 6000,100000,1000000 --out "$OUT/inference_vs_catalog_cuda.csv"
