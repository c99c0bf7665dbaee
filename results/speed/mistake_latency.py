"""How long the everyday mistakes take to answer: a --data-dir that does not exist, a malformed --repo-id, a folder
that is not a run, a misspelt setting. Each is one `error:` line said before torch is imported; `import torch`
alone is timed beside them for scale. Median of N runs of the installed `tinyhub` command.

    python results/speed/mistake_latency.py [N]
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def _seconds(cmd: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    return time.perf_counter() - t0, (r.stderr.strip().splitlines() or [""])[-1]


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    tinyhub = shutil.which("tinyhub") or "tinyhub"
    folder = tempfile.mkdtemp(prefix="not-a-run-")
    cases = {
        "train --data-dir /no/such/dir": [tinyhub, "train", "--data-dir", "/no/such/dir"],
        "push RUN --repo-id 'bad id!'": [tinyhub, "push", folder, "--repo-id", "bad id!"],
        "push NOT_A_RUN --repo-id me/x": [tinyhub, "push", folder, "--repo-id", "me/x"],
        "train training.epochz=3": [tinyhub, "train", "training.epochz=3"],
        "python -c 'import torch'": [sys.executable, "-c", "import torch"],
    }
    print(f"| command | median of {n} (s) | what it said |\n|---|---:|---|")
    for name, cmd in cases.items():
        runs = [_seconds(cmd) for _ in range(n)]
        said = runs[-1][1][:90]
        print(f"| `{name}` | {statistics.median(s for s, _ in runs):.2f} | {said} |")
    shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
