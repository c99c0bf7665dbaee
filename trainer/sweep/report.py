"""The files of a sweep folder that tell its outcome (trainer/sweep.py lists the whole folder): results.md,
results.csv, sweep.json, best_recipe.yaml and report.md (trainer/templates/sweep_report.md.j2), all drawn from the
summary `trainer.sweep.summarize` builds from Tune's ResultGrid."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import yaml
from jinja2 import Environment, FileSystemLoader

from tinyhub.utils.files import write_text_atomic
from tinyhub.utils.tables import markdown_table

from ..config import overridden, set_dotted, trial_config
from ..record import SweepSummary

#: Config keys left out of best_recipe.yaml: where runs are written, the sweep's validation hold-out and the
#: sections that configure the sweep itself.
RECIPE_EXCLUDE = ("run", "data.val_size", "hpo", "hydra")


def _fmt(v) -> str:
    return ("" if v is None else ("yes" if v else "no") if isinstance(v, bool) else f"{v:.4g}" if isinstance(v, float)
            else str(v))


def _rows(summary: SweepSummary) -> tuple[list[str], list[list]]:
    """The trials table (head, rows), as results.md, the console and results.csv show it."""
    keys, metric = [spec["key"] for spec in summary.space.values()], summary.metric
    head = ["rank", "trial", *keys, f"best {metric}", "at epoch", "epochs run", "stopped early", "status"]
    rows = [[_fmt(t.rank), t.trial, *(_fmt(t.config.get(k)) for k in keys), _fmt(t.best),
             _fmt(t.best_epoch), f"{t.epochs_run}/{summary.epochs}", _fmt(t.stopped_early),
             t.status + (f": {t.error}" if t.error else "")] for t in summary.trials]
    return head, rows


def trials_table(summary: SweepSummary) -> str:
    return markdown_table(*_rows(summary))


def _csv(summary: SweepSummary) -> str:
    head, rows = _rows(summary)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow([h.replace(" ", "_") for h in head] + ["error", "run_dir"])
    for row, t in zip(rows, summary.trials):
        writer.writerow(row[:-1] + [t.status, t.error or "", t.run_dir])
    return buf.getvalue()


def best_recipe_yaml(summary: SweepSummary, base: dict, baseline: dict, model_group: str | None) -> str:
    """The winning trial as a recipe on top of train.yaml and its model recipe (`baseline`): the sampled values
    plus every other way the sweep's training config (`base`) differed from them (CLI overrides such as
    training.epochs)."""
    best, where = summary.best, summary.sweep_dir
    body = overridden(trial_config(base, best.config), baseline, ignore=RECIPE_EXCLUDE)
    for key, value in best.config.items():  # said even where the sampled value is the recipe's own
        set_dotted(body, key, value)
    defaults = ["train", *([{"override /model": model_group}] if model_group else []), "_self_"]
    searched = ", ".join(f"{k}={_fmt(v)}" for k, v in best.config.items())
    header = (
        f"# Best configuration of sweep {summary.name} ({where}).\n"
        f"# Trial {best.trial}: best {summary.metric} {best.value:.4g} at epoch {best.epoch} "
        f"(validation split of {summary.val_size} training images).\n"
        f"# Searched: {searched}\n"
        f"# Train it:  tinyhub train --config-dir {where} --config-name best_recipe\n"
        f"# This recipe trains on the whole training split (data.val_size from train.yaml) and reports the test\n"
        f"# split; add data.val_size={summary.val_size} to repeat the trial exactly.\n")
    return (header + yaml.safe_dump({"defaults": defaults}, sort_keys=False, default_flow_style=False) + "\n"
            + yaml.safe_dump(body, sort_keys=False, default_flow_style=None))


def report_md(summary: SweepSummary) -> str:
    """report.md: what was searched, how, and what won."""
    space = markdown_table(["parameter", "config key", "distribution"], [
        [f"`{name}`", f"`{p['key']}`", f"{p['type']} {p['values']}" if "values" in p else
         f"{p['type']} [{p['low']}, {p['high']}]"] for name, p in summary.space.items()])
    env = Environment(loader=FileSystemLoader(Path(__file__).parent.parent / "templates"), keep_trailing_newline=True)
    env.filters["fmt"] = _fmt
    return env.get_template("sweep_report.md.j2").render(s=summary, b=summary.best, space=space,
                                                         trials=trials_table(summary))


def write_outputs(summary: SweepSummary, base: dict, baseline: dict, model_group: str | None) -> None:
    """Write the sweep folder's tables, best recipe, report and sweep.json (each file whole or not at all). The
    summary has its own name: a results.json is a finished run's record, and the trials under trials/ have theirs."""
    folder = Path(summary.sweep_dir)
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(folder / "results.md", trials_table(summary))
    write_text_atomic(folder / "results.csv", _csv(summary))
    if summary.best:
        write_text_atomic(folder / "best_recipe.yaml", best_recipe_yaml(summary, base, baseline, model_group))
    write_text_atomic(folder / "report.md", report_md(summary))
    summary.save(folder)


def console_text(summary: SweepSummary) -> str:
    """What `tinyhub sweep` prints when it finishes: the trials table and where the winner is."""
    where, best = Path(summary.sweep_dir), summary.best
    if not best:
        return (f"\n{trials_table(summary)}\nNo trial reported {summary.metric}; see {where / 'results.md'} and "
                f"the errors under {where / 'tune'}.")
    return (f"\n{trials_table(summary)}\nBest: trial {best.trial} | {summary.metric} {best.value:.4g} at "
            f"epoch {best.epoch}\n  best recipe: {where / 'best_recipe.yaml'}\n"
            f"  train it:    tinyhub train --config-dir {where} --config-name best_recipe\n"
            f"  report:      {where / 'report.md'}")
