#!/bin/bash
# First call on the GPU machine: set up, smoke-test the CUDA path (a stack of two distilled bf16 models, and one fp32
# model), then time 2-epoch runs alone and eight side by side, to size round 5
# (results/experiments/distillation-rounds/gpu/round5.sh).
source results/experiments/gpu-calibration/setup.sh || exit 3
T=runs/frontier/teacher-gap20k-val5k
V="data.val_size=5000 training.checkpoint_every=0"
W=/tmp/cal; mkdir -p $W
python3 - <<'PY'
import json
T, V = "training.distill.teacher=runs/frontier/teacher-gap20k-val5k", ["data.val_size=5000", "training.checkpoint_every=0"]
smoke = [
    {"name": "smoke-gap5k-kd-k2", "args": ["model=gap5k", "seeds=[0,1]", "data.subset=2048", "data.val_size=512",
                                           "training.epochs=1", T]},
    {"name": "smoke-model4", "args": ["model=model4", "data.subset=2048", "training.epochs=1"]},
]
alone = [{"name": "cal-model4-k1", "args": ["model=model4", "training.epochs=2", *V]},
         {"name": "cal-model4-k3", "args": ["model=model4", "seeds=[0,1,2]", "training.epochs=2", *V]}]
side = ([{"name": f"par-model4-k3-{i}", "args": ["model=model4", "seeds=[0,1,2]", "training.epochs=2", *V]} for i in range(3)]
        + [{"name": f"par-efficient-k3-{i}", "args": ["model=efficient", "seeds=[0,1,2]", "training.epochs=2", *V]} for i in range(3)]
        + [{"name": f"par-gap5k-kd-k3-{i}", "args": ["model=gap5k", "seeds=[0,1,2]", "training.epochs=2", T, *V]} for i in range(2)])
for name, jobs in (("smoke", smoke), ("alone", alone), ("side", side)):
    json.dump(jobs, open(f"/tmp/cal/{name}.json", "w"))
PY
pack() { tar czf $OUT/call1.tgz --exclude=checkpoints --exclude='*.safetensors' --exclude=images -C /tmp cal; }
python3 results/experiments/gpu-calibration/lanes.py $W/smoke.json $W/smoke --parallel 2
if grep -q '"rc": [1-9]' $W/smoke/summary.json; then pack; echo "SMOKE FAILED"; exit 4; fi
python3 results/experiments/gpu-calibration/lanes.py $W/alone.json $W/alone --parallel 1
nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
python3 results/experiments/gpu-calibration/lanes.py $W/side.json $W/side --parallel 8 &
sleep 25; nvidia-smi --query-gpu=utilization.gpu,memory.used,clocks.sm --format=csv,noheader; uptime
wait
grep -h "epoch   [12]/2" $W/alone/*.log $W/side/par-model4-k3-0.log | cut -c1-200
pack; echo CALIBRATION DONE
