# Sourced by results/experiments/distillation-rounds/round9.sh, round10.sh and round11.sh (the CPU rounds).
# An arm is one student's seeds 0, 1 and 2 stacked in one process, trained on 55,000 images with the 5,000-image
# validation split held out, one torch thread, 15 epochs. ARMS_DRY=1 prints each command instead of running it.
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
TEACHER=runs/frontier/teacher-gap20k-val5k  # gap20k trained without the validation images (README, Distillation)

# train_arm RUN_NAME MODEL [OVERRIDE...]: trains runs/frontier/RUN_NAME, its output in runs/frontier/RUN_NAME.log
train_arm() {
  local name=$1 model=$2
  shift 2
  local cmd=(.venv/bin/tinyhub train "model=$model" "seeds=[0,1,2]" data.val_size=5000 training.threads=1
             report_to=none progress=false training.checkpoint_every=0 "$@" "run.dir=runs/frontier/$name"
             --data-dir "${DATA_DIR:-../shared/data/mnist}")
  if [ -n "${ARMS_DRY:-}" ]; then echo "${cmd[*]}"; else "${cmd[@]}" > "runs/frontier/$name.log" 2>&1; fi
}

# decide PREFIX ARM...: each arm's correct final-epoch validation predictions over its three seeds (of 15,000) from
# runs/frontier/PREFIX-ARM; the most correct wins, a tie going to the arm listed first (the control comes first).
decide() {
  .venv/bin/python - "$@" <<'PY'
import sys

from tinyhub.trainer.record import load_run

prefix, arms = sys.argv[1], sys.argv[2:]
correct = {arm: sum(round(load_run(f"runs/frontier/{prefix}-{arm}/seed_{s}").epochs[-1].val_accuracy * 50)
                    for s in range(3)) for arm in arms}
best = max(arms, key=lambda arm: (correct[arm], -arms.index(arm)))
print(f"{prefix}: " + ", ".join(f"{arm} {correct[arm]}" for arm in arms) + f" of 15,000 -> {best}")
PY
}

# rotation_round PREFIX MODEL LOW HIGH ARM: a distilled student with its recipe's rotation (arm base) against
# LOW and HIGH degrees (arms rotLOW, rotHIGH), or the round's decision (arm decide); rounds 10 and 11.
rotation_round() {
  local prefix=$1 model=$2 low=$3 high=$4 arm=$5
  case $arm in
    base) train_arm "$prefix-base" "$model" "training.distill.teacher=$TEACHER" ;;
    "rot$low" | "rot$high") train_arm "$prefix-$arm" "$model" "training.distill.teacher=$TEACHER" \
                                      "augment.rotation=${arm#rot}" ;;
    decide) decide "$prefix" base "rot$low" "rot$high" ;;
    *) echo "usage: $0 base|rot$low|rot$high|decide"; exit 2 ;;
  esac
}
