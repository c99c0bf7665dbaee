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

from tinyhub.tables import markdown_table
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
    text = readme.read_text()
    start, end = text.index(SPEED_BEGIN) + len(SPEED_BEGIN), text.index(SPEED_END)
    readme.write_text(text[:start] + "\n" + summary_table() + text[end:])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--summary", action="store_true", help="the README's summary table")
    p.add_argument("--write", metavar="README", type=Path, help="replace README's block between the speed markers")
    args = p.parse_args()
    if args.write:
        write_readme(args.write)
    else:
        print(summary_table() if args.summary else full_table(), end="")


if __name__ == "__main__":
    main()
