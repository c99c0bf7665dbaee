"""What a finished `tinyhub train` process spends after its model is saved: the interpreter's teardown of torch
and every module it imported, against ending the process once the exit handlers have run (tinyhub/cli.py: run).
Each way N times, alternating: a one-epoch fast99 run on 2,048 images; the process's wall time, and its own
record of when it finished (results.json: start-up + engine + saving).

    python results/experiments/time-to-target/exit_times.py DATA_DIR [N]
"""

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tinyhub.trainer import load_run

WAYS = {"interpreter teardown (sys.exit(main()))": [sys.executable, "-c",
                                                    "import sys; from tinyhub.cli import main; sys.exit(main())"],
        "tinyhub's exit (cli.run)": [sys.executable, "-m", "tinyhub"]}

if __name__ == "__main__":
    data_dir, n = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 5
    after_saving = {way: [] for way in WAYS}
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(n):
            for way, command in WAYS.items():
                run_dir = Path(tmp) / f"{len(after_saving[way])}-{way[:5]}"
                t0 = time.perf_counter()
                subprocess.run([*command, "train", "model=fast99", "data.subset=2048", f"data.dir={data_dir}",
                                f"run.dir={run_dir}"], check=True, capture_output=True)
                wall = time.perf_counter() - t0
                after_saving[way].append(wall - load_run(run_dir).process_seconds)
    for way, secs in after_saving.items():
        print(f"{way}: {statistics.median(secs):.2f} s from the saved record to the process's end "
              f"(median of {len(secs)}: {', '.join(f'{s:.2f}' for s in secs)})")
