#!/bin/bash
# Regenerates results/experiments/speed-variants/variants/<model>.txt: `tinyhub bench --variants all` for the
# recipes whose bound (the seeds' epoch over tinyhub's step alone, results/speed/<model>.txt) is under 2.0. Each row
# is tinyhub's trainer with one setting changed (channels_last, bf16, torch.compile, batch 256/512, glibc's default
# allocator), against the seeds' pipeline on the recipe as it is; two rounds in turn, one recipe at a time on an
# otherwise idle machine.
# usage: bash results/experiments/speed-variants/variants.sh [DATA_DIR] [MODEL...]
cd "$(dirname "$0")/../../.."
data=${1:-../shared/data/mnist}; shift || true
models=${*:-model4 opt6k efficient gap20k}
tinyhub=tinyhub; [ -x .venv/bin/tinyhub ] && tinyhub=.venv/bin/tinyhub
out=results/experiments/speed-variants/variants
failed=()
for m in $models; do
  if "$tinyhub" bench --model "$m" --variants all --rounds 2 --data-dir "$data" > "$out/$m.txt.tmp" 2>&1; then
    mv "$out/$m.txt.tmp" "$out/$m.txt"
  else
    failed+=("$m (see $out/$m.txt.tmp)")
  fi
done
[ ${#failed[@]} -eq 0 ] || { echo "bench failed for: ${failed[*]}" >&2; exit 1; }
