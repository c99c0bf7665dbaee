#!/bin/bash
# Round 13 (CPU): distillation for opt6k (6,132 parameters, 99.27% mean of 3 plain at 15 epochs, against the 99.40%
# asked of it as a mean of 5). No round has distilled opt6k. Two arms on the validation split, seeds 0, 1 and 2
# stacked in one process per arm, one torch thread: opt6k's recipe, and the same distilled from round 12's teacher
# (gap20k without the validation images) at the defaults (temperature 4, weight 0.5).
# The rule, written before either arm ran: distillation replaces the recipe only with more correct final-epoch
# validation predictions over the three seeds (of 15,000); a tie keeps the recipe. The winner's test seeds 0-4 then
# train (`opt6k`, or the distilled variant `opt6k-kd`) and are recorded whatever they score.
# usage: bash results/experiments/distillation-rounds/round13.sh ARM   (ARM = base | kd | decide)
source "$(dirname "$0")/arms.sh"
case $1 in
  base) train_arm r13-opt6k-base opt6k ;;
  kd) train_arm r13-opt6k-kd opt6k "training.distill.teacher=$TEACHER" ;;
  decide) decide r13-opt6k base kd ;;
  *) echo "usage: $0 base|kd|decide"; exit 2 ;;
esac
