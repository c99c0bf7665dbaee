"""What a run records about where it ran: library versions, hardware, git state."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import torch

from .record import GitState, Hardware

# results.json schema. Bump on any incompatible change; the docs' results.json reference is generated from
# trainer/record/.
RESULTS_SCHEMA_VERSION = 2  # 2: data.identity (what the run was trained on), target_dataset
#: Beside results.json in every run: a few test images (uint8) and labels, which the model card's snippet loads.
EXAMPLES_FILE = "examples.safetensors"
_LIBRARIES = ("tinyhub", "torch", "accelerate", "huggingface_hub", "safetensors", "datasets", "hydra-core", "numpy")


def library_versions(libraries: tuple[str, ...] = _LIBRARIES) -> dict[str, str | None]:
    versions = {"python": platform.python_version()}
    for lib in libraries:
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            versions[lib] = None
    return versions


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


#: Files `tinyhub reproduce` rewrites while other runs are training; they cannot change what a run does.
GENERATED_PATHS = ("README.md", "RESULTS.md", "results/")


def _is_generated(path: str) -> bool:
    return any(path == g or (g.endswith("/") and path.startswith(g)) for g in GENERATED_PATHS)


def git_state() -> GitState:
    """Commit of the checkout this code runs from, the tracked files changed since it (`changed_files`), and
    `dirty`: whether any of those could change a run (anything but the generated results files and tables).
    All None outside a git checkout."""
    repo = Path(__file__).resolve().parent.parent
    try:
        # Only tinyhub's own checkout counts: an installed copy may sit inside some other repository.
        top = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=repo, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        if Path(top).resolve() != repo:
            raise subprocess.SubprocessError("not tinyhub's own checkout")
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                                capture_output=True, text=True, timeout=10, check=True).stdout
        changed = [line[3:].split(" -> ")[-1].strip('"') for line in status.splitlines() if line.strip()]
        dirty = any(not _is_generated(path) for path in changed)
        return GitState(commit, dirty, changed)
    except (OSError, subprocess.SubprocessError):
        return GitState()


def this_machine(threads: int, gpu: str | None = None) -> Hardware:
    """The machine this process runs on, computing with `threads` threads (torch's, or onnxruntime's)."""
    return Hardware(cpu=_cpu_name(), cpu_count=os.cpu_count(), torch_threads=threads, gpu=gpu,
                    platform=platform.platform())


def environment_info(device: torch.device) -> dict:
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {
        "device": str(device),
        "hardware": this_machine(torch.get_num_threads(), gpu=gpu),
        "versions": library_versions(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }
