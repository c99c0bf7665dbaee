"""The figures of one `results/gpu/prove.sh` call, from its log and the records of its runs: figures.json.

    python results/gpu/figures.py PROVE_LOG RUNS_DIR OUT.json      # prove.sh runs this at its end
    python results/gpu/figures.py docs OUT [OUT2]                  # on the CPU machine, with the $OUT folders of
                                                                   # prove.sh's call(s): the Speed page's GPU table

Per run: its wall time from process start to exit (the log's `run NAME rc=.. wall=..` lines), the training seconds
and the last epoch's, the final test accuracy, the device and GPU its record names, and whether its step was
replayed from a CUDA graph (and which optimizer kernels ran). Nothing is typed in: a run without a record is
listed with its exit status only. The bench tables the log holds (the stack's K rows, tinyhub against the seeds'
pipeline) and the zoo's per-job times come under "stack", "pipelines" and "zoo".
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path

from tinyhub.utils.files import replace_between
from tinyhub.trainer.record import RunRecordError, load_run

PAGE = Path(__file__).resolve().parents[2] / "docs" / "speed.md"
BEGIN, END = "<!-- gpu-proof:begin -->", "<!-- gpu-proof:end -->"


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
                     last_epoch_seconds=r.epochs[-1].epoch_seconds, last_eval_seconds=r.epochs[-1].eval_seconds,
                     test_accuracy=r.final.test_accuracy,
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
_BENCH_DEVICE = re.compile(r"test images on (\S+) \|")
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
    devices = sorted(set(_BENCH_DEVICE.findall(text)))  # the bench runs' own header lines
    if devices:
        out["bench_devices"] = devices
    jobs = {name: int(s) for name, s in _ZOO_JOB.findall(text)}
    if jobs:
        stages = {name: int(h) * 3600 + int(m) * 60 + int(sec) for name, h, m, sec in _STAGE.findall(text)}
        begin = next((t for name, t in stages.items() if name.startswith("a zoo")), None)
        end = stages.get("zoo done")
        out["zoo"] = {"job_seconds": jobs}
        if begin is not None and end is not None:
            out["zoo"]["stage_seconds"] = (end - begin) % 86400
    return out


class NotGpuFigures(ValueError):
    """The figures were not measured on a GPU (a rehearsal's, or a run that fell back to the CPU)."""


def _machine(out_dirs: list[Path]) -> str:
    """The GPU, its driver and torch, as setup.sh printed them into machine.txt (nvidia-smi's CSV line and the
    interpreter's versions line)."""
    for out in out_dirs:
        path = out / "machine.txt"
        if not path.is_file():
            continue
        lines = path.read_text().splitlines()
        # nvidia-smi's line: name, driver, memory, clocks (five fields, the driver's version second)
        smi = next((fields for fields in (line.split(", ") for line in lines)
                    if len(fields) == 5 and re.fullmatch(r"\d+\.\d+(\.\d+)?", fields[1])), None)
        versions = next((line for line in lines if line.startswith("python ")), "")
        torch = re.search(r"torch (\S+) cuda (\S+)", versions)
        cpus = re.search(r"cpus (\d+)", versions)
        if smi and torch:
            return (f"one {smi[0]} (driver {smi[1]}, torch {torch.group(1)}, CUDA {torch.group(2)}"
                    + (f", {cpus.group(1)} CPU cores" if cpus else "") + ")")
    raise NotGpuFigures("no machine.txt with nvidia-smi's line in " + ", ".join(map(str, out_dirs))
                        + ": prove.sh writes it on the GPU machine (a rehearsal writes none)")


def _runs(found: dict) -> dict:
    """The timed runs among the figures (the tables are the other keys), refused unless each trained on a GPU."""
    runs = {name: f for name, f in found.items() if isinstance(f, dict) and "rc" in f}
    off_gpu = [name for name, f in runs.items() if "device" in f and not str(f["device"]).startswith("cuda")]
    if off_gpu:
        raise NotGpuFigures(f"runs {', '.join(off_gpu)} trained on {runs[off_gpu[0]]['device']}, not a GPU")
    benched_off_gpu = [d for d in found.get("bench_devices", []) if not d.startswith("cuda")]
    if benched_off_gpu:
        raise NotGpuFigures(f"the bench tables were measured on {benched_off_gpu[0]}, not a GPU")
    return runs


def docs_block(found: dict, machine: str) -> tuple[str, list[str]]:
    """The Speed page's GPU table from prove.sh's figures, and the targets' verdicts (printed, not written)."""
    runs = _runs(found)
    rows = []
    verdicts = [f"run {name} failed (exit status {f['rc']}): its figures are missing"
                for name, f in runs.items() if f["rc"] != 0]

    def run_row(label: str, f: dict) -> str:
        step = "CUDA graph" if f.get("cuda_graphs") else "eager"
        return (f"| {label} | {f['wall_seconds']:.1f} s | {f['train_seconds']:.1f} s | {f['test_accuracy']:.2f}% | "
                f"{step}, {f.get('optimizer')} optimizer |")

    recipe, eager = runs.get("model4-recipe"), runs.get("model4-eager")
    if recipe and "train_seconds" in recipe:
        rows.append(run_row(f"model4's recipe, {recipe['epochs']} epochs", recipe))
        verdicts.append(f"model4's recipe in <= 10 s wall: {recipe['wall_seconds']:.1f} s, "
                        + ("met" if recipe["wall_seconds"] <= 10 else "not met"))
    fast = [f for name, f in sorted(runs.items()) if name.startswith("fast99-s") and "train_seconds" in f]
    if fast:
        accuracy = statistics.mean(f["test_accuracy"] for f in fast)
        train = statistics.median(f["train_seconds"] for f in fast)
        wall = statistics.median(f["wall_seconds"] for f in fast)
        step = "CUDA graph" if all(f.get("cuda_graphs") for f in fast) else "eager"
        rows.append(f"| fast99, {len(fast)} seeds (mean accuracy, median times) | {wall:.1f} s | {train:.2f} s | "
                    f"{accuracy:.2f}% | {step}, {fast[0].get('optimizer')} optimizer |")
        verdicts.append(f"99.0% (mean of {len(fast)} seeds) in <= 1 s of training: {accuracy:.2f}% in a median "
                        f"{train:.2f} s, " + ("met" if accuracy >= 99.0 and train <= 1 and len(fast) >= 10
                                              else "not met"))
    lines = [f"On {machine}, measured by `results/gpu/prove.sh`: wall is process start to exit, training the "
             "epochs' own clock, the accuracy the final epoch's on the 10,000 test images.", "",
             "| what ran | wall | training | test accuracy | step |", "|---|---:|---:|---:|---|", *rows]
    if recipe and eager and "last_epoch_seconds" in recipe and "last_epoch_seconds" in eager:
        lines += ["", f"model4's last epoch: {recipe['last_epoch_seconds']:.2f} s with its step "
                  f"{'replayed from a CUDA graph' if recipe.get('cuda_graphs') else 'eager'}, "
                  f"{eager['last_epoch_seconds']:.2f} s eager (`training.cuda_graphs=false`)."]
    big_eval = runs.get("model4-evalbatch")
    if recipe and big_eval and "last_eval_seconds" in recipe and "last_eval_seconds" in big_eval:
        lines += ["", f"Evaluating the 10,000 test images: {recipe['last_eval_seconds']:.3f} s at 250 images per "
                  f"forward (`data.eval_batch_size`'s default), {big_eval['last_eval_seconds']:.3f} s at 10,000."]
    stack = found.get("stack")
    if stack:
        lines += ["", "| models trained together (`seeds=[...]`, model4) | "
                  + " | ".join(str(r["models"]) for r in stack) + " |", "|---|" + "---:|" * len(stack),
                  "| training images/s, all K | " + " | ".join(f"{r['images_per_second']:,.0f}" for r in stack) + " |",
                  "| against K=1 | " + " | ".join(f"{r['vs_one']:.2f}x" for r in stack) + " |"]
        eight = next((r for r in stack if r["models"] == 8), None)
        if eight:
            verdicts.append(f"K = 8 stacked >= 5x one model's images/s: {eight['vs_one']:.2f}x, "
                            + ("met" if eight["vs_one"] >= 5 else "not met"))
    pipelines = found.get("pipelines")
    if pipelines:
        lines += ["", "| pipeline, model4, whole epochs (training + evaluation) | epoch | images/s "
                  "| against the seeds' |",
                  "|---|---:|---:|---:|"]
        lines += [f"| {p['pipeline']} | {p['epoch_seconds']:.1f} s | {p['images_per_second']:,.0f} | "
                  f"{p['vs_seeds']:.2f}x |" for p in pipelines]
        ours = next((p for p in pipelines if p["pipeline"].startswith("tinyhub")), None)
        if ours:
            verdicts.append(f">= 10x the seeds' pipeline, whole epochs: {ours['vs_seeds']:.2f}x, "
                            + ("met" if ours["vs_seeds"] >= 10 else "not met"))
    zoo = found.get("zoo")
    if zoo and "stage_seconds" in zoo:
        lines += ["", f"A zoo side by side (`tinyhub reproduce --jobs 4`, each recipe's three seeds stacked): "
                  f"{len(zoo['job_seconds'])} recipes in {zoo['stage_seconds']} s, each job "
                  + ", ".join(f"{name.split()[0]} {s} s" for name, s in zoo["job_seconds"].items()) + "."]
    return "\n".join(lines) + "\n", verdicts


def write_docs(out_dirs: list[Path], page: Path = PAGE) -> list[str]:
    """Merge the calls' figures.json, check they are a GPU's, and write the Speed page's block; the verdicts."""
    found = {}
    for out in out_dirs:  # each call's figures checked on their own: the runs' and the bench's devices first,
        figures = json.loads((out / "figures.json").read_text())  # the plainest reason a rehearsal's are refused
        _runs(figures)
        found.update(figures)
    block, verdicts = docs_block(found, _machine(out_dirs))
    replace_between(page, BEGIN, END, block)
    return verdicts


def main() -> None:
    if sys.argv[1:2] == ["docs"]:
        try:
            verdicts = write_docs([Path(p) for p in sys.argv[2:]])
        except (NotGpuFigures, FileNotFoundError) as e:
            sys.exit(f"figures.py docs: {e}; the Speed page is unchanged")
        print(f"wrote the GPU table into {PAGE}")
        for line in verdicts:
            print("target:", line)
        return
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
