#!/bin/bash
# Whole epochs before and after 2026-12-01's two speed changes (13e170c: MaxPool2d through the channels-last
# kernels; b5f0948: evaluation 250 images per pass), on the same machine, in turn: `tinyhub bench` of the code at
# 981e967 ("old") and at b5f0948 ("new"), two rounds each, gap8k then gap20k. Outputs: ab-<model>-<old|new>-<round>.txt.
# The old code runs from a git worktree put first on PYTHONPATH, from a folder without a tinyhub/ of its own (from
# the repository root, `python -m tinyhub` would import the checkout's code instead).
# (The outputs here came from these commands typed out by hand over the same kind of worktree.)
# usage: bash results/experiments/speed-pooling-and-eval-batch/ab/run.sh [DATA_DIR]
#        (from the repository root, with the venv active)
set -e
repo=$(pwd); out=$repo/results/experiments/speed-pooling-and-eval-batch/ab
data=$(realpath "${1:-../shared/data/mnist}")
work=$(mktemp -d)
git worktree add -q "$work/old" 981e967
mkdir -p "$work/pkg" "$work/cwd"
cp -r "$work/old/tinyhub" "$work/pkg/"
for d in modeling trainer cards; do ln -s "$work/old/$d" "$work/pkg/tinyhub/$d"; done
cd "$work/cwd"
for m in gap8k gap20k; do
  for round in 1 2; do
    PYTHONPATH="$work/pkg" python -m tinyhub bench --model $m --data-dir "$data" > "$out/ab-$m-old-$round.txt" 2>&1
    python -m tinyhub bench --model $m --data-dir "$data" > "$out/ab-$m-new-$round.txt" 2>&1
  done
done
cd "$repo" && git worktree remove --force "$work/old"
