"""What glibc's allocator costs tinyhub on the CPU: evaluation's forward of 10,000 test images at batch 250 and 1000
(fp32, no_grad, 2 threads), then the training step, with glibc's defaults and with freed memory kept for reuse
(`mallopt(M_MMAP_THRESHOLD)` and `mallopt(M_TRIM_THRESHOLD)` at 1 GiB, trainer/host_memory.py, which the engine
now applies). Each setting runs in a fresh process.

    python results/experiments/speed-pooling-and-eval-batch/allocator.py \
        > results/experiments/speed-pooling-and-eval-batch/allocator.txt

By default glibc hands a large block (above a threshold that adapts up to 32 MiB) back to the kernel when it is
freed, so the next pass that allocates it pays page faults for fresh, zeroed memory. Numerics do not depend on it.
"""

import subprocess
import sys
import time

CASES = (("gap8k", 128, True), ("gap20k", 128, True), ("model4", 64, False))


def measure(name: str, batch: int, bf16: bool, keep_memory: bool) -> str:
    if keep_memory:
        from tinyhub.trainer import host_memory

        assert host_memory.keep_freed_memory()
    import torch

    from tinyhub import create_model

    torch.set_num_threads(2)
    torch.manual_seed(0)
    images = torch.randint(0, 256, (10000, 1, 28, 28), dtype=torch.uint8)
    model = create_model(name).eval()

    def evaluate(eval_batch: int) -> float:
        t0 = time.perf_counter()
        with torch.no_grad():
            for chunk in images.split(eval_batch):
                model(model.normalize01(chunk.float() / 255))
        return time.perf_counter() - t0

    evals = [evaluate(250), evaluate(250), evaluate(1000)]  # in this order: the first pass of 250 starts cold
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-4)
    x, y = torch.randn(batch, 1, 28, 28), torch.randint(0, 10, (batch,))

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(10):
        step()
    t0 = time.perf_counter()
    for _ in range(200):
        step()
    step_ms = (time.perf_counter() - t0) / 200 * 1e3
    return (f"{name:7} {'freed memory kept' if keep_memory else 'glibc defaults':17} eval batch 250: {evals[0]:.2f} s, "
            f"then {evals[1]:.2f} s; batch 1000: {evals[2]:.2f} s | training step (batch {batch}"
            f"{', bf16' if bf16 else ''}): {step_ms:.2f} ms")


if __name__ == "__main__":
    if len(sys.argv) == 5:
        print(measure(sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4] == "1"), flush=True)
    else:
        for name, batch, bf16 in CASES:
            for keep in (False, True):
                subprocess.run([sys.executable, __file__, name, str(batch), str(int(bf16)), str(int(keep))], check=True)
