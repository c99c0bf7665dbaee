#!/bin/bash
# Round 7, call 2 of 2: the full-set runs that round7.sh's rule chose (round7-decisions.sh.txt,
# committed as call 1 wrote it), with the wider teacher carried back from call 1. Records whatever they score.
# R7_EXTRA: overrides for a local dry run (then setup.sh is not sourced)
[ -n "${R7_EXTRA:-}" ] || source results/experiments/gpu-calibration/setup.sh || exit 3
t_begin=$(date +%s)
mkdir -p /tmp/r7; cp README.md RESULTS.md /tmp/r7/
bash results/experiments/distillation-rounds/gpu/round7-decisions.sh.txt
tail -n 4 /tmp/r7/finals-*.log
python3 - <<'PY'
import glob
from tinyhub.trainer.record import load_run
for f in sorted(glob.glob("/tmp/r7/finals/*/seed_*/results.json") + glob.glob("/tmp/r7/finals/*/results.json")):
    r = load_run(f.rsplit("/", 1)[0])
    print(r.model, r.seed, r.final.test_accuracy, r.final.test_correct, r.hardware_text)
PY
tar czf $OUT/round7-b.tgz --exclude=checkpoints --exclude='*.safetensors' --exclude=images -C /tmp r7
echo "ROUND 7 STAGE B DONE in $(( $(date +%s) - t_begin )) s"
