#!/bin/bash
# Regenerates results/speed/<model>.txt: `tinyhub bench` for every packaged recipe, one after another on an otherwise
# idle machine (whole epochs of tinyhub.trainer.train against the seeds' pipeline; the second epoch is reported).
# usage: bash results/speed/run.sh [DATA_DIR] [MODEL...]
cd "$(dirname "$0")/../.."
data=${1:-../shared/data/mnist}; shift || true
models=${*:-model4 opt6k net24k efficient minimobilenet gap8k gap20k gap5k gap2k}
for m in $models; do
  tinyhub bench --model "$m" --profile --data-dir "$data" > "results/speed/$m.txt" 2>&1
done
