"""This machine's practical compute ceiling for the speed table: a large matrix product (the best case for the
CPU's vector units), fp32 and bf16, with the threads `tinyhub bench` gives each row. Writes peak.txt.

    python results/experiments/hardware-ceiling/peak.py
"""

import os
import time
from pathlib import Path

import torch


def gflops(dtype: torch.dtype, n: int = 2048, repeat: int = 20) -> float:
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    torch.mm(a, b)
    t0 = time.perf_counter()
    for _ in range(repeat):
        torch.mm(a, b)
    return 2 * n**3 * repeat / (time.perf_counter() - t0) / 1e9


if __name__ == "__main__":
    torch.set_num_threads(os.cpu_count() or 1)
    text = (f"fp32 matmul 2048x2048: {gflops(torch.float32):.0f} GFLOP/s\n"
            f"bf16 matmul 2048x2048: {gflops(torch.bfloat16):.0f} GFLOP/s\n"
            f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    (Path(__file__).parent / "peak.txt").write_text(text)
    print(text, end="")
