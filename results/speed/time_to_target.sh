#!/bin/bash
# Regenerates results/speed/time-to-target.txt: `tinyhub bench --to 99.0 99.4 --profile` on an otherwise idle
# machine (fast99 over 10 seeds and fast994 over 5, each beside the seeds' pipeline with as many seeds), and the
# records of tinyhub's timed runs in results/fast99/ and results/fast994/. A failed bench leaves the earlier output
# in place. Then `python results/speed/table.py --write README.md` and `tinyhub reproduce --table-only`.
# usage: bash results/speed/time_to_target.sh [DATA_DIR]
cd "$(dirname "$0")/../.."
data=${1:-../shared/data/mnist}
tinyhub=tinyhub; [ -x .venv/bin/tinyhub ] && tinyhub=.venv/bin/tinyhub
if "$tinyhub" bench --to 99.0 99.4 --profile --record results --data-dir "$data" \
    > results/speed/time-to-target.txt.tmp 2> results/speed/time-to-target.log; then
  mv results/speed/time-to-target.txt.tmp results/speed/time-to-target.txt
else
  echo "bench --to failed: see results/speed/time-to-target.txt.tmp and results/speed/time-to-target.log" >&2
  exit 1
fi
