#!/bin/bash
# Round 9 (CPU): efficient distilled from gap20k with its new SGD recipe (round 8 chose SGD after distillation had
# been compared only with AdamW), against the recipe itself, on the
# validation split, seeds 0, 1 and 2 stacked in one process per arm, one torch thread each, the two arms side by
# side. The teacher is gap20k trained without the validation images (runs/frontier/teacher-gap20k-val5k; the
# README's "Distillation" section gives its command), as in rounds 1-6.
# The rule, written before either arm ran: distillation replaces the recipe only with more correct validation
# predictions over the three seeds (of 15,000); a tie keeps the recipe. If it wins, its test seeds 0-2 train
# afterwards (`tinyhub reproduce --models efficient --label efficient-kd ...`) and are recorded whatever they score.
# usage: bash results/experiments/distillation-rounds/round9.sh ARM   (ARM = base | kd)
#   then: bash results/experiments/distillation-rounds/round9.sh decide
source "$(dirname "$0")/arms.sh"
case $1 in
  base) train_arm r9-efficient-base efficient ;;
  kd) train_arm r9-efficient-kd efficient "training.distill.teacher=$TEACHER" ;;
  decide) decide r9-efficient base kd ;;
  *) echo "usage: $0 base|kd|decide"; exit 2 ;;
esac
