#!/bin/bash
# Round 9 of issue #16 (CPU, no GPU lent this session): efficient distilled from gap20k with its new SGD recipe
# (round 8 chose SGD after distillation had been compared only with AdamW), against the recipe itself, on the
# validation split, seeds 0, 1 and 2 stacked in one process per arm, one torch thread each, the two arms side by
# side. The teacher is gap20k trained without the validation images (runs/frontier/teacher-gap20k-val5k; the
# README's "Distillation" section gives its command), as in rounds 1-6.
# The rule, written before either arm ran: distillation replaces the recipe only with more correct validation
# predictions over the three seeds (of 15,000); a tie keeps the recipe. If it wins, its test seeds 0-2 train
# afterwards (`tinyhub reproduce --models efficient --label efficient-kd ...`) and are recorded whatever they score.
# usage: bash results/frontier/round9.sh ARM   (ARM = base | kd); then: bash results/frontier/round9.sh decide
cd "$(dirname "$0")/../.."
T=runs/frontier/teacher-gap20k-val5k
case $1 in
  base) extra=() ;;
  kd) extra=("training.distill.teacher=$T") ;;
  decide)
    .venv/bin/python - <<'PY'
from tinyhub.trainer.record import load_run
correct = {arm: sum(round(load_run(f"runs/frontier/r9-efficient-{arm}/seed_{s}").epochs[-1].val_accuracy * 50)
                    for s in range(3)) for arm in ("base", "kd")}
print(f"efficient: recipe {correct['base']}, distilled {correct['kd']} of 15,000 -> "
      + ("distilled" if correct["kd"] > correct["base"] else "recipe"))
PY
    exit ;;
  *) echo "usage: $0 base|kd|decide"; exit 2 ;;
esac
.venv/bin/tinyhub train model=efficient "seeds=[0,1,2]" data.val_size=5000 training.threads=1 report_to=none \
  progress=false training.checkpoint_every=0 "${extra[@]}" run.dir=runs/frontier/r9-efficient-$1 \
  --data-dir "${DATA_DIR:-../shared/data/mnist}" > runs/frontier/r9-efficient-$1.log 2>&1
