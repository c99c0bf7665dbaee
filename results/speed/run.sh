#!/bin/bash
# Regenerates results/speed/<model>.txt: `tinyhub bench` for every packaged recipe, one after another on an otherwise
# idle machine (whole epochs of tinyhub.trainer.train against the seeds' pipeline; the second epoch is reported),
# three rounds in turn, the round of the median ratio in the table.
# A bench that fails leaves the recipe's earlier output in place and is named at the end.
# usage: bash results/speed/run.sh [DATA_DIR] [MODEL...]
cd "$(dirname "$0")/../.."
data=${1:-../shared/data/mnist}; shift || true
models=${*:-model4 opt6k net24k efficient minimobilenet gap8k gap20k gap5k gap2k}
tinyhub=tinyhub; [ -x .venv/bin/tinyhub ] && tinyhub=.venv/bin/tinyhub
failed=()
for m in $models; do
  if "$tinyhub" bench --model "$m" --profile --rounds 3 --data-dir "$data" > "results/speed/$m.txt.tmp" 2>&1; then
    mv "results/speed/$m.txt.tmp" "results/speed/$m.txt"
  else
    failed+=("$m (see results/speed/$m.txt.tmp)")
  fi
done
[ ${#failed[@]} -eq 0 ] || { echo "bench failed for: ${failed[*]}" >&2; exit 1; }
