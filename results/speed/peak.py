"""This machine's practical compute ceiling, against which `tinyhub bench --to` states how close a run comes: a
2048x2048 matrix product (the best case for the vector units), fp32 and bf16, with one torch thread per core.
Writes results/speed/peak.txt; the bench measures the same product at its own start and prints it.

    python results/speed/peak.py
"""

import os
from pathlib import Path

import torch

from tinyhub.commands.time_to_target import matmul_peak
from tinyhub.trainer.run_info import environment_info

if __name__ == "__main__":
    torch.set_num_threads(os.cpu_count() or 1)
    fp32, bf16 = matmul_peak(False), matmul_peak(True)
    hardware = environment_info(torch.device("cpu"))["hardware"]
    text = (f"fp32 matmul 2048x2048: {fp32:.0f} GFLOP/s\n"
            f"bf16 matmul 2048x2048: {bf16:.0f} GFLOP/s\n"
            f"{hardware.text}, torch {torch.__version__}\n")
    (Path(__file__).parent / "peak.txt").write_text(text)
    print(text, end="")
