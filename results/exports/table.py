"""The exports table: every packaged recipe's model as ONNX float32 and int8, from the exports.json of each run.

    python results/exports/table.py RUNS_DIR --write results/exports/exports.md   # copy each run's exports.json here
    python results/exports/table.py                                               # print the table from the copies
    python results/exports/table.py --readme README.md          # the README's block: a summary of the table

The copies (results/exports/<recipe>.json) are what the README, the Deploy page and the tests read.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from tinyhub.utils.files import replace_between
from tinyhub.utils.tables import markdown_table

HERE = Path(__file__).resolve().parent
EXPORTS_BEGIN, EXPORTS_END = "<!-- exports:begin -->", "<!-- exports:end -->"


def records() -> dict[str, dict]:
    """recipe -> its exports.json, as copied here."""
    return {p.stem: json.loads(p.read_text()) for p in sorted(HERE.glob("*.json"))}


def exports_table() -> str:
    recs = records()
    if not recs:
        return "No exports recorded yet: run `bash results/exports/export_all.sh`.\n"
    rows = []
    for recipe, r in sorted(recs.items(), key=lambda kv: (kv[1]["architecture"], kv[0])):
        f = {x["format"]: x for x in r["formats"]}
        torch_acc = 100 * r["pytorch_test_correct"] / r["test_total"]
        onnx, int8 = f["onnx"], f["int8"]
        int8_acc = 100 * int8["test_correct"] / int8["test_total"]
        verdict = "yes" if onnx["passed"] and int8["passed"] else "no: " + "; ".join(
            x["problem"] for x in (onnx, int8) if not x["passed"])
        rows.append([f"`{recipe}`", r["architecture"], f"{torch_acc:.2f}%", f"{onnx['agreement']:.2f}%",
                     f"{onnx['max_logit_difference']:.1e}", f"{int8_acc:.2f}% ({int8_acc - torch_acc:+.2f})",
                     f"{int8['agreement']:.2f}%", f"{onnx['bytes'] / 1024:,.1f} / {int8['bytes'] / 1024:,.1f} KiB",
                     f"{onnx['latency_ms']:.3f} / {int8['latency_ms']:.3f} ms",
                     f"{onnx['images_per_second']:,.0f} / {int8['images_per_second']:,.0f}", verdict])
    first = next(iter(recs.values()))
    machines = sorted({r["hardware"].get("cpu") or "unknown CPU" for r in recs.values()})
    threads = sorted({r["threads"] for r in recs.values()})
    head = (f"Seed 0 of every packaged recipe, exported with `tinyhub export` and run by onnxruntime "
            f"{first['versions'].get('onnxruntime')} on all {first['test_total']:,} MNIST test images, on "
            f"{', '.join(machines)} with {'/'.join(map(str, threads))} threads. Agreement: the share of test images "
            "whose predicted class equals PyTorch's. Sizes, latency (one image) and images/s (batches of 256) are "
            "float32 / int8.\n\n")
    return head + markdown_table(["recipe", "model", "PyTorch", "ONNX agrees", "largest logit difference",
                                  "int8 test accuracy (vs PyTorch)", "int8 agrees", "size", "latency", "images/s",
                                  "passed"], rows, "llrrrrrrrrl")


def exports_summary() -> str:
    """Two sentences for the README: the range of each figure over every recipe's exports."""
    recs = records()
    if not recs:
        return "No exports recorded yet: run `bash results/exports/export_all.sh`.\n"
    onnx = [next(f for f in r["formats"] if f["format"] == "onnx") for r in recs.values()]
    int8 = [next(f for f in r["formats"] if f["format"] == "int8") for r in recs.values()]
    change = [100 * (f["test_correct"] - r["pytorch_test_correct"]) / r["test_total"]
              for f, r in zip(int8, recs.values())]
    passed = sum(a["passed"] and b["passed"] for a, b in zip(onnx, int8))
    return (f"Seed 0 of each of the {len(recs)} packaged recipes, checked by onnxruntime on all "
            f"{onnx[0]['test_total']:,} MNIST test images: the float32 ONNX graph agrees with PyTorch on "
            f"{_span([f['agreement'] for f in onnx], '{:.2f}')}% of them (largest logit "
            f"difference {max(f['max_logit_difference'] for f in onnx):.1e}); int8 changes the test accuracy by "
            f"{min(change):+.2f} to {max(change):+.2f} points at {min(f['bytes'] for f in int8) / 1024:,.0f}–"
            f"{max(f['bytes'] for f in int8) / 1024:,.0f} KiB; {passed} of {len(recs)} pass both checks. "
            "Every figure per recipe: [Exports and demos](docs/deploy.md).\n")


def _span(values: list[float], fmt: str) -> str:
    low, high = fmt.format(min(values)), fmt.format(max(values))
    return low if low == high else f"{low}–{high}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="?", type=Path, help="a folder of exported runs: copy their exports.json here")
    p.add_argument("--write", type=Path, help="write the table to this file")
    p.add_argument("--readme", type=Path, help="replace this README's block between the exports markers")
    args = p.parse_args()
    if args.runs:
        for exports in sorted(args.runs.glob("*/exports.json")):
            shutil.copyfile(exports, HERE / f"{exports.parent.name}.json")
    table = exports_table()
    if args.write:
        args.write.write_text(table)
    if args.readme:
        replace_between(args.readme, EXPORTS_BEGIN, EXPORTS_END, exports_summary())
    print(table, end="")


if __name__ == "__main__":
    main()
