#!/bin/bash
# The GPU proof in one call (≤ 5 minutes on an H100/H200): the gpu tests, model4's 15-epoch recipe end to end (and
# three epochs of its eager step, against the CUDA graph; one epoch evaluated in one batch), the speed recipe's runs, the seeds stacked K = 1..16, and
# tinyhub against the seeds' pipeline on the same GPU. Every figure goes to $OUT (prove.log, figures.json, and
# machine.txt: the GPU, driver and versions); back on the CPU machine,
# `python results/gpu/figures.py docs OUT [OUT2]` writes them into the Speed page's GPU table (a rehearsal's CPU
# figures are refused) and prints them against the targets.
#
#   on the CPU machine, once:  bash results/gpu/prepare.sh            (wheels into .whl/, MNIST into .gpu/mnist)
#   rehearsal on the CPU:      PROVE_REHEARSAL=1 OUT=/tmp/prove-out bash results/gpu/prove.sh
#   on the GPU machine:        OUT=$OUT bash results/gpu/prove.sh     (carry .whl and .gpu)
#   in two calls, if one would run past its limit: PART=1 (tests, model4, fast99), then PART=2 (the stack, the
#   seeds' pipeline, `reproduce --jobs`); each call writes its own prove.log and figures.json to its $OUT.
set -u
PART=${PART:-all}
part() { [ "$PART" = all ] || [ "$PART" = "$1" ]; }
OUT=${OUT:?set OUT to a folder for the outputs}
RUNS=/tmp/tinyhub-prove-runs  # the runs' own folders: this script's scratch, emptied so that a second call starts clean
rm -rf "$RUNS"
mkdir -p "$OUT" "$RUNS"
LOG=$OUT/prove.log
if [ "${PROVE_REHEARSAL:-0}" = 1 ]; then
  # The same stages on the CPU, small: proves the script, not the GPU.
  TINYHUB=${TINYHUB:-.venv/bin/tinyhub}; PY=${PY:-.venv/bin/python}
  export TINYHUB_DATA_DIR=${TINYHUB_DATA_DIR:-../shared/data/mnist} TINYHUB_GPU_REHEARSAL=1 PYTHONUNBUFFERED=1
  DEV="training.device=cpu"; SMALL="data.subset=2000 training.epochs=1"; KS="1 2"; FAST_SEEDS=2
  ZOO="gap2k opt6k"; ZOO_EPOCHS=1
else
  source results/experiments/gpu-calibration/setup.sh > "$OUT/machine.txt" 2>&1 || { cat "$OUT/machine.txt"; exit 3; }
  TINYHUB="python3 -m tinyhub"; PY=python3
  # The tests run `tinyhub` from beside the interpreter; without an editable install (setup.sh's fallback) there
  # is none, so put one there.
  CLI=$(dirname "$(python3 -c 'import sys; print(sys.executable)')")/tinyhub
  [ -x "$CLI" ] || { printf '#!/bin/sh\nexec python3 -m tinyhub "$@"\n' > "$CLI" && chmod +x "$CLI"; } \
    || echo "no tinyhub command beside python3: the gpu tests that run it will fail" | tee -a "$LOG"
  DEV="training.device=auto"; SMALL=""; KS="1 2 4 8 16"; FAST_SEEDS=10
  ZOO="gap2k gap5k gap8k model4"; ZOO_EPOCHS=3
fi
export TINYHUB_TEST_DATA=$TINYHUB_DATA_DIR
COMMON="report_to=none progress=false training.checkpoint_every=0 $DEV"
stage() { echo "== $1 $(date +%T)" | tee -a "$LOG"; }
train() {  # train NAME ARGS...: one timed process; its record stays in $RUNS/NAME
  local name=$1; shift
  local start=$(date +%s.%N)
  $TINYHUB train $COMMON "$@" run.dir=$RUNS/$name > $RUNS/$name.log 2>&1
  local rc=$? end=$(date +%s.%N)
  echo "run $name rc=$rc wall=$(echo "$end - $start" | bc) args=$*" | tee -a "$LOG"
  tail -3 $RUNS/$name.log >> "$LOG"
}

if part 1; then
  stage "gpu tests"
  $PY -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py 2>&1 | tail -15 | tee -a "$LOG"

  stage "model4 recipe end to end"
  train model4-recipe model=model4 $SMALL

  stage "model4 recipe, 3 epochs of the eager step (training.cuda_graphs=false), for the step's speed-up"
  train model4-eager model=model4 training.epochs=3 training.cuda_graphs=false $SMALL

  stage "model4, one epoch evaluated 10,000 test images per forward (data.eval_batch_size=10000; the default is 250)"
  train model4-evalbatch model=model4 training.epochs=1 data.eval_batch_size=10000 $SMALL

  stage "speed recipe fast99, $FAST_SEEDS seeds"
  for s in $(seq 0 $((FAST_SEEDS - 1))); do train fast99-s$s model=fast99 seed=$s $SMALL; done
fi

if part 2; then
  stage "stacked seeds, K = $KS (bench --stack: K models trained together, side by side)"
  $TINYHUB bench --model model4 --stack $KS ${SMALL:+--quick} 2>&1 | tail -25 | tee -a "$LOG"

  stage "tinyhub against the seeds' pipeline, whole epochs, same device"
  $TINYHUB bench --model model4 --rounds 1 ${SMALL:+--quick} 2>&1 | tail -25 | tee -a "$LOG"

  stage "a zoo filling the device: reproduce --jobs 4, each recipe's 3 seeds stacked, $ZOO_EPOCHS epochs"
  $TINYHUB reproduce --models $ZOO --seeds 0 1 2 --jobs 4 --runs-dir $RUNS/zoo --out $RUNS/zoo-results \
    --results-md $RUNS/zoo-RESULTS.md --readme $RUNS/zoo-README.md $COMMON training.epochs=$ZOO_EPOCHS \
    ${SMALL:+data.subset=2000} 2>&1 | grep -E "training:|done in|error|failed" | tee -a "$LOG"
  stage "zoo done"
fi

stage "figures"
$PY results/gpu/figures.py "$LOG" "$RUNS" "$OUT/figures.json" 2>&1 | tee -a "$LOG"
echo "PROVE DONE" | tee -a "$LOG"
