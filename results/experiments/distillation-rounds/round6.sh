#!/bin/bash
# Round 6 (CPU): model4 distilled from one gap20k teacher (round 5's winner) against an averaged
# ensemble of two (gap20k seeds 0 and 1, trained on the same 55,000 images), on the validation split, seeds 0, 1
# and 2 stacked in one process per arm, one torch thread each, the two arms side by side.
# The rule, written before either arm finished: the ensemble is preferred only with more correct validation
# predictions over the three seeds (of 15,000) than one teacher. No test run follows (CPU time):
# the outcome is reported in validation.md, round 6, whichever way it goes.
# usage: bash results/experiments/distillation-rounds/round6.sh ARM   (ARM = kd | kd-ens)
cd "$(dirname "$0")/../../.."
T0=runs/frontier/teacher-gap20k-val5k T1=runs/frontier/teacher-gap20k-val5k-s1
case $1 in
  kd) teacher=$T0 ;;
  kd-ens) teacher="[$T0,$T1]" ;;
  *) echo "usage: $0 kd|kd-ens"; exit 2 ;;
esac
.venv/bin/tinyhub train model=model4 "seeds=[0,1,2]" data.val_size=5000 training.threads=1 report_to=none \
  progress=false "training.distill.teacher=$teacher" run.dir=runs/frontier/r6-model4-$1 \
  --data-dir "${DATA_DIR:-../shared/data/mnist}" > runs/frontier/r6-model4-$1.log 2>&1
