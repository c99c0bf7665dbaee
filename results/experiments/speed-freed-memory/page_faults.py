"""Page faults per training step of each packaged recipe (its model, batch size, layout and precision; random
images), with glibc's defaults and with freed memory kept (trainer/host_memory.py), each in a fresh process: why
training.keep_freed_memory exists. A fault is a page of fresh memory the kernel hands out; a step that reuses its
memory takes none.

    python results/experiments/speed-freed-memory/page_faults.py \
        > results/experiments/speed-freed-memory/page_faults.txt
"""

import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "speed"))  # results/speed/, for table.py


def measure(model: str, keep: bool) -> str:
    if keep:
        from tinyhub.trainer import host_memory

        assert host_memory.keep_freed_memory()
    import torch

    from tinyhub import create_model, trainer
    from tinyhub.trainer.engine import build_optimizer

    torch.set_num_threads(2)
    torch.manual_seed(0)
    cfg = trainer.load_config([f"model={model}"])
    tr, batch = cfg.training, cfg.data.batch_size
    layout = torch.channels_last if tr.channels_last else torch.contiguous_format
    net = create_model(model, **{k: v for k, v in cfg.model.items() if k != "name"}).to(memory_format=layout)
    optimizer = build_optimizer(net.parameters(), tr.optimizer)
    x = torch.randn(batch, 1, 28, 28).contiguous(memory_format=layout)
    y = torch.randint(0, 10, (batch,))

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=tr.mixed_precision == "bf16"):
            loss = torch.nn.functional.cross_entropy(net(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(5):  # the heap grows over the first steps
        step()
    steps, faults0, t0 = 30, resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
    for _ in range(steps):
        step()
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0) / steps
    ms = (time.perf_counter() - t0) / steps * 1e3
    return f"{faults:>10,.0f} ({faults * 4 / 1024:>5.1f} MiB) {ms:>7.1f} ms"


if __name__ == "__main__":
    if len(sys.argv) == 3:
        print(measure(sys.argv[1], sys.argv[2] == "keep"))
    else:
        print("page faults per training step (4 KiB pages) and the step's time, 2 threads, 30 steps after 5; "
              "glibc's defaults against freed memory kept")
        from table import MODELS  # results/speed/table.py's: the packaged recipes, in the speed table's order
        from tinyhub import trainer

        print(f"{'recipe':<15}{'batch':>6}   {'glibc defaults: faults, fresh memory, time':<44}{'kept: the same'}")
        for m in MODELS:
            cells = [subprocess.run([sys.executable, __file__, m, mode], capture_output=True, text=True,
                                    check=True).stdout.rstrip("\n") for mode in ("default", "keep")]
            batch = trainer.load_config([f"model={m}"]).data.batch_size
            print(f"{m:<15}{batch:>6}   {cells[0]:<44}{cells[1]}", flush=True)
