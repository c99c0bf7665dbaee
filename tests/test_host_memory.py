"""Freed host memory kept for the next training step (trainer/host_memory.py): it works, and the engine asks for it
on the CPU unless told not to."""

import subprocess
import sys

import pytest

from tinyhub import trainer
from tinyhub.trainer import host_memory
from conftest import FAST


# Page faults of allocating, filling and freeing a 64 MiB tensor twenty times, counted over the last ten: what each
# training step pays for a block of that size when freed memory goes back to the kernel. (The first rounds may
# fault either way while the heap grows to its working size: about six in a process that has imported only torch.)
_FAULTS = """
import resource, sys, torch
from tinyhub.trainer import host_memory
if sys.argv[1] == "keep":
    assert host_memory.keep_freed_memory()
for i in range(20):
    if i == 10:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.empty(16 * 2**20).fill_(1.0)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.e2e
@pytest.mark.skipif(host_memory.glibc() is None,
                    reason="the setting is glibc's; other C libraries keep their own allocators")
def test_a_freed_block_is_reused_without_page_faults():
    def faults(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, check=True)
        return int(out.stdout)

    pages = 64 * 2**20 // 4096  # a block's pages; ten rounds fault about ten times that with glibc's defaults
    assert faults("default") > 3 * pages  # glibc unmapped each block: the kernel hands out fresh pages every time
    assert faults("keep") < pages // 4  # kept: each tensor reuses the memory of the one before


def test_the_engine_keeps_freed_memory_on_the_cpu_unless_told_not_to(mnist_dir, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(host_memory, "keep_freed_memory", lambda: calls.append(1) or True)
    base = [*FAST, "data.subset=256", "training.epochs=1", "model=opt6k", f"data.dir={mnist_dir}"]
    trainer.train(trainer.load_config([*base, f"run.dir={tmp_path / 'default'}"]))
    assert calls == [1]
    trainer.train(trainer.load_config([*base, "training.keep_freed_memory=false", f"run.dir={tmp_path / 'off'}"]))
    assert calls == [1]


def test_the_setting_is_not_part_of_the_recipe():
    """How this machine allocates is not what was trained: a resumed run may change it, and a card's recipe
    command leaves it out."""
    from tinyhub.trainer.config import RESUME_MAY_CHANGE, recipe_overrides
    from tinyhub.trainer.schema import config_dict, typed_config

    cfg = config_dict(typed_config(trainer.load_config(["model=gap8k", "training.keep_freed_memory=false"])))
    assert "training.keep_freed_memory" in RESUME_MAY_CHANGE
    assert not any("keep_freed_memory" in o for o in recipe_overrides(cfg))
