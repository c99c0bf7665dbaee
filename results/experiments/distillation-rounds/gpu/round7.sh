#!/bin/bash
# Round 7 on one GPU, call 1 of 2 (results/experiments/gpu-calibration/README.md): does a wider teacher help?
# The teacher: the gap layout at 24 / 48 channels (64,536 parameters; gap20k is 12 / 26), gap20k's recipe, seed 0,
#   15 epochs, trained without the 5,000 validation images, like the gap20k teacher of rounds 1-6.
# Stage A: per student, its current best arm (the control) against distillation from the wider teacher, on the
#   validation split, seeds 0, 1 and 2 stacked in one process per arm, 15 epochs. Controls start at once beside the
#   teacher; the wide-teacher arms start when the teacher has finished.
# Decision rule, fixed before anything ran: per student, the arm with the most correct validation predictions over
#   the three seeds (of 15,000) wins; a tie goes to the control. No test figure takes part. The rule writes
#   $OUT/round7-decisions.sh: the winners' full-set runs, seeds 0-2, through `tinyhub reproduce` (call 2,
#   round7b.sh), recorded whatever they score. A student whose control wins trains nothing more.
# R7_EXTRA: overrides for a local dry run (then setup.sh is not sourced)
[ -n "${R7_EXTRA:-}" ] || source results/experiments/gpu-calibration/setup.sh || exit 3
t_begin=$(date +%s)
W=/tmp/r7; mkdir -p $W
TW=runs/frontier/teacher-gapwide-val5k
python3 - <<'PY'
import json, os
T20 = "training.distill.teacher=runs/frontier/teacher-gap20k-val5k"
TW = "training.distill.teacher=runs/frontier/teacher-gapwide-val5k"
common = ["seeds=[0,1,2]", "data.val_size=5000", "training.checkpoint_every=0", *os.environ.get("R7_EXTRA", "").split()]
controls = {"model4-kd20": ["model=model4", T20],          # model4-kd's record (round 5)
            "gap5k-kd20": ["model=gap5k", T20],            # gap5k-kd's record (round 5)
            "efficient-base": ["model=efficient"],         # efficient's record
            "efficient-kd20": ["model=efficient", T20]}
wide = {"model4-kdW": ["model=model4", TW], "gap5k-kdW": ["model=gap5k", TW], "efficient-kdW": ["model=efficient", TW]}
for name, arms in (("controls", controls), ("wide", wide)):
    json.dump([{"name": n, "args": a + common} for n, a in arms.items()], open(f"/tmp/r7/{name}.json", "w"))
PY
python3 results/experiments/gpu-calibration/lanes.py $W/controls.json $W/controls --parallel 4 > $W/controls.out 2>&1 &
controls=$!
python3 -m tinyhub train model=gap20k +model.stem=24 +model.width=48 model.param_budget=80000 seed=0 \
  data.val_size=5000 training.checkpoint_every=0 run.dir=$TW report_to=none progress=false ${R7_EXTRA:-} > $W/teacher.log 2>&1 \
  || { echo "TEACHER FAILED"; tail -20 $W/teacher.log; }
tail -n 4 $W/teacher.log
tar czf $OUT/teacher-gapwide-val5k.tgz --exclude=checkpoints --exclude=images $TW
echo "teacher done at $(( $(date +%s) - t_begin )) s"
python3 results/experiments/gpu-calibration/lanes.py $W/wide.json $W/wide --parallel 3
wait $controls; cat $W/controls.out
python3 - <<'PY' > $W/decisions.sh
import json
jobs = [j for part in ("controls", "wide") for j in json.load(open(f"/tmp/r7/{part}/summary.json"))["jobs"]]
groups = {"model4": ("model4-kd20", "model4-kd"), "gap5k": ("gap5k-kd20", "gap5k-kd"),
          "efficient": ("efficient-base", "efficient-kd")}
for model, (control, label) in groups.items():
    group = [j for j in jobs if j["name"].startswith(model + "-") and j["rc"] == 0 and len(j["seeds"]) == 3]
    correct = {j["name"]: round(sum(s["val_accuracy"] for s in j["seeds"]) * 50) for j in group}  # of 15,000
    if control not in correct:  # no comparison without the control: nothing is decided
        print(f"# {model}: the control {control} did not finish; no decision")
        continue
    best = max(correct, key=lambda n: (correct[n], n == control))
    print(f"# {model}: " + ", ".join(f"{n} {c}" for n, c in sorted(correct.items(), key=lambda x: -x[1]))
          + f" -> {best}")
    if best != control:
        args = [a for a in next(j["args"] for j in group if j["name"] == best)
                if not a.startswith(("model=", "seeds=", "data.val_size=", "training.checkpoint_every=",
                                      "data.subset=", "training.epochs="))]
        print(f"python3 -m tinyhub reproduce --models {model} --label {label} --seeds 0 1 2 --runs-dir /tmp/r7/finals "
              f"--out /tmp/r7/records --results-md /tmp/r7/RESULTS.md --readme /tmp/r7/README.md "
              f"{' '.join(args)} ${{R7_EXTRA:-}} > /tmp/r7/finals-{label}.log 2>&1 &")
print("wait")
PY
cat $W/decisions.sh; cp $W/decisions.sh $OUT/round7-decisions.sh
cp $W/controls/summary.json $OUT/round7-controls.json; cp $W/wide/summary.json $OUT/round7-wide.json
tar czf $OUT/round7-a.tgz --exclude=checkpoints --exclude='*.safetensors' --exclude=images -C /tmp r7
echo "ROUND 7 STAGE A DONE in $(( $(date +%s) - t_begin )) s"
