#!/bin/bash
# Source this on the GPU machine (results/experiments/gpu-calibration/README.md). That machine has PyTorch, accelerate,
# huggingface_hub and safetensors but no package registry, so tinyhub's other needs travel as wheels in .whl/
# (pure Python), and MNIST travels in .gpu/mnist. Prints what the machine is, to record with every figure from it.
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || { echo "SETUP FAILED: wheels"; exit 3; }
export PYTHONPATH=/tmp/site
if ! PYTHONWARNINGS="ignore:Editable installation" python3 -m pip install -q --no-index --no-deps \
     --no-build-isolation -e . >/tmp/editable.log 2>&1; then
  # No recent setuptools there: the same namespace as setup.cfg's package_dir, by links into this checkout.
  echo "editable install failed ($(tail -1 /tmp/editable.log)); linking the tinyhub namespace instead"
  mkdir -p /tmp/shim/tinyhub && ln -sf "$PWD"/tinyhub/* /tmp/shim/tinyhub/ \
    && for d in modeling trainer cards; do ln -sfn "$PWD/$d" /tmp/shim/tinyhub/$d; done
  export PYTHONPATH=/tmp/site:/tmp/shim
fi
export TINYHUB_DATA_DIR=$PWD/.gpu/mnist PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv,noheader
python3 - <<'PY' || { echo "SETUP FAILED: imports"; exit 3; }
import platform, torch, accelerate, hydra, datasets, evaluate, huggingface_hub
import tinyhub, tinyhub.trainer.engine
print("python", platform.python_version(), "| torch", torch.__version__, "cuda", torch.version.cuda,
      "| accelerate", accelerate.__version__, "| hub", huggingface_hub.__version__, "| datasets", datasets.__version__,
      "| gpu", torch.cuda.get_device_name(0), "| cpus", __import__("os").cpu_count())
PY
echo "git: $(git rev-parse HEAD 2>/dev/null || echo 'no .git here') ; sent from: $(cat .gpu/commit 2>/dev/null)"
