"""The README's speed table from the `tinyhub bench --profile` outputs in this folder (written by run.sh):
whole epochs (training + evaluation) of tinyhub.trainer.train against the seeds' pipeline, per recipe; with
`--rounds`, the round of the median ratio, and every round's ratio beside it; the bound is the seeds' epoch over
tinyhub's step alone (the profile's first round): what the ratio could reach if everything else were free.

    python results/speed/table.py          # prints the Markdown table
"""

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


def main() -> None:
    rows = []
    for model in MODELS:
        f = HERE / f"{model}.txt"
        if not f.is_file():
            continue
        r = parse(f.read_text())
        if r is None:
            continue
        batch, precision, channels_last = r["recipe"]
        settings = ", ".join([batch, *([precision] if precision != "no" else []),
                              *(["channels_last"] if channels_last == "True" else [])])
        s, o, sh = r["seeds"], r["ours"], r["shares"]
        ratio = f"**{o[4]}×**" + (f" ({', '.join(r['rounds'])})" if r["rounds"] else "")
        rows.append([model, settings, o[0], s[0], f"{o[3]} s", f"{s[3]} s", ratio, r["bound"],
                     f"{o[5]} / {s[5]}",
                     f"{sh.get('augmentation')} / {sh.get('forward + backward')} / {sh.get('the rest of the loop')} / "
                     f"{sh.get('evaluation')}", f"{r['gflops'][0]}", f"{r['gflops'][1]} / {r['gflops'][2]}"])
    print(markdown_table(["recipe", "its settings", "tinyhub img/s", "seeds img/s", "tinyhub epoch", "seeds epoch",
                          "ratio (epoch): median (each round)", "bound (the step alone)", "peak MiB tinyhub / seeds",
                          "% augment / step / rest / eval", "MFLOP/img", "GFLOP/s step / epoch"], rows, "llrrrrrrrrrr"))


if __name__ == "__main__":
    main()
