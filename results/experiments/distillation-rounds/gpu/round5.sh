#!/bin/bash
# Round 5 on one GPU, in one call (results/experiments/gpu-calibration/README.md).
# Stage A: seven arms on the validation split (5,000 training images held out), seeds 0, 1 and 2 trained together
#   in one process per arm, 15 epochs, all arms side by side.
# Decision rule, fixed before anything ran: per model, the arm with the most correct validation predictions over
#   the three seeds (15,000) wins; a tie goes to the recipe as it is. No test figure takes part.
# Stage B: a model whose winner is not its current recipe trains seeds 0, 1, 2 on the full training set through
#   `tinyhub reproduce`; those records replace the model's records whatever they score. A model whose recipe wins
#   trains nothing more.
source results/experiments/gpu-calibration/setup.sh || exit 3
t_begin=$(date +%s)
W=/tmp/r5; mkdir -p $W; cp README.md RESULTS.md $W/
python3 - <<'PY'
import json
T = "training.distill.teacher=runs/frontier/teacher-gap20k-val5k"
arms = {"model4-base": ["model=model4"],
        "model4-kd": ["model=model4", T],
        "model4-ls": ["model=model4", "training.label_smoothing=0.1"],
        "model4-lr36": ["model=model4", "training.scheduler.max_lr=0.36"],
        "gap5k-kd-base": ["model=gap5k", T],
        "gap5k-kd-lr30": ["model=gap5k", T, "training.scheduler.max_lr=0.3"],
        "gap5k-kd-w03": ["model=gap5k", T, "training.distill.weight=0.3"]}
common = ["seeds=[0,1,2]", "data.val_size=5000", "training.checkpoint_every=0"]
json.dump([{"name": n, "args": a + common} for n, a in arms.items()], open("/tmp/r5/arms.json", "w"))
PY
pack() { tar czf $OUT/$1.tgz --exclude=checkpoints --exclude='*.safetensors' --exclude=images -C /tmp r5; }
python3 results/experiments/gpu-calibration/lanes.py $W/arms.json $W/arms --parallel 7
pack round5-a
python3 - <<'PY' > $W/decisions.sh
import json
jobs = json.load(open("/tmp/r5/arms/summary.json"))["jobs"]
for model, label in (("model4", "model4"), ("gap5k-kd", "gap5k-kd")):
    group = [j for j in jobs if j["name"].startswith(model + "-") and j["rc"] == 0 and len(j["seeds"]) == 3]
    correct = {j["name"]: round(sum(s["val_accuracy"] for s in j["seeds"]) * 50) for j in group}  # of 15,000
    base = f"{model}-base"
    best = max(correct, key=lambda n: (correct[n], n == base))
    print(f"# {model}: " + ", ".join(f"{n} {c}" for n, c in sorted(correct.items(), key=lambda x: -x[1]))
          + f" -> {best}")
    if best != base:
        args = [a for a in next(j["args"] for j in group if j["name"] == best)
                if not a.startswith(("model=", "seeds=", "data.val_size=", "training.checkpoint_every="))]
        arch = model.split("-")[0]
        print(f"python3 -m tinyhub reproduce --models {arch} --label {label} --seeds 0 1 2 --runs-dir /tmp/r5/finals "
              f"--out /tmp/r5/records --results-md /tmp/r5/RESULTS.md --readme /tmp/r5/README.md "
              f"{' '.join(args)} > /tmp/r5/finals-{label}.log 2>&1 &")
print("wait")
PY
cat $W/decisions.sh
left=$(( 590 - ($(date +%s) - t_begin) ))
if [ $left -lt 220 ]; then echo "STAGE B SKIPPED: only $left s left in this call"; exit 0; fi
bash $W/decisions.sh
tail -n 4 $W/finals-*.log 2>/dev/null
cat $W/records/*/seed_*.json 2>/dev/null | python3 -c "
import json,sys
dec=json.JSONDecoder(); s=sys.stdin.read(); i=0
while i < len(s.strip()):
    d,j=dec.raw_decode(s,i); i=j
    while i<len(s) and s[i].isspace(): i+=1
    print(d['label'], d['seed'], d['test_accuracy'], d['test_correct'], d['hardware'])"
pack round5-b; echo "ROUND 5 DONE in $(( $(date +%s) - t_begin )) s"
