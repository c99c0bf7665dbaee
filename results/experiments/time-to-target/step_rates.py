"""Training-step throughput of candidate architectures on this CPU: forward, backward and a Nesterov SGD step on
random 28x28 batches, in the settings the speed recipes can choose (bf16 autocast, channels_last, batch size),
images per second after a warm-up. Writes nothing; its output is step-rates.txt.

    python results/experiments/time-to-target/step_rates.py > results/experiments/time-to-target/step-rates.txt
"""

import os
import time

import torch
from torch import nn

from tinyhub import modeling


def images_per_second(model: nn.Module, batch: int, bf16: bool, channels_last: bool, steps: int = 30) -> float:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    x, y = torch.randn(batch, 1, 28, 28), torch.randint(0, 10, (batch,))
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    criterion = nn.CrossEntropyLoss()

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = criterion(model(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(5):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - t0)


if __name__ == "__main__":
    torch.set_num_threads(os.cpu_count() or 1)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; images/s of the training step")
    for name, batch, bf16, cl in [("gap8k", 128, True, False), ("gap8k", 128, True, True), ("model4", 64, False, False),
                                  ("net24k", 64, False, False), ("gap20k", 128, True, False),
                                  ("fast24k", 128, False, True), ("fast24k", 128, True, False),
                                  ("fast24k", 128, True, True), ("fast24k", 64, True, True),
                                  ("fast24k", 256, True, True)]:
        model = modeling.create_model(name)
        rate = images_per_second(model, batch, bf16, cl)
        print(f"{name:<8} {model.num_parameters():>7,} params  batch {batch:<4} {'bf16' if bf16 else 'fp32'}  "
              f"{'channels_last' if cl else 'NCHW':<14}{rate:>9,.0f} images/s", flush=True)
