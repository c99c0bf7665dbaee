#!/bin/bash
# Round 10 (CPU): the distilled gap5k (the <=5,000-parameter frontier, 19 test images short of 99.40%)
# with the rotation of its augmentation searched for the first time. gap5k took gap8k's rotation (12 degrees, the
# best of 0 / 6 / 12 for gap8k, results/experiments/recipe-searches/gap8k-e15); whether a 4,836-parameter student
# distilled from gap20k wants less or more was never measured. Three arms on the validation split, seeds 0, 1 and 2
# stacked in one process per arm, one torch thread each, side by side: the recipe (rotation 12), rotation 8 and
# rotation 16. The teacher is round 9's (runs/frontier/teacher-gap20k-val5k, retrained by round 1's command).
# The rule, written before any arm ran: an arm replaces the recipe only with more correct validation predictions
# over the three seeds (of 15,000); the most correct wins; a tie with the recipe keeps the recipe, a tie between the
# two new arms goes to rotation 8 (listed first). A winner's test seeds 0-2 then train and are recorded whatever
# they score.
# usage: bash results/experiments/distillation-rounds/round10.sh ARM   (ARM = base | rot8 | rot16)
#   then: bash results/experiments/distillation-rounds/round10.sh decide
source "$(dirname "$0")/arms.sh"
rotation_round r10-gap5k-kd gap5k 8 16 "$1"
