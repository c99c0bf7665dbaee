"""The validation runs that chose the speed recipes, as a table: for each run folder (`tinyhub train ... seeds=[...]
data.val_size=5000`, several seeds trained together), the settings that differ from the recipe it started from,
the seeds and their mean and lowest validation accuracy after the last epoch. Test figures are not read.

    python results/experiments/time-to-target/validation_table.py RUNS_DIR... > validation-runs.md
"""

import statistics
import sys
from pathlib import Path

from tinyhub.utils.tables import markdown_table
from tinyhub.trainer import load_run

if __name__ == "__main__":
    rows = []
    for run in map(Path, sys.argv[1:]):
        records = sorted((load_run(member) for member in run.glob("seed_*")), key=lambda r: r.seed)
        if not records:
            continue
        vals = [r.final.val_accuracy for r in records]
        first = records[0]
        tr = first.recipe.training
        rows.append([run.name, first.model, tr.epochs, first.recipe.data.batch_size,
                     f"{tr.optimizer.name}, {tr.scheduler.name} max_lr {tr.scheduler.max_lr:g}",
                     first.augmentation.text,
                     ", ".join(str(r.seed) for r in records), f"{statistics.fmean(vals):.3f}%", f"{min(vals):.2f}%"])
    print(markdown_table(["run", "model", "epochs", "batch", "optimizer, schedule", "augmentation", "seeds",
                          "validation mean", "min"], rows, "llrrlllrr"), end="")
