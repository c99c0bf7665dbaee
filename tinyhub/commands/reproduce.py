"""tinyhub reproduce: train every recipe for several seeds, then write results/<model>/seed_<k>.json, RESULTS.md
and the README's results table. Run it from a tinyhub checkout (the paths default to the current folder).

    tinyhub reproduce --data-dir DIR                              # every recipe, seeds 0 1 2
    tinyhub reproduce --models net24k --seeds 0 1 2 --data-dir DIR   # a subset
    tinyhub reproduce --table-only                                # rebuild RESULTS.md (and README) from results/
    tinyhub reproduce --models net24k --seeds 0 --rerun --data-dir DIR   # retrain a recorded seed from scratch
                                                                         # and compare with its committed number
    tinyhub reproduce --models model4 --label model4-kd --data-dir DIR training.distill.teacher=runs/gap20k-s0
                                                  # a variant of a recipe, recorded and tabled under its own label
    tinyhub reproduce --seeds 0 1 2 3 4 5 6 7 --jobs 4 --data-dir DIR   # fill a GPU: 4 recipes' stacks at a time

The seeds of a recipe train together in one process (`tinyhub train seeds=[0,1,2]`: each model exactly as its own
run would sample it, trainer/stack.py) when its architecture allows, else one at a time (--one-at-a-time forces
that). `--jobs N` trains N recipes' processes side by side: on a GPU, stacked seeds and several processes are how a
zoo fills the device. Runs already finished in --runs-dir are reused, so an interrupted reproduction continues where
it stopped.
Numbers are the final epoch's test accuracy of each run, averaged over seeds; nothing is selected on the test split.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tinyhub.utils.files import output_kind_above, write_text_atomic
from tinyhub.utils.tables import markdown_table
from tinyhub.trainer.record import Rerun, SeedRecord, SeedStats, load_reruns, load_run, log_rerun
from tinyhub.trainer.stack import stackable

from ._common import ArgumentParser

MODELS = ("efficient", "model4", "opt6k", "net24k", "minimobilenet", "gap8k", "gap20k", "gap5k", "gap2k", "fast99",
          "fast994")
#: Published tiny MNIST models, for the frontier table: their authors' own claims (often one run or the best
#: epoch, unlike tinyhub's final-epoch means), each with the repository that states it. A figure whose source
#: cannot be confirmed is left out.
PUBLIC_FRONTIER = (
    (4_862, "99.07%", "50", "ruslangrimov/mnist-minimal-model"),
    (4_967, "98.42%", "10", "aknakshay/MNIST-Challenge (separable convolutions)"),
    (7_070, ">99.4%", "15", "nitin-vig/ERAv4S6 (first above 99.4% at epoch 11)"),
    (8_000, "99.42%", "15", "garima-mahato/ERA_V3, Session 7 (one run)"),
    (8_640, "99.20%", "10", "aknakshay/MNIST-Challenge (convolutions)"),
    (8_932, "99.50%", "15", "The-School-of-AI/era-s7-ram (one run)"),
)
README_BEGIN, README_END = "<!-- results:begin -->", "<!-- results:end -->"


@dataclass
class TrainingJob:
    """One `tinyhub train` process of a reproduction: one seed alone, or the seeds of a recipe together."""

    what: str  # "gap2k seeds [0, 1] together", for the progress lines
    run_dir: Path
    train_args: list[str]
    run_dirs: dict[int, Path]  # seed -> the run directory its record is read from once the process is done

    def command(self, data_dir: str | None, extra: list[str]) -> list[str]:
        args = [sys.executable, "-m", "tinyhub", "train", *self.train_args, f"run.dir={self.run_dir}",
                "progress=false", *extra]
        if data_dir:
            args.append(f"data.dir={data_dir}")
        if (self.run_dir / "checkpoints").is_dir():  # an earlier attempt was cut: continue its checkpoints
            args.append("training.resume=auto")
        return args


def alone(model: str, seed: int, runs_dir: Path, label: str | None = None) -> TrainingJob:
    run_dir = runs_dir / f"{label or model}-s{seed}"
    return TrainingJob(f"{model} seed {seed}", run_dir, [f"model={model}", f"seed={seed}"], {seed: run_dir})


def together(model: str, seeds: list[int], runs_dir: Path, label: str | None = None) -> TrainingJob:
    """Every seed in one `tinyhub train seeds=[...]` process: <runs-dir>/<label>-s0-1-2/seed_<k>."""
    group = runs_dir / f"{label or model}-s{'-'.join(map(str, seeds))}"
    return TrainingJob(f"{model} seeds {seeds} together", group,
                       [f"model={model}", f"seeds=[{','.join(map(str, seeds))}]"],
                       {s: group / f"seed_{s}" for s in seeds})


def train_all(jobs: list[TrainingJob], data_dir: str | None, extra: list[str], processes: int = 1,
              on_done: Callable[[TrainingJob], None] = lambda job: None) -> None:
    """Run the jobs, `processes` of them at a time (a GPU, or a CPU with cores to spare, trains several recipes side
    by side); on_done(job) as each finishes. With one at a time a process prints to this terminal; with several,
    each writes to <run dir>.out, and a failure shows its last lines. A failed job stops nothing already running,
    and the command then exits naming it: the finished runs are kept for the next attempt."""
    if processes > 1 and not any(a.startswith("training.threads=") for a in extra):
        extra = [*extra, f"training.threads={max(1, (os.cpu_count() or 1) // processes)}"]  # cores shared, not fought
    waiting, running, failed = list(jobs), [], []
    while waiting or running:
        while waiting and len(running) < processes:
            job = waiting.pop(0)
            args = job.command(data_dir, extra)
            print(f"[{job.what}] training: {' '.join(args[1:])}", flush=True)
            output = None
            if processes > 1:
                job.run_dir.parent.mkdir(parents=True, exist_ok=True)
                output = open(job.run_dir.with_name(job.run_dir.name + ".out"), "w")  # noqa: SIM115 - closed below
                print(f"[{job.what}] output: {output.name}", flush=True)
            running.append((job, subprocess.Popen(args, stdout=output, stderr=subprocess.STDOUT if output else None),
                            output, time.time()))
        job, proc, output, started = _first_to_finish(running)
        running.remove((job, proc, output, started))
        if output is not None:
            output.close()
        if proc.returncode != 0:
            failed.append(job.what)
            tail = Path(output.name).read_text(errors="replace").splitlines()[-15:] if output else []
            print(f"error: [{job.what}] training failed (exit {proc.returncode})" +
                  "".join(f"\n  | {line}" for line in tail), flush=True)
            continue
        print(f"[{job.what}] done in {time.time() - started:.0f}s", flush=True)
        on_done(job)
    if failed:
        raise SystemExit(f"error: training failed for {'; '.join(failed)}; fix it and re-run (finished runs are "
                         "reused).")


def _first_to_finish(running: list) -> tuple:
    """The first process of `running` to exit (waiting on it, polling the others)."""
    while True:
        for entry in running:
            if entry[1].poll() is not None:
                return entry
        try:
            running[0][1].wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            pass


def finished_run(runs_dir: Path, name: str, seed: int) -> Path | None:
    """A finished run of this seed in runs_dir, trained alone (<name>-s<seed>) or with others
    (<name>-s0-1-2/seed_<seed>)."""
    for run_dir in [runs_dir / f"{name}-s{seed}", *sorted(runs_dir.glob(f"{name}-s*/seed_{seed}"))]:
        inside = output_kind_above(run_dir, runs_dir)
        if inside:
            print(f"note: skipped {inside[0]}: {inside[1]}, not a run")
            continue
        if (run_dir / "results.json").is_file():
            print(f"[{name} seed {seed}] already finished: {run_dir}")
            return run_dir
    return None


def record(run_dir: Path, out_root: Path, label: str | None = None) -> Path:
    seed_record = SeedRecord.from_run(load_run(run_dir), run_dir, label)
    out = out_root / seed_record.label / f"seed_{seed_record.seed}.json"
    seed_record.save(out)
    return out


def rerun(model: str, seed: int, runs_root: Path, out_root: Path, data_dir: str | None, extra: list[str]) -> Rerun:
    """Train a recorded seed again in a fresh folder and compare it with results/<model>/seed_<k>.json."""
    recorded_file = out_root / model / f"seed_{seed}.json"
    if not recorded_file.is_file():
        raise SystemExit(f"error: no recorded result {recorded_file}; run the seed first (without --rerun).")
    recorded = SeedRecord.load(recorded_file)
    job = alone(model, seed, runs_root / time.strftime("rerun-%Y%m%d-%H%M%S"))
    train_all([job], data_dir, extra)
    run_dir = job.run_dirs[seed]
    again = load_run(run_dir)
    entry = Rerun(model=model, seed=seed, recorded_accuracy=recorded.test_accuracy,
                  rerun_accuracy=again.final.test_accuracy,
                  difference=round(again.final.test_accuracy - recorded.test_accuracy, 4),
                  recorded_hardware=recorded.hardware, rerun_hardware=again.hardware_text,
                  recorded_commit=recorded.git.commit if recorded.git else None, rerun_commit=again.git.commit,
                  run_dir=str(run_dir), date=time.strftime("%Y-%m-%d"))
    log_rerun(out_root, entry)
    print(f"[{model} seed {seed}] recorded {entry.recorded_accuracy:.2f}%, rerun {entry.rerun_accuracy:.2f}% "
          f"(difference {entry.difference:+.2f} points)", flush=True)
    return entry


def reruns_table(out_root: Path) -> str:
    reruns = load_reruns(out_root)
    if not reruns:
        return ""
    rows = [[e.model, e.seed, f"{e.recorded_accuracy:.2f}%", f"{e.rerun_accuracy:.2f}%", f"{e.difference:+.2f}",
             e.recorded_hardware or "", e.rerun_hardware or "", e.date] for e in reruns]
    return markdown_table(["model", "seed", "recorded", "rerun", "difference", "recorded on", "rerun on", "date"],
                          rows, "lrrrr")


def _stats(rs: list[SeedRecord]) -> SeedStats:
    return SeedStats.of([(r.seed, r.test_correct, r.test_total) for r in rs])


def _groups(out_root: Path) -> list[tuple[str, list[SeedRecord]]]:
    """(label, seed records) for every recipe recorded in out_root: the packaged recipes first, then variants."""
    labels = [m for m in MODELS if (out_root / m).is_dir()]
    labels += sorted(d.name for d in out_root.iterdir() if d.is_dir() and d.name not in MODELS
                     and list(d.glob("seed_*.json"))) if out_root.is_dir() else []
    groups = []
    for label in labels:
        files = sorted((out_root / label).glob("seed_*.json"))
        if files:
            groups.append((label, [SeedRecord.load(f) for f in files]))
    return groups


def table(out_root: Path) -> str:
    rows = []
    for label, rs in _groups(out_root):
        stats, first = _stats(rs), rs[0]  # one exact mean for both the printed figure and the target check
        target = first.target_accuracy
        met = {None: "—", True: "yes", False: "no"}[stats.meets(target)]
        secs = statistics.fmean(r.train_seconds or 0 for r in rs)
        together = {len(r.recipe.seeds or []) for r in rs if r.recipe} - {0, 1}  # seeds trained in one stack
        time_txt = f"{secs:.0f} s" + (f" for {max(together)} together" if together else "")
        hardware = ", ".join(sorted({r.hardware for r in rs}))
        budget = first.recipe.model.get("param_budget") if first.recipe else None
        budget_txt = f"<{budget:,}" if budget else "—"
        name = label if label == first.model else f"{label} ({first.model})"
        rows.append([name, f"{first.parameters:,}", budget_txt, "—" if target is None else f"{target}%",
                     first.distilled_from or "—", stats.n, f"{stats.mean:.2f}% ± {stats.std:.2f}",
                     f"{min(stats.values):.2f}%", first.epochs, time_txt, hardware, met])
    return markdown_table(["model", "parameters", "budget", "target", "distilled from", "seeds",
                           "test accuracy (mean ± std)", "min", "epochs", "train time per run", "hardware",
                           "target met"], rows, "lrrrlrrrrr")


def frontier_table(out_root: Path) -> str:
    """Parameters against accuracy: every recorded tinyhub recipe (mean of its seeds) next to published models."""
    rows = []
    for label, rs in _groups(out_root):
        stats = _stats(rs)
        how = f"tinyhub `{label}`" + (f", distilled from {rs[0].distilled_from}" if rs[0].distilled_from else "")
        rows.append((rs[0].parameters, f"{stats.mean:.2f}% (mean of {stats.n})", str(rs[0].epochs), how))
    rows += [(n, acc, epochs, f"published: {source}") for n, acc, epochs, source in PUBLIC_FRONTIER]
    return markdown_table(["parameters", "MNIST test accuracy", "epochs", "model"],
                          [[f"{n:,}", acc, epochs, how] for n, acc, epochs, how in sorted(rows)], "rrr")


def tables_text(out_root: Path) -> str:
    """The results and frontier tables of the records in out_root: what RESULTS.md and the docs hold."""
    return table(out_root) + "\nThe frontier: parameters against accuracy.\n\n" + frontier_table(out_root)


def summary_table(out_root: Path) -> str:
    """The README's results block: one line per recorded recipe, the mean of its seeds against its target."""
    rows = []
    for label, rs in _groups(out_root):
        stats, first = _stats(rs), rs[0]
        target = first.target_accuracy
        met = {None: "—", True: "yes", False: "no"}[stats.meets(target)]
        rows.append([f"`{label}`", f"{first.parameters:,}", first.distilled_from or "—",
                     f"{stats.mean:.2f}% ± {stats.std:.2f} ({stats.n})", first.epochs,
                     "—" if target is None else f"{target}%", met])
    return markdown_table(["recipe", "parameters", "distilled from", "test accuracy (seeds)", "epochs", "target",
                           "met"], rows, "lrlrrrl")


def write_tables(out_root: Path, results_md: Path, readme: Path) -> str:
    text = tables_text(out_root)
    body = ("# Results\n\nMNIST test accuracy of each recipe at its final epoch, over training seeds, written by "
            "`tinyhub reproduce` from the runs in `results/`. No epoch or seed is selected on the test split. "
            "Train time is the measured time of each run's training epochs on the hardware named, often with other "
            "runs sharing the machine (for seeds trained together in one process, the time of all of them); "
            "`tinyhub bench` is the speed measurement.\n\n"
            + text)
    reruns = reruns_table(out_root)
    if reruns:
        body += ("\n## Reruns\n\nA recorded seed trained again from scratch (`tinyhub reproduce --rerun`) with the "
                 "same recipe; CPU kernels are not bit-deterministic across runs, so small differences are noise.\n\n"
                 + reruns)
    write_text_atomic(results_md, body)
    content = readme.read_text() if readme.is_file() else ""
    if README_BEGIN in content and README_END in content:
        start, end = content.index(README_BEGIN) + len(README_BEGIN), content.index(README_END)
        write_text_atomic(readme, content[:start] + "\n" + summary_table(out_root) + content[end:])
    return text


def _model_overrides(overrides: list[str]) -> dict:
    """The architecture arguments among the overrides (model.width=1.9): a stack is built with them."""
    import yaml

    found = {}
    for item in overrides:
        key, _, value = item.lstrip("+").partition("=")
        if key.startswith("model.") and key not in ("model.name", "model.param_budget"):
            found[key.split(".", 1)[1]] = yaml.safe_load(value)
    return found


def parser(prog: str) -> argparse.ArgumentParser:
    p = ArgumentParser(prog, __doc__)
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    p.add_argument("--label", default=None,
                   help="record the runs as this variant (results/<label>/, its own table row); one model only")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--runs-dir", default="runs/reproduce")
    p.add_argument("--out", default="results", help="where the per-seed records go (default ./results)")
    p.add_argument("--data-dir", default=os.environ.get("TINYHUB_DATA_DIR"),
                   help="folder with the four MNIST IDX files (default: $TINYHUB_DATA_DIR, else the Hub dataset)")
    p.add_argument("--table-only", action="store_true")
    p.add_argument("--rerun", action="store_true", help="train recorded seeds again in a fresh folder and compare")
    p.add_argument("--one-at-a-time", action="store_true",
                   help="train each seed in its own process instead of all seeds of a recipe together")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="training processes at a time (default 1): a GPU or a many-core machine trains several "
                        "recipes side by side; each then writes its output to <run dir>.out")
    p.add_argument("--results-md", default="RESULTS.md")
    p.add_argument("--readme", default="README.md", help="README whose results table is replaced")
    p.add_argument("overrides", nargs="*", help="extra training overrides for every run (e.g. training.threads=2)")
    return p


def main(argv=None, prog: str = "tinyhub reproduce") -> int:
    p = parser(prog)
    args = p.parse_args(argv)
    if args.label and len(args.models) != 1:
        p.error("--label names a variant of one recipe: give exactly one --models")
    if args.jobs < 1:
        p.error(f"--jobs {args.jobs}: give 1 or more training processes at a time")
    out_root = Path(args.out)
    if args.rerun:
        for model in args.models:
            for seed in args.seeds:
                rerun(model, seed, Path(args.runs_dir).resolve().parent, out_root, args.data_dir, args.overrides)
    elif not args.table_only:
        runs_dir = Path(args.runs_dir).resolve()
        finished, jobs = {}, {}
        for model in args.models:
            done = {s: d for s in args.seeds if (d := finished_run(runs_dir, args.label or model, s))}
            missing = [s for s in args.seeds if s not in done]
            finished[model] = done
            if len(missing) > 1 and not args.one_at_a_time and stackable(model, **_model_overrides(args.overrides)):
                jobs[model] = [together(model, missing, runs_dir, args.label)]
            else:
                jobs[model] = [alone(model, s, runs_dir, args.label) for s in missing]

        def record_recipe(model: str) -> None:
            for run_dir in (finished[model][s] for s in args.seeds):
                print(f"  -> {record(run_dir, out_root, args.label)}", flush=True)
            write_tables(out_root, Path(args.results_md), Path(args.readme))

        def job_done(job: TrainingJob) -> None:
            """A recipe's seeds are recorded, and the tables rewritten, once its last job is done."""
            model = next(m for m, js in jobs.items() if job in js)
            finished[model].update(job.run_dirs)
            if all(s in finished[model] for s in args.seeds):
                record_recipe(model)

        for model in args.models:
            if not jobs[model]:  # nothing left to train
                record_recipe(model)
        train_all([j for m in args.models for j in jobs[m]], args.data_dir, args.overrides, args.jobs,
                  on_done=job_done)
    print(write_tables(out_root, Path(args.results_md), Path(args.readme)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
