"""The figures of one `results/gpu/prove.sh` call, from its log and the records of its runs: figures.json.

    python results/gpu/figures.py PROVE_LOG RUNS_DIR OUT.json

Per run: its wall time from process start to exit (the log's `run NAME rc=.. wall=..` lines), the training seconds
and the last epoch's, the final test accuracy, the device and GPU its record names, and whether its step was
replayed from a CUDA graph (and which optimizer kernels ran). Nothing is typed in: a run without a record is
listed with its exit status only. The bench tables the log holds (the stack's K rows, tinyhub against the seeds'
pipeline) and the zoo's per-job times come under "stack", "pipelines" and "zoo".
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


_NUMBER = r"([\d,]+(?:\.\d+)?)"
# `bench --stack`: K, images/s (all), per model, train s, eval s, vs K=1, peak MiB
_STACK_ROW = re.compile(r"^(\d+)\s+" + r"\s+".join([_NUMBER] * 4) + r"\s+([\d.]+)x\s+([\d,]+)$", re.M)
# `bench`: pipeline name, images/s, train s, eval s, epoch s, vs seeds, peak MiB
_PIPELINE_ROW = re.compile(r"^(seeds' pipeline.*?|tinyhub .*?)\s{2,}" + r"\s+".join([_NUMBER] * 4)
                           + r"\s+([\d.]+)x\s+([\d,]+)$", re.M)
_ZOO_JOB = re.compile(r"^\[(.+?)\] done in (\d+)s$", re.M)
_STAGE = re.compile(r"^== (.*) (\d\d):(\d\d):(\d\d)$", re.M)


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def tables(log: Path) -> dict:
    """The bench tables and the zoo's times, as the log printed them (no figure is computed here but the zoo's
    stage time, from the stage lines' clock)."""
    text = log.read_text()
    out = {}
    stack = [dict(models=int(k), images_per_second=_number(a), per_model=_number(m), train_seconds=_number(t),
                  eval_seconds=_number(e), vs_one=float(r), peak_mib=_number(p))
             for k, a, m, t, e, r, p in _STACK_ROW.findall(text)]
    if stack:
        out["stack"] = stack
    pipelines = [dict(pipeline=name.strip(), images_per_second=_number(a), train_seconds=_number(t),
                      eval_seconds=_number(e), epoch_seconds=_number(ep), vs_seeds=float(r), peak_mib=_number(p))
                 for name, a, t, e, ep, r, p in _PIPELINE_ROW.findall(text)]
    if pipelines:
        out["pipelines"] = pipelines
    jobs = {name: int(s) for name, s in _ZOO_JOB.findall(text)}
    if jobs:
        stages = {name: int(h) * 3600 + int(m) * 60 + int(sec) for name, h, m, sec in _STAGE.findall(text)}
        begin = next((t for name, t in stages.items() if name.startswith("a zoo")), None)
        end = stages.get("zoo done")
        out["zoo"] = {"job_seconds": jobs}
        if begin is not None and end is not None:
            out["zoo"]["stage_seconds"] = (end - begin) % 86400
    return out


def main() -> None:
    log, runs, dest = map(Path, sys.argv[1:4])
    found = figures(log, runs)
    for name, f in found.items():
        print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in f.items() if k != "hardware"))
    found.update(tables(log))
    for key in ("stack", "pipelines", "zoo"):
        if key in found:
            print(f"{key}: {json.dumps(found[key])}")
    dest.write_text(json.dumps(found, indent=1, default=str))


if __name__ == "__main__":
    main()
