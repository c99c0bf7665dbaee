#!/bin/bash
# Round 10 of issue #16 (CPU): the distilled gap5k (the <=5,000-parameter frontier, 19 test images short of 99.40%)
# with the rotation of its augmentation searched for the first time. gap5k took gap8k's rotation (12 degrees, the
# best of 0 / 6 / 12 for gap8k, results/sweeps/gap8k-e15); whether a 4,836-parameter student distilled from gap20k
# wants less or more was never measured. Three arms on the validation split, seeds 0, 1 and 2 stacked in one
# process per arm, one torch thread each, side by side: the recipe (rotation 12), rotation 8 and rotation 16. The
# teacher is round 9's (runs/frontier/teacher-gap20k-val5k, retrained this session by round 1's command).
# The rule, written before any arm ran: an arm replaces the recipe only with more correct validation predictions
# over the three seeds (of 15,000); the most correct wins; a tie with the recipe keeps the recipe, a tie between the
# two new arms goes to rotation 8 (listed first). A winner's test seeds 0-2 then train and are recorded whatever
# they score.
# usage: bash results/frontier/round10.sh ARM   (ARM = base | rot8 | rot16); then: bash results/frontier/round10.sh decide
cd "$(dirname "$0")/../.."
T=runs/frontier/teacher-gap20k-val5k
case $1 in
  base) extra=() ;;
  rot8) extra=(augment.rotation=8) ;;
  rot16) extra=(augment.rotation=16) ;;
  decide)
    .venv/bin/python - <<'PY'
from tinyhub.trainer.record import load_run
arms = ("base", "rot8", "rot16")
correct = {arm: sum(round(load_run(f"runs/frontier/r10-gap5k-kd-{arm}/seed_{s}").epochs[-1].val_accuracy * 50)
                    for s in range(3)) for arm in arms}
best = max(arms, key=lambda a: (correct[a], a == "base", a == "rot8"))
print("gap5k-kd: " + ", ".join(f"{a} {correct[a]}" for a in arms) + f" of 15,000 -> {best}")
PY
    exit ;;
  *) echo "usage: $0 base|rot8|rot16|decide"; exit 2 ;;
esac
.venv/bin/tinyhub train model=gap5k "seeds=[0,1,2]" data.val_size=5000 training.threads=1 report_to=none \
  progress=false training.checkpoint_every=0 "training.distill.teacher=$T" "${extra[@]}" \
  run.dir=runs/frontier/r10-gap5k-kd-$1 --data-dir "${DATA_DIR:-../shared/data/mnist}" \
  > runs/frontier/r10-gap5k-kd-$1.log 2>&1
