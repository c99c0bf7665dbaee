"""The GPU path, where CUDA is: training through `accelerate launch`, mixed precision against fp32, weights that
predict the same on the CPU, evaluation counts that equal the CPU's, bit-identical resume, the step replayed from a
CUDA graph against the eager step, a stack's dropout drawn per seed, several processes.

Without CUDA these tests skip. `TINYHUB_GPU_REHEARSAL=1` runs them on the CPU instead (training.device=cpu, bf16 as
the only mixed precision, processes with gloo), so that the suite is rehearsed before scarce GPU minutes are spent
on it: `TINYHUB_GPU_REHEARSAL=1 pytest -m gpu tests/test_gpu.py`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import FAST, SAFETY_TIMEOUT, run_cli
from tinyhub import modeling
from tinyhub.trainer.data import load_from_config

CUDA = torch.cuda.is_available()
REHEARSAL = os.environ.get("TINYHUB_GPU_REHEARSAL") == "1" and not CUDA
pytestmark = [pytest.mark.gpu, pytest.mark.e2e, pytest.mark.skipif(not (CUDA or REHEARSAL), reason=(
    "needs CUDA; TINYHUB_GPU_REHEARSAL=1 rehearses these tests on the CPU"))]
DEVICE = "training.device=cpu" if REHEARSAL else "training.device=auto"
#: Mixed precisions to compare with fp32: fp16 (with loss scaling) runs on CUDA only.
PRECISIONS = ["bf16"] if REHEARSAL else ["bf16", "fp16"]
#: How far a mixed-precision run's final test accuracy may be from fp32's (same seed), and a two-process run's from
#: the seeds' spread, after 2 epochs of 12,000 images (SETTLED).
PRECISION_TOLERANCE = 1.5  # points
# Cosine: the rate anneals to ~0 by the last step, so the final accuracy settles; under FAST's constant rate it
# swings by 10 points from one step to the next (74.49% for one process, 85.31% for two, same losses to 0.05).
SMALL = [*FAST, "model=opt6k", "data.subset=3000", "training.epochs=2", "training.scheduler.name=cosine", "seed=0",
         DEVICE]
# Accuracy comparisons train on 12,000 images: after 3,000, one seed's bf16 and fp32 runs stood 2.2 points apart
# (92.03%, 94.19%); after 12,000, 0.06 (97.56%, 97.62%), the seeds at batch 128 96.30-97.23%.
SETTLED = "data.subset=12000"


def _record(run: Path) -> dict:
    return json.loads((run / "results.json").read_text())


def _train(mnist_dir, run: Path, *extra: str) -> dict:
    r = run_cli("train", *SMALL, f"data.dir={mnist_dir}", f"run.dir={run}", *extra)
    assert r.returncode == 0, r.stderr[-3000:]
    return _record(run)


def _launch(mnist_dir, run: Path, processes: int, *extra: str) -> subprocess.CompletedProcess:
    if REHEARSAL and processes > 1:  # several CPU processes: torchrun, as tinyhub's own CPU tests start them
        launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes)]
    else:
        where = ["--cpu"] if REHEARSAL else (["--multi_gpu"] if processes > 1 else [])
        launcher = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(processes),
                    "--num_machines", "1", *where]
    return subprocess.run([*launcher, "-m", "tinyhub", "train", *SMALL, f"data.dir={mnist_dir}", f"run.dir={run}",
                           *extra], capture_output=True, text=True, timeout=SAFETY_TIMEOUT)


def test_accelerate_launch_trains_on_the_device(mnist_dir, tmp_path):
    r = _launch(mnist_dir, tmp_path / "run", 1)
    assert r.returncode == 0, r.stderr[-3000:]
    record = _record(tmp_path / "run")
    assert record["device"].startswith("cpu" if REHEARSAL else "cuda")
    assert (record["hardware"]["gpu"] is None) == REHEARSAL
    assert record["final"]["test_total"] > 0


@pytest.mark.parametrize("precision", PRECISIONS)
def test_mixed_precision_stays_within_its_tolerance_of_fp32(mnist_dir, tmp_path, precision):
    fp32 = _train(mnist_dir, tmp_path / "fp32", SETTLED)
    mixed = _train(mnist_dir, tmp_path / precision, SETTLED, f"training.mixed_precision={precision}")
    assert mixed["mixed_precision"] == precision
    gap = abs(mixed["final"]["test_accuracy"] - fp32["final"]["test_accuracy"])
    assert gap <= PRECISION_TOLERANCE, (precision, mixed["final"]["test_accuracy"], fp32["final"]["test_accuracy"])


def test_device_weights_predict_the_same_on_the_cpu(mnist_dir, tmp_path):
    run = tmp_path / "run"
    record = _train(mnist_dir, run)
    model = modeling.from_pretrained(run / "model")  # always loads on the CPU
    splits = load_from_config({"source": "local", "dir": str(mnist_dir)})
    with torch.no_grad():
        predicted = torch.cat([model(model.normalize(x)).argmax(1) for x in splits.test_images.split(1000)])
    # the count the device's evaluation recorded, and the one `tinyhub evaluate --cpu` finds, are the CPU's
    assert int((predicted == splits.test_labels).sum()) == record["final"]["test_correct"]
    r = run_cli("evaluate", str(run), "--cpu")
    assert r.returncode == 0, r.stderr[-3000:]
    evaluation = json.loads((run / "eval" / "eval_test.json").read_text())
    assert evaluation["correct"] == record["final"]["test_correct"]


def test_resume_on_the_device_is_bit_identical(mnist_dir, tmp_path):
    args = ["training.deterministic=true", "training.keep_checkpoints=5", "training.scheduler.name=onecycle",
            "training.scheduler.max_lr=0.05"]
    _train(mnist_dir, tmp_path / "full", *args)
    cut = tmp_path / "cut"
    _train(mnist_dir, cut, *args)
    for leftover in ("results.json", "model", "checkpoints/epoch_2"):  # as if killed after epoch 1
        shutil.rmtree(cut / leftover) if (cut / leftover).is_dir() else (cut / leftover).unlink()
    resumed = run_cli("train", *SMALL, f"data.dir={mnist_dir}", f"run.dir={cut}", *args, "training.resume=auto")
    assert resumed.returncode == 0 and "Resuming from" in resumed.stdout, resumed.stderr[-3000:]
    a = load_file(tmp_path / "full" / "model" / "model.safetensors")
    b = load_file(cut / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_captured_step_trains_the_same_model_as_the_eager_step(mnist_dir, tmp_path):
    """training.cuda_graphs=auto captures the step on CUDA (and says why not on the CPU); under
    training.deterministic=true the replayed step gives the eager step's weights, bit for bit."""
    args = ["training.deterministic=true", "training.scheduler.name=onecycle", "training.scheduler.max_lr=0.05"]
    graphed = _train(mnist_dir, tmp_path / "graphed", *args)
    eager = _train(mnist_dir, tmp_path / "eager", *args, "training.cuda_graphs=false")
    assert graphed["cuda_graphs"] is (not REHEARSAL) and eager["cuda_graphs"] is False
    assert graphed["optimizer_implementation"] == ("forloop" if REHEARSAL else "fused")
    a = load_file(tmp_path / "graphed" / "model" / "model.safetensors")
    b = load_file(tmp_path / "eager" / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert graphed["final"]["test_correct"] == eager["final"]["test_correct"]


def test_a_stack_draws_each_seeds_dropout_from_that_seed(mnist_dir, tmp_path):
    """Seed 0 trained second in a stack, beside seed 1 or beside seed 2: its masks come from its own generator, so
    its weights do not depend on its neighbour (a shared generator would hand it what the neighbour left)."""
    args = ["model.dropout=0.1", "training.deterministic=true", "training.epochs=1", "data.subset=1000"]
    for neighbour in (1, 2):
        r = run_cli("train", *SMALL, f"data.dir={mnist_dir}", f"run.dir={tmp_path / f'beside{neighbour}'}", *args,
                    f"seeds=[{neighbour},0]")
        assert r.returncode == 0, r.stderr[-3000:]
    a = load_file(tmp_path / "beside1" / "seed_0" / "model" / "model.safetensors")
    b = load_file(tmp_path / "beside2" / "seed_0" / "model" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    c = load_file(tmp_path / "beside1" / "seed_1" / "model" / "model.safetensors")
    assert not all(torch.equal(a[k], c[k]) for k in a)


@pytest.mark.skipif(not REHEARSAL and torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_two_processes_give_the_same_record_shape_and_accuracy(mnist_dir, tmp_path):
    # One process at the same global batch (2 x 64), three seeds stacked: their spread is what "the same accuracy"
    # means for a run whose images are split differently between the steps.
    stacked = run_cli("train", *SMALL, f"data.dir={mnist_dir}", f"run.dir={tmp_path / 'one'}", SETTLED,
                      "data.batch_size=128", "seeds=[0,1,2]")
    assert stacked.returncode == 0, stacked.stderr[-3000:]
    seeds = [_record(tmp_path / "one" / f"seed_{s}") for s in range(3)]
    r = _launch(mnist_dir, tmp_path / "two", 2, SETTLED)
    assert r.returncode == 0, r.stderr[-3000:]
    two = _record(tmp_path / "two")
    assert two["world_size"] == 2 and set(two) == set(seeds[0])
    assert two["final"]["test_total"] == seeds[0]["final"]["test_total"]  # every test image counted once
    spread = [s["final"]["test_accuracy"] for s in seeds]
    assert min(spread) - PRECISION_TOLERANCE <= two["final"]["test_accuracy"] <= max(spread) + PRECISION_TOLERANCE, (
        two["final"]["test_accuracy"], spread)
