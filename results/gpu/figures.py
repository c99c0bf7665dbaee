"""The figures of one `results/gpu/prove.sh` call, from its log and the records of its runs: figures.json.

    python results/gpu/figures.py PROVE_LOG RUNS_DIR OUT.json

Per run: its wall time from process start to exit (the log's `run NAME rc=.. wall=..` lines), the training seconds
and the last epoch's, the final test accuracy, the device and GPU its record names, and whether its step was
replayed from a CUDA graph (and which optimizer kernels ran). Nothing is typed in: a run without a record is
listed with its exit status only.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from tinyhub.trainer.record import RunRecordError, load_run


def figures(log: Path, runs: Path) -> dict:
    out = {}
    for name, rc, wall in re.findall(r"^run (\S+) rc=(\d+) wall=([\d.]+)", log.read_text(), re.M):
        entry = {"rc": int(rc), "wall_seconds": round(float(wall), 2)}
        try:
            r = load_run(runs / name)
        except RunRecordError:
            out[name] = entry
            continue
        entry.update(device=r.device, hardware=r.hardware.text, train_seconds=round(r.train_seconds, 2),
                     last_epoch_seconds=r.epochs[-1].epoch_seconds, test_accuracy=r.final.test_accuracy,
                     epochs=len(r.epochs), mixed_precision=r.mixed_precision, cuda_graphs=r.cuda_graphs,
                     optimizer=r.optimizer_implementation)
        out[name] = entry
    return out


def main() -> None:
    log, runs, dest = map(Path, sys.argv[1:4])
    found = figures(log, runs)
    dest.write_text(json.dumps(found, indent=1, default=str))
    for name, f in found.items():
        print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in f.items() if k != "hardware"))


if __name__ == "__main__":
    main()
