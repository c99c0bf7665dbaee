#!/bin/bash
# On the CPU machine, before a GPU call: what results/gpu/prove.sh needs there and that machine cannot download.
# It has PyTorch, accelerate, huggingface_hub and safetensors (Python 3.12) but no package registry and no MNIST:
# tinyhub's other needs go as pure-Python wheels in .whl/, MNIST in .gpu/mnist (both ignored by git; name them in
# the device call's `carry`). As the GPU rounds before did (results/experiments/gpu-calibration/README.md), plus pytest.
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '/.whl/' .git/info/exclude || echo /.whl/ >> .git/info/exclude
grep -qx '/.gpu/' .git/info/exclude || echo /.gpu/ >> .git/info/exclude
rm -rf .whl && mkdir -p .whl .gpu/mnist
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl \
  hydra-core==1.3.8 omegaconf==2.3.1 datasets==5.2.0 evaluate==0.4.6 dill==0.4.1 multiprocess==0.70.19 \
  pytest==8.4.2 pluggy==1.6.0 iniconfig==2.1.0
python3 -m pip wheel -q --no-deps antlr4-python3-runtime==4.9.3 -w .whl     # an sdist only: built here
cp ../shared/data/mnist/* .gpu/mnist/
git rev-parse HEAD > .gpu/commit
du -sh .whl .gpu
