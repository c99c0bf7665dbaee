"""How long the everyday commands take to answer, as a user waits for them: the installed `tinyhub` in a fresh
process, median of N runs each (wall clock, output discarded).

    python results/experiments/engine-stages/startup_times.py [N]
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time

COMMANDS = (["--help"], ["--version"], ["train", "--help"], ["sweep", "--help"], ["push", "--help"],
            ["evaluate", "--help"], ["list-models"], ["train", "training.epohcs=3"])


def main(n: int = 5) -> None:
    exe = shutil.which("tinyhub") or sys.exit("error: the tinyhub command is not on PATH (activate .venv)")
    import_torch = [sys.executable, "-c", "import torch"]
    rows = [("python -c 'import torch' (for scale)", import_torch)]
    rows += [(f"tinyhub {' '.join(args)}", [exe, *args]) for args in COMMANDS]
    print(f"{'command':<40}{'median s':>10}{'min s':>8}{'max s':>8}   (n={n})")
    for name, argv in rows:
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times.append(time.perf_counter() - t0)
        print(f"{name:<40}{statistics.median(times):>10.2f}{min(times):>8.2f}{max(times):>8.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
