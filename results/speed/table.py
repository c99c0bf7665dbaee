"""The speed tables from the `tinyhub bench --profile` outputs in this folder (written by run.sh): whole epochs
(training + evaluation) of tinyhub.trainer.train against the seeds' pipeline, per recipe; with `--rounds`, the
round of the median ratio, and every round's ratio beside it; the bound is the seeds' epoch over tinyhub's step
alone (the profile's first round): what the ratio could reach if everything else were free.

    python results/speed/table.py                     # the full table (docs, Speed), Markdown
    python results/speed/table.py --summary           # the README's summary table
    python results/speed/table.py --write README.md   # replace the README's block between the speed markers
"""

import argparse
import re
from pathlib import Path

from tinyhub.utils.files import replace_between
from tinyhub.utils.tables import markdown_table
HERE = Path(__file__).parent
MODELS = ("model4", "opt6k", "net24k", "efficient", "minimobilenet", "gap8k", "gap20k", "gap5k", "gap2k")
ROW = r"\s+([\d,]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)x\s+([\d,]+)"


def parse(text: str) -> dict | None:
    """The figures of one bench output; None while it is incomplete."""
    if "where tinyhub's epoch goes" not in text:
        return None
    seeds = re.search(r"seeds' pipeline \(DataLoader \+ PIL\)" + ROW, text)
    ours = re.search(r"\ntinyhub \(tinyhub.trainer.train\)" + ROW, text)
    recipe = re.search(r"recipe: (batch \d+), [^,]+, precision (\w+), EMA [^,]+, channels_last (\w+)", text)
    shares = dict(re.findall(r"  (augmentation|forward \+ backward|the rest of the loop|evaluation)[^\n]*?"
                             r"([\d.]+)%\n", text))
    rounds = re.search(r"\n\d+ rounds, [^:]+: ([^;]+);", text)
    gflops = re.search(r"([\d.]+) MFLOP per training image; ([\d.]+) GFLOP/s in the step alone, ([\d.]+) GFLOP/s",
                       text)
    bound = re.search(r"no pipeline gets past ([\d.]+)x", text)
    return {"seeds": seeds.groups(), "ours": ours.groups(), "recipe": recipe.groups(), "shares": shares,
            "bound": f"{bound.group(1)}×" if bound else "—", "gflops": gflops.groups(),
            "rounds": re.findall(r"= ([\d.]+)x", rounds.group(1)) if rounds else []}


SPEED_BEGIN, SPEED_END = "<!-- speed:begin -->", "<!-- speed:end -->"
TTT_BEGIN, TTT_END = "<!-- time-to-target:begin -->", "<!-- time-to-target:end -->"
TTT_FILE = HERE / "time-to-target.txt"  # `tinyhub bench --to 99.0 99.4 --profile` (time_to_target.sh)
_TTT_ROW = (r"\n\s+(tinyhub|seeds' pipeline \(DataLoader \+ PIL\))\s+(\S+) \((\w+)\)\s+(\d+)\s+(\d+)\s+([\d.]+)% ± "
            r"([\d.]+)\s+([\d.]+)%\s+([\d.]+)\s+(≥?[\d.]+)x\s+(yes|no)")
_TTT_PHASES = ("start-up (interpreter, imports, configuration)", "data", "set-up (model, optimizer)", "training",
               "evaluation", "saving", "the rest (exit, writing the record)")


def parse_time_to_target(text: str) -> dict | None:
    """The figures of one `tinyhub bench --to` output: the machine line and, per target, its two rows, how close
    each came to the matmul peak and where its time went; None while it is incomplete."""
    if "\nreached: " not in text:
        return None
    machine = re.search(r"time to target on (.+?); matmul peak ([\d,]+) GFLOP/s fp32, ([\d,]+) GFLOP/s bf16", text)
    targets = []
    for block in re.split(r"\n(?=[\d.]+%\s+pipeline)", text)[1:]:
        rows = [dict(zip(("pipeline", "recipe", "architecture", "epochs", "seeds", "mean", "std", "min", "median",
                          "ratio", "reached"), m.groups())) for m in re.finditer(_TTT_ROW, block)]
        for row in rows:
            peak = re.search(re.escape(row["recipe"]) + r": [\d.]+ TFLOP .*? (\d+)% of the median run", block)
            row["peak_share"] = peak.group(1) if peak else "—"
            phases = re.search(r"where an? " + re.escape(row["recipe"]) + r" run's [\d.]+ s go[^:]*: (.*)", block)
            items = re.split(r"(?<= s), ", phases.group(1).strip()) if phases else []
            row["phases"] = {name: value for name, value, _ in (item.rsplit(" ", 2) for item in items)}
        targets.append((block.split("%", 1)[0], rows))
    return {"machine": machine.group(1), "peaks": machine.group(2, 3), "targets": targets}


def time_to_target_table() -> str:
    """The Speed page's lead: time to each target, tinyhub's speed recipe beside the seeds' pipeline."""
    r = parse_time_to_target(TTT_FILE.read_text()) if TTT_FILE.is_file() else None
    if r is None:
        return "(no complete `tinyhub bench --to` output in results/speed/time-to-target.txt yet)\n"
    rows = []
    for target, pair in r["targets"]:
        for row in pair:
            name = "tinyhub" if row["pipeline"] == "tinyhub" else "seeds' pipeline"
            rows.append([f"{target}%", name, f"`{row['recipe']}` ({row['architecture']})", row["epochs"], row["seeds"],
                         f"{row['mean']}% ± {row['std']}", f"{row['min']}%", f"**{row['median']} s**",
                         f"{row['ratio']}×", row["reached"], f"{row['peak_share']}%"])
    table = markdown_table(["target", "pipeline", "recipe", "epochs", "seeds", "test accuracy (mean ± std)", "min",
                            "median time per run", "vs seeds", "reached", "of the matmul peak"], rows,
                           "lllrrrrrrlr")
    phases = []
    for target, pair in r["targets"]:
        for row in pair:
            phases.append([f"`{row['recipe']}` ({target}%)", f"{row['median']} s",
                           *[f"{row['phases'].get(k, '—')} s" for k in _TTT_PHASES]])
    phase_table = markdown_table(["run", "whole run", "start-up", "data", "set-up", "training", "evaluation",
                                  "saving", "exit, record"], phases, "lrrrrrrrr")
    return (f"On {r['machine']}; matmul peak {r['peaks'][0]} GFLOP/s in fp32 and {r['peaks'][1]} GFLOP/s in bf16.\n\n"
            + table + "\nWhere a run's time goes (medians over the seeds):\n\n" + phase_table)


def _rows() -> list[tuple[str, str, dict]]:
    """(recipe, its settings, parsed bench output) for every recipe with a complete output here."""
    out = []
    for model in MODELS:
        f = HERE / f"{model}.txt"
        r = parse(f.read_text()) if f.is_file() else None
        if r is None:
            continue
        batch, precision, channels_last = r["recipe"]
        settings = ", ".join([batch, *([precision] if precision != "no" else []),
                              *(["channels_last"] if channels_last == "True" else [])])
        out.append((model, settings, r))
    return out


def full_table() -> str:
    rows = []
    for model, settings, r in _rows():
        s, o, sh = r["seeds"], r["ours"], r["shares"]
        ratio = f"**{o[4]}×**" + (f" ({', '.join(r['rounds'])})" if r["rounds"] else "")
        rows.append([model, settings, o[0], s[0], f"{o[3]} s", f"{s[3]} s", ratio, r["bound"],
                     f"{o[5]} / {s[5]}",
                     f"{sh.get('augmentation')} / {sh.get('forward + backward')} / {sh.get('the rest of the loop')} / "
                     f"{sh.get('evaluation')}", f"{r['gflops'][0]}", f"{r['gflops'][1]} / {r['gflops'][2]}"])
    return markdown_table(["recipe", "its settings", "tinyhub img/s", "seeds img/s", "tinyhub epoch", "seeds epoch",
                           "ratio (epoch): median (each round)", "bound (the step alone)", "peak MiB tinyhub / seeds",
                           "% augment / step / rest / eval", "MFLOP/img", "GFLOP/s step / epoch"], rows,
                          "llrrrrrrrrrr")


def summary_table() -> str:
    rows = [[f"`{model}`", settings, r["ours"][0], f"{r['ours'][3]} s", f"{r['seeds'][3]} s", f"{r['ours'][4]}×"]
            for model, settings, r in _rows()]
    return markdown_table(["recipe", "settings", "tinyhub img/s", "tinyhub epoch", "seeds' pipeline epoch",
                           "speed-up"], rows, "llrrrr")


def write_readme(readme: Path) -> None:
    replace_between(readme, SPEED_BEGIN, SPEED_END, summary_table())
    if TTT_BEGIN in readme.read_text():
        replace_between(readme, TTT_BEGIN, TTT_END, time_to_target_table())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--summary", action="store_true", help="the README's summary table")
    p.add_argument("--write", metavar="README", type=Path, help="replace README's block between the speed markers")
    p.add_argument("--time-to-target", action="store_true", help="the time-to-target table (the Speed page's lead)")
    args = p.parse_args()
    if args.write:
        write_readme(args.write)
    elif args.time_to_target:
        print(time_to_target_table(), end="")
    else:
        print(summary_table() if args.summary else full_table(), end="")


if __name__ == "__main__":
    main()
