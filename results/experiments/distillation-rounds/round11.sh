#!/bin/bash
# Round 11 (CPU): the distilled model4 (`model4-kd`, 11 test images short of 99.40%) with the rotation
# of its augmentation varied, as round 10 did for gap5k (where 8 degrees beat the recipe's 12 by 16 of 15,000).
# model4's rotation (10 degrees) was searched for the plain model only
# (results/experiments/recipe-searches/model4-e6). Three arms on the validation split, seeds 0, 1 and 2 stacked in
# one process per arm, one torch thread each, side by side: distilled with the recipe's rotation 10, with 6 and
# with 14. The teacher is round 9's.
# The rule, written before any arm ran: an arm replaces the control only with more correct validation predictions
# over the three seeds (of 15,000); the most correct wins; a tie with the control keeps the control, a tie between
# the two new arms goes to rotation 6 (listed first). A winner's test seeds 0-2 then train as `model4-kd` with that
# rotation and replace its records whatever they score; model4's packaged (undistilled) recipe does not change.
# usage: bash results/experiments/distillation-rounds/round11.sh ARM   (ARM = base | rot6 | rot14)
#   then: bash results/experiments/distillation-rounds/round11.sh decide
source "$(dirname "$0")/arms.sh"
rotation_round r11-model4-kd model4 6 14 "$1"
