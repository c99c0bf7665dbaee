#!/bin/bash
# Round 12 (CPU): longer training for the distilled model4 (`model4-kd`: 99.41% mean of 3 at 15 epochs, against the
# 99.45% asked of model4 as a mean of 5). Two arms on the validation split, seeds 0, 1 and 2 stacked in one process
# per arm, one torch thread each, side by side: `model4-kd`'s settings (rotation 14, 15 epochs) and the same
# trained for 30 epochs (OneCycle stretched over them). The teacher is trained again first by round 1's command
# (arm teacher), another draw of gap20k, so both arms are measured against the same teacher.
# The rule, written before any arm ran: 30 epochs replaces 15 only with more correct final-epoch validation
# predictions over the three seeds (of 15,000); a tie keeps 15. The winner's test seeds 0-4 then train as
# `model4-kd` and replace its records whatever they score.
# usage: bash results/experiments/distillation-rounds/round12.sh ARM   (ARM = teacher | base | e30 | decide)
source "$(dirname "$0")/arms.sh"
case $1 in
  teacher) mkdir -p runs/frontier
           cmd=(.venv/bin/tinyhub train model=gap20k seed=0 data.val_size=5000 training.threads=1 report_to=none
                progress=false training.checkpoint_every=0 "run.dir=$TEACHER"
                --data-dir "${DATA_DIR:-../shared/data/mnist}")
           if [ -n "${ARMS_DRY:-}" ]; then echo "${cmd[*]}"; else "${cmd[@]}" > "$TEACHER.log" 2>&1; fi ;;
  base) train_arm r12-model4-kd-base model4 "training.distill.teacher=$TEACHER" augment.rotation=14 ;;
  e30) train_arm r12-model4-kd-e30 model4 "training.distill.teacher=$TEACHER" augment.rotation=14 training.epochs=30 ;;
  decide) decide r12-model4-kd base e30 ;;
  *) echo "usage: $0 teacher|base|e30|decide"; exit 2 ;;
esac
