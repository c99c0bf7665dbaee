#!/bin/bash
# Round 8 on one GPU, one call (results/experiments/gpu-calibration/README.md): the settings not yet searched,
#   against the current best arms. Eight arms on the validation split, seeds 0, 1 and 2 stacked in one process per
#   arm, 15 epochs, all side by side; the teacher is round 1's gap20k (runs/frontier/teacher-gap20k-val5k).
# The controls are round 7's draws of each student's current best arm on this GPU, same code
#   (results/experiments/distillation-rounds/gpu/round7-controls.json): model4-kd20 14,915, gap5k-kd20 14,922,
#   efficient-base 14,908 correct of 15,000.
#   (gap5k and efficient repeated exactly from one call to the next here; model4 did not, so its control is a draw.)
# Decision rule, fixed before anything ran: per student, an arm replaces the control only with more correct
#   validation predictions over the three seeds than the control; among such arms, the most correct wins; a tie
#   with the control goes to the control. No test figure takes part. The winners' test seeds 0-2 train afterwards
#   (on the CPU) and are recorded whatever they score.
# R8_EXTRA: overrides for a local dry run (then setup.sh is not sourced)
[ -n "${R8_EXTRA:-}" ] || source results/experiments/gpu-calibration/setup.sh || exit 3
t_begin=$(date +%s)
W=/tmp/r8; mkdir -p $W
python3 - <<'PY'
import json, os
T20 = "training.distill.teacher=runs/frontier/teacher-gap20k-val5k"
SGD = ["training.optimizer.name=sgd", "training.optimizer.lr=0.05", "training.optimizer.momentum=0.9",
       "training.optimizer.nesterov=true", "training.optimizer.weight_decay=0.0001"]
arms = {"efficient-sgd20": ["model=efficient", *SGD, "training.scheduler.max_lr=0.2"],   # model4's optimizer
        "efficient-sgd10": ["model=efficient", *SGD, "training.scheduler.max_lr=0.1"],
        "efficient-dropout0": ["model=efficient", "model.dropout=0.0"],                  # recipe: 0.1
        "efficient-lr8": ["model=efficient", "training.scheduler.max_lr=0.008"],         # recipe: 0.0053
        "model4-kd20-t2": ["model=model4", T20, "training.distill.temperature=2"],       # recipe: 4
        "model4-kd20-w07": ["model=model4", T20, "training.distill.weight=0.7"],         # recipe: 0.5
        "gap5k-kd20-t2": ["model=gap5k", T20, "training.distill.temperature=2"],
        "gap5k-kd20-w03": ["model=gap5k", T20, "training.distill.weight=0.3"]}
common = ["seeds=[0,1,2]", "data.val_size=5000", "training.checkpoint_every=0", *os.environ.get("R8_EXTRA", "").split()]
json.dump([{"name": n, "args": a + common} for n, a in arms.items()], open("/tmp/r8/arms.json", "w"))
PY
python3 results/experiments/gpu-calibration/lanes.py $W/arms.json $W/arms --parallel 8
python3 - <<'PY' > $W/decisions.txt
import json
jobs = json.load(open("/tmp/r8/arms/summary.json"))["jobs"]
r7_controls = "results/experiments/distillation-rounds/gpu/round7-controls.json"
controls = {j["name"]: round(sum(s["val_accuracy"] for s in j["seeds"]) * 50)
            for j in json.load(open(r7_controls))["jobs"]}
for model, control in (("model4", "model4-kd20"), ("gap5k", "gap5k-kd20"), ("efficient", "efficient-base")):
    correct = {j["name"]: round(sum(s["val_accuracy"] for s in j["seeds"]) * 50) for j in jobs  # of 15,000
               if j["name"].startswith(model + "-") and j["rc"] == 0 and len(j["seeds"]) == 3}
    correct[control] = controls[control]
    best = max(correct, key=lambda n: (correct[n], n == control))
    print(f"# {model}: " + ", ".join(f"{n} {c}" for n, c in sorted(correct.items(), key=lambda x: -x[1]))
          + f" -> {best}")
    if best != control:
        print(" ".join(a for a in next(j["args"] for j in jobs if j["name"] == best)
                       if not a.startswith(("seeds=", "data.val_size=", "training.checkpoint_every=",
                                            "data.subset=", "training.epochs="))))
PY
cat $W/decisions.txt; cp $W/decisions.txt $OUT/round8-decisions.txt; cp $W/arms/summary.json $OUT/round8-arms.json
tar czf $OUT/round8.tgz --exclude=checkpoints --exclude='*.safetensors' --exclude=images -C /tmp r8
echo "ROUND 8 DONE in $(( $(date +%s) - t_begin )) s"
