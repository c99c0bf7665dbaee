#!/usr/bin/env bash
# Every packaged recipe's model, exported to ONNX and int8 and verified on the whole MNIST test split.
#   bash results/exports/export_all.sh [RUNS_DIR] [DATA_DIR]
# Trains seed 0 of each recipe into RUNS_DIR/<recipe> unless that run is already there (one thread, so that a second
# job can share a 2-core machine), runs `tinyhub export` on it, then writes the table results/exports/exports.md
# from the runs' exports.json files (results/exports/table.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-runs/exports}
DATA=${2:-../shared/data/mnist}
TINYHUB=${TINYHUB:-.venv/bin/tinyhub}
RECIPES=$(ls trainer/recipes/model/*.yaml)
for recipe in $RECIPES; do
  m=$(basename "$recipe" .yaml)
  if [ ! -f "$RUNS/$m/results.json" ]; then
    "$TINYHUB" train model="$m" seed=0 training.threads=1 report_to=none progress=false --data-dir "$DATA" \
      run.dir="$RUNS/$m"
  fi
  echo "== $m"
  "$TINYHUB" export "$RUNS/$m" || echo "== $m: an export failed its check (recorded in its exports.json)"
done
.venv/bin/python results/exports/table.py "$RUNS" --write results/exports/exports.md
