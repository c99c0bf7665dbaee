"""Writes validation.json and validation.md in this folder from the validation-split runs of issue #16
(runs/frontier/<name>/results.json): final-epoch validation accuracy, the only figure the decisions used.

    python results/frontier/validation.py [RUNS_DIR]      # default runs/frontier
"""

import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
PAIRS = (("gap5k", "gap5k-val5k-plain", "gap5k-val5k-kd"), ("model4", "model4-val5k-plain", "model4-val5k-kd"))


def main(runs: Path) -> None:
    record, rows = {}, []
    for name in ("teacher-gap20k-val5k",) + tuple(n for _, *pair in PAIRS for n in pair):
        r = json.loads((runs / name / "results.json").read_text())
        record[name] = {"model": r["model"], "parameters": r["parameters"], "seed": r["seed"],
                        "val_size": r["data"]["val_size"], "epochs": len(r["epochs"]),
                        "distillation": r.get("distillation"), "mixed_precision": r["mixed_precision"],
                        "val_accuracy": [e["val_accuracy"] for e in r["epochs"]], "git": r["git"]}
    for model, plain, kd in PAIRS:
        a, b = record[plain]["val_accuracy"][-1], record[kd]["val_accuracy"][-1]
        images = round((b - a) * record[kd]["val_size"] / 100)
        decision = f"distil ({images:+d} images)" if b > a else f"keep the plain recipe (distilled: {images:+d} images)"
        rows.append(f"| {model} | {record[plain]['parameters']:,} | {a:.2f}% | {b:.2f}% | {decision} |")
    teacher = record["teacher-gap20k-val5k"]
    (HERE / "validation.json").write_text(json.dumps(record, indent=1))
    (HERE / "validation.md").write_text(
        "# Distillation on the validation split (issue #16)\n\n"
        f"Seed 0, {teacher['epochs']} epochs, trained on 55,000 images with {teacher['val_size']:,} held out "
        "(`data.val_size`, carved with tinyhub's fixed seed); final-epoch validation accuracy, the only figure the "
        f"decisions used. Teacher: `gap20k` trained the same way (validation {teacher['val_accuracy'][-1]:.2f}%), so "
        "it never saw the validation images; distillation at the defaults (temperature 4, weight 0.5). Written by "
        "`python results/frontier/validation.py` from the runs' results.json (per-epoch curves in validation.json).\n\n"
        "| student | parameters | plain | distilled from gap20k | decision |\n|---|---:|---:|---:|---|\n"
        + "\n".join(rows) + "\n\nminimobilenet and gap2k had no validation comparison of their own (CPU time): "
        "their distilled variants were decided in advance from the gap5k comparison and are reported whatever they "
        "score (minimobilenet beside its plain row).\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("runs/frontier"))
