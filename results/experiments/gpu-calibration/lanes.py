"""Run many `tinyhub train` processes side by side on one GPU machine, then tabulate them.

    python results/experiments/gpu-calibration/lanes.py JOBS.json OUT_DIR [--parallel N]
    python results/experiments/gpu-calibration/lanes.py OUT_DIR --table   # the table again, from OUT_DIR/summary.json
    python results/experiments/gpu-calibration/lanes.py FILE --table      # or from a kept copy of one, e.g.
                                                   # results/experiments/distillation-rounds/gpu/round5-arms.json

JOBS.json is a list of {"name": ..., "args": [overrides...]}; each job trains into OUT_DIR/<name> with its log
in OUT_DIR/<name>.log. The table printed at the end (and OUT_DIR/summary.json) holds, per job, its wall time,
its last epoch's seconds and, per seed, the final-epoch validation accuracy; test accuracy is printed only for
jobs without a validation split, so a choice made from this table cannot lean on the test split.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tinyhub.trainer.record import load_run


def run(job: dict, out: Path) -> dict:
    log = out / f"{job['name']}.log"
    args = [sys.executable, "-m", "tinyhub", "train", *job["args"], f"run.dir={out / job['name']}",
            "report_to=none", "progress=false"]
    t0 = time.time()
    with open(log, "w") as f:
        rc = subprocess.run(args, stdout=f, stderr=subprocess.STDOUT).returncode
    return {"name": job["name"], "args": job["args"], "rc": rc, "wall_s": round(time.time() - t0, 1)}


def results_of(run_dir: Path) -> list[dict]:
    """Per seed of a finished job: its final epoch, read through tinyhub's own reader of results.json."""
    files = [run_dir / "results.json"] if (run_dir / "results.json").is_file() else sorted(
        run_dir.glob("seed_*/results.json"))
    rows = []
    for f in files:
        record = load_run(f.parent)
        last = record.epochs[-1]  # the final epoch, never the best
        rows.append({"seed": record.seed, "epochs": len(record.epochs), "val_accuracy": last.val_accuracy,
                     "test_accuracy": last.test_accuracy, "last_epoch_s": last.epoch_seconds,
                     "train_seconds": record.train_seconds})
    return rows


def print_table(summary: dict, out: Path) -> None:
    jobs = summary["jobs"]
    print(f"\n{len(jobs)} jobs, {summary.get('parallel', '?')} at a time, {summary['total_wall_s']:.0f} s in all")
    print(f"{'job':34} {'rc':>3} {'wall s':>7} {'epoch s':>8}  final-epoch validation per seed (mean)")
    for d in jobs:
        per = ", ".join(f"{s['val_accuracy']:.2f}" for s in d["seeds"] if s["val_accuracy"] is not None)
        if not per:  # no validation split: a timing job, its test figure shown
            per = "test " + ", ".join(f"{s['test_accuracy']:.2f}" for s in d["seeds"] if s["test_accuracy"])
        epoch_s = d["seeds"][0]["last_epoch_s"] if d["seeds"] else None
        print(f"{d['name']:34} {d['rc']:>3} {d['wall_s']:>7.1f} {epoch_s or float('nan'):>8.2f}  {per}"
              + (f" ({d['val_mean']:.3f})" if d["val_mean"] is not None else ""))
        if d["rc"] and (out / f"{d['name']}.log").is_file():
            print("   " + "\n   ".join((out / f"{d['name']}.log").read_text().splitlines()[-6:]))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("jobs", help="JOBS.json; with --table, an earlier call's OUT_DIR or summary file")
    p.add_argument("out", nargs="?")
    p.add_argument("--parallel", type=int, default=8)
    p.add_argument("--table", action="store_true", help="only print the table of an earlier call's summary.json")
    a = p.parse_args()
    if a.table:
        given = Path(a.jobs)
        out = given if given.is_dir() else given.parent
        print_table(json.loads((given / "summary.json" if given.is_dir() else given).read_text()), out)
        return
    jobs = json.loads(Path(a.jobs).read_text())
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    with ThreadPoolExecutor(a.parallel) as pool:
        done = list(pool.map(lambda j: run(j, out), jobs))
    total = time.time() - t0
    for d in done:
        d["seeds"] = results_of(out / d["name"])
        vals = [s["val_accuracy"] for s in d["seeds"] if s["val_accuracy"] is not None]
        d["val_mean"] = round(statistics.fmean(vals), 4) if vals else None
    summary = {"total_wall_s": round(total, 1), "parallel": a.parallel, "jobs": done}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print_table(summary, out)


if __name__ == "__main__":
    main()
