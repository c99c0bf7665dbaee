#!/bin/bash
# Regenerates results/experiments/speed-stack/stack-<model>.txt: K models of one recipe trained together
# (`tinyhub train seeds=[...]`, trainer/stack.py) for K = 1, 2, 4, 8, 16, each K in a process of its own; aggregate
# training images/s against K=1. 10,000 training images per model and epoch, two epochs, the second reported; one
# torch thread.
# usage: bash results/experiments/speed-stack/stack.sh [DATA_DIR] [MODEL...]
cd "$(dirname "$0")/../../.."
data=${1:-../shared/data/mnist}; shift || true
models=${*:-model4}
for m in $models; do
  tinyhub bench --model "$m" --stack 1 2 4 8 16 --subset 10000 --threads 1 --data-dir "$data" \
    > "results/experiments/speed-stack/stack-$m.txt" 2>&1
done
