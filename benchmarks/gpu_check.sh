#!/usr/bin/env bash
# The GPU check of issue 13, prepared to run as one command on a CUDA machine (about 8 min on one H200):
#   1. times beam search against MF exact scoring and MF + HNSW at 6k and 100k items,
#   2. trains the demo run end to end on the GPU (no baselines), prints its train seconds and test metrics, and
#      decodes one user's top-10 from it (constrained beam search on the GPU),
#   3. the same timing as 1 at 1M items (the longest step: world, tokenizer fit and HNSW build).
# The cheap steps come first and a failed step does not stop the next, so a run cut short keeps what it measured.
#
#     OUT=/tmp/gpu_check bash benchmarks/gpu_check.sh
#
# PYTHON defaults to .venv/bin/python; it needs a CUDA build of torch (the pinned CPU wheel cannot see a GPU).
# It writes the CSVs and figures under $OUT (default: a temporary folder), the demo run to $RUN (default: $OUT/demo).
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
OUT=${OUT:-$(mktemp -d)}
RUN=${RUN:-$OUT/demo}
export PYTHONUNBUFFERED=1
"$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu_check: torch sees no CUDA device')" \
  || exit 1
"$PYTHON" -c "import torch; print('device:', torch.cuda.get_device_name(0), '| torch', torch.__version__)"
status=0

"$PYTHON" benchmarks/inference_vs_catalog.py --sizes 6000,100000 --out "$OUT/inference_small_cuda.csv" || status=1

start=$(date +%s)
if "$PYTHON" -m mmgrec_core train --dataset demo --out "$RUN" --set 'baselines=[]'; then
  echo "train wall s: $(( $(date +%s) - start ))"
  "$PYTHON" -c "
import json; m = json.load(open('$RUN/metrics.json'))['models']['mmgrec']
print('train_seconds', round(m['train_seconds'], 1), '| test', {k: round(v, 4) for k, v in m['test'].items()})"
  "$PYTHON" -m mmgrec_core recommend --run "$RUN" --user 0 --k 10 || status=1
else
  status=1
fi

"$PYTHON" benchmarks/inference_vs_catalog.py --sizes 1000000 --out "$OUT/inference_1m_cuda.csv" || status=1
exit $status
