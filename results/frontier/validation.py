"""Writes validation.json and validation.md in this folder from the validation-split runs of issue #16
(runs/frontier/<name>/results.json, read with tinyhub's load_run): final-epoch validation accuracy, the only figure
the decisions used.

    python results/frontier/validation.py [RUNS_DIR]      # default runs/frontier
"""

import json
import sys
from pathlib import Path

from tinyhub.tables import markdown_table
from tinyhub.trainer import load_run

HERE = Path(__file__).parent
PAIRS = (("gap5k", "gap5k-val5k-plain", "gap5k-val5k-kd"), ("model4", "model4-val5k-plain", "model4-val5k-kd"))
#: Round 2: the distilled gap5k against variations of its distillation, to reach 99.40% at <=5,000 parameters.
ROUND2 = (("gap5k-val5k-kd", "temperature 4, weight 0.5 (the recipe)"),
          ("gap5k-val5k-kd-ema", "the same + EMA of weights 0.999"),
          ("gap5k-val5k-kd-w08", "weight 0.8"),
          ("gap5k-val5k-kd-t2", "temperature 2"))


def main(runs: Path) -> None:
    record = {}
    names = ("teacher-gap20k-val5k",) + tuple(n for _, *pair in PAIRS for n in pair) + tuple(n for n, _ in ROUND2)
    for name in dict.fromkeys(names):
        r = load_run(runs / name)
        record[name] = {"model": r.model, "parameters": r.parameters, "seed": r.seed, "val_size": r.data.val_size,
                        "epochs": len(r.epochs), "distillation": r.distillation and r.distillation.as_dict(),
                        "ema": r.recipe["training"]["ema"], "mixed_precision": r.mixed_precision,
                        "val_accuracy": [e.val_accuracy for e in r.epochs], "git": r.git}
    rows = []
    for model, plain, kd in PAIRS:
        a, b = record[plain]["val_accuracy"][-1], record[kd]["val_accuracy"][-1]
        images = round((b - a) * record[kd]["val_size"] / 100)
        decision = f"distil ({images:+d} images)" if b > a else f"keep the plain recipe (distilled: {images:+d} images)"
        rows.append([model, f"{record[plain]['parameters']:,}", f"{a:.2f}%", f"{b:.2f}%", decision])
    base = record[ROUND2[0][0]]["val_accuracy"][-1]
    round2 = [[setting, f"{record[n]['val_accuracy'][-1]:.2f}%",
               f"{round((record[n]['val_accuracy'][-1] - base) * record[n]['val_size'] / 100):+d}",
               f"`{(record[n]['git']['commit'] or 'unknown')[:10]}`"
               + (" + uncommitted changes" if record[n]["git"]["dirty"] else "")] for n, setting in ROUND2]
    teacher = record["teacher-gap20k-val5k"]
    (HERE / "validation.json").write_text(json.dumps(record, indent=1))
    (HERE / "validation.md").write_text(
        "# Distillation on the validation split (issue #16)\n\n"
        f"Seed 0, {teacher['epochs']} epochs, trained on 55,000 images with {teacher['val_size']:,} held out "
        "(`data.val_size`, carved with tinyhub's fixed seed); final-epoch validation accuracy, the only figure the "
        f"decisions used. Teacher: `gap20k` trained the same way (validation {teacher['val_accuracy'][-1]:.2f}%), so "
        "it never saw the validation images; distillation at the defaults (temperature 4, weight 0.5). Written by "
        "`python results/frontier/validation.py` from the runs' results.json (per-epoch curves in validation.json)."
        "\n\n" + markdown_table(["student", "parameters", "plain", "distilled from gap20k", "decision"], rows, "lrrr")
        + "\nminimobilenet and gap2k had no validation comparison of their own (CPU time): their distilled variants "
        "were decided in advance from the gap5k comparison and are reported whatever they score (minimobilenet "
        "beside its plain row).\n\n"
        "## Round 2: gap5k's distillation settings\n\n"
        "The distilled gap5k reached 99.37% ± 0.06 on the test split over 3 seeds, 10 images short of 99.40% in "
        "30,000. Three variations were compared with it on the same validation split (seed 0). None beat the "
        "recipe, so it stays. The weight-0.8 run (on the uncommitted changes that became commit fbe9308) and the "
        "temperature-2 run already drew their sample order, augmentation and dropout from tinyhub's seeding module "
        "(trainer/seeding.py), which changed those streams: their seed 0 is another draw than the first two runs', "
        "so differences of a few images are within run-to-run noise. EMA changed no prediction: with OneCycle the "
        "learning rate ends near zero, and the average of the last weights is the last weights.\n\n"
        + markdown_table(["gap5k distilled with", "validation", "images vs the recipe", "code"], round2, "lrr"))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("runs/frontier"))
