"""Shared fixtures: real MNIST when available (../shared/data/mnist or $TINYHUB_TEST_DATA), else a synthetic
IDX dataset with learnable classes; a per-session dataset cache; helpers to run the CLIs."""

from __future__ import annotations

import gzip
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs two workers on the machine's cores: each one's torch, and every process its tests start,
    # computes on one thread (two-thread runs side by side stall each other; docs: Speed).
    os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parent.parent
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def make_synthetic_idx(folder: Path, n_train: int = 3000, n_test: int = 10000, seed: int = 0) -> Path:
    """Ten classes of noisy blobs at class-specific positions: easy to learn, IDX-formatted like MNIST."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n)
        images = rng.integers(0, 70, (n, 28, 28))
        for i, y in enumerate(labels):
            # a bar at a class-specific place, jittered, plus a distractor bar anywhere: learnable, not instant
            r, c = 4 + (y // 5) * 12 + rng.integers(-2, 3), 2 + (y % 5) * 5 + rng.integers(-1, 2)
            images[i, r : r + 8, c : c + 3] = rng.integers(200, 256)
            for _ in range(2):
                dr, dc = rng.integers(0, 20), rng.integers(0, 25)
                images[i, dr : dr + 8, dc : dc + 3] = rng.integers(100, 180)
        _write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return folder


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory) -> Path:
    configured = os.environ.get("TINYHUB_TEST_DATA")
    for candidate in (configured, SHARED_MNIST):
        if candidate and Path(candidate, "train-images-idx3-ubyte.gz").is_file():
            return Path(candidate)
    # Not MNIST, so it must not be checked against MNIST's checksums: declare its name for this process and the
    # CLIs the tests start.
    os.environ["TINYHUB_DATA_NAME"] = "synthetic-digits"
    return make_synthetic_idx(tmp_path_factory.mktemp("synthetic-mnist"))


def is_real_mnist(folder: Path) -> bool:
    return Path(folder, "train-images-idx3-ubyte.gz").stat().st_size > 9_000_000


@pytest.fixture(scope="session", autouse=True)
def _isolated_caches(tmp_path_factory):
    """Datasets are decoded into a session cache; nothing is written to the user's ~/.cache."""
    cache = tmp_path_factory.mktemp("tinyhub-cache")
    old = os.environ.get("TINYHUB_CACHE")
    os.environ["TINYHUB_CACHE"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("TINYHUB_CACHE", None)
    else:
        os.environ["TINYHUB_CACHE"] = old


#: The installed `tinyhub` command of the environment running the tests (its console-script entry point).
TINYHUB = str(Path(sys.executable).with_name("tinyhub"))
#: Every subprocess a test starts has this timeout: a safety net that ends a hung command, never a pass criterion
#: (a command on a machine busy with other work may take many times its usual time).
SAFETY_TIMEOUT = 3600


def run_cli(*args: str, env_extra: dict | None = None, timeout: int = SAFETY_TIMEOUT, cwd: Path | None = None):
    """`tinyhub <args>` through the installed entry point, as a user runs it."""
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([TINYHUB, *args], cwd=cwd or REPO, env=env, capture_output=True, text=True,
                          timeout=timeout)


def run_cli_many(*commands: list[str], timeout: int = SAFETY_TIMEOUT, cwd: Path | None = None,
                 env_extra: dict | None = None, at_once: int = 6) -> list[subprocess.CompletedProcess]:
    """Several `tinyhub` invocations, `at_once` at a time (each one mostly waits on its imports), in the given
    order."""
    env = {**os.environ, **(env_extra or {})}
    done = []
    for start in range(0, len(commands), at_once):
        batch = commands[start:start + at_once]
        procs = [subprocess.Popen([TINYHUB, *args], cwd=cwd or REPO, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for args in batch]
        for args, p in zip(batch, procs):
            out, err = p.communicate(timeout=timeout)
            done.append(subprocess.CompletedProcess([TINYHUB, *args], p.returncode, out, err))
    return done


def run_script(*args: str, env_extra: dict | None = None, timeout: int = SAFETY_TIMEOUT,
               launcher: list[str] | None = None):
    """scripts/<args[0]>, the thin wrappers kept for `accelerate launch scripts/train.py` and torchrun."""
    env = {**os.environ, **(env_extra or {})}
    cmd = (launcher or [sys.executable]) + [str(REPO / "scripts" / args[0]), *args[1:]]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


# Small, fast, learnable settings shared by training tests.
FAST = [
    "data.subset=2000", "data.batch_size=64", "progress=false", "report_to=none",
    "training.optimizer.name=adam", "training.optimizer.lr=0.01", "training.scheduler.name=none",
]


@pytest.fixture(scope="session")
def tiny_runs(mnist_dir, tmp_path_factory):
    """Two finished runs of the same small recipe (seeds 0 and 1) in one runs folder."""
    from tinyhub import trainer

    root = tmp_path_factory.mktemp("tiny-runs")
    runs = []
    for seed in (0, 1):
        cfg = trainer.load_config([*FAST, "model=opt6k", "training.epochs=2", "data.subset=1000",
                                   f"data.dir={mnist_dir}", f"seed={seed}", f"run.dir={root / f'opt6k-s{seed}'}"])
        runs.append(trainer.train(cfg))
    return runs


@pytest.fixture(scope="session")
def hub():
    """A local Hub-compatible server (tests/hubserver.py) for the whole session; token hf_test_token = 'tester'."""
    from hubserver import HubServer

    with HubServer({"hf_test_token": "tester"}) as server:
        yield server


def hub_client(hub, tmp_path, *args, token="hf_test_token", offline=False, code=None, timeout=SAFETY_TIMEOUT):
    """Run `tinyhub <args>` (or `python -c code`) against the local Hub in a fresh process: HF_ENDPOINT and
    HF_HUB_DISABLE_XET must be set before huggingface_hub is imported."""
    env = hub.client_env(tmp_path / "hf_home", token=token, offline=offline)
    env["TINYHUB_CACHE"] = os.environ.get("TINYHUB_CACHE", "")
    cmd = [sys.executable, "-c", code] if code is not None else [TINYHUB, *args]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


# ---- the test pyramid: `make test` runs everything; `make test-fast` leaves out the end-to-end tests ----
#: Fixtures that make a test end to end by what they start: the local Hub server, and runs exported by the CLI.
#: (Fixtures of modules that are end to end throughout need no entry: the module's marker covers them.)
E2E_FIXTURES = {"hub", "exported"}
#: What an end-to-end test may start and a fast test may not: Python (the CLI, scripts, torchrun, accelerate),
#: browsers and package tools. (git, which a run asks for its commit, is not a test's doing.)
_STARTED_BY_E2E = re.compile(r"(^|/)(python[\d.]*|tinyhub|torchrun|accelerate|chromium|chrome|pip|make|mkdocs|ray)$")


def pytest_configure(config):
    config.addinivalue_line("markers", "e2e: end to end (processes, Ray, wheels, the Hub server, killed runs); "
                                       "`make test-fast` leaves these out, `make test` runs them")
    config.addinivalue_line("markers", "gpu: the GPU path (tests/test_gpu.py): skipped without CUDA; "
                                       "TINYHUB_GPU_REHEARSAL=1 rehearses it on the CPU")


def pytest_collection_modifyitems(config, items):
    """A test is end to end by its explicit marker (on the test or its module) or by a fixture that starts a
    server; nothing is guessed from its source."""
    for item in items:
        if E2E_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(autouse=True)
def _fast_tests_start_no_process(request, monkeypatch):
    """A test not marked e2e that starts a Python process, a browser or a package tool fails, naming the marker:
    `make test-fast` stays free of them because the lane is enforced, not hoped for."""
    if request.node.get_closest_marker("e2e") is not None:
        return
    real = subprocess.Popen.__init__

    def refuse(self, args, *a, **kw):
        program = str(args[0] if isinstance(args, (list, tuple)) else str(args).split()[0])
        if _STARTED_BY_E2E.search(program):
            raise AssertionError(f"{request.node.nodeid} starts {program}: mark it @pytest.mark.e2e "
                                 "(tests/conftest.py)")
        real(self, args, *a, **kw)

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)
