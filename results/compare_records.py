"""The records of 2026-11-28 against the ones they replaced: prints a markdown table for the README.

    python results/compare_records.py [OLD_REV]      # default 905df28, the commit before the replacement

The earlier records are read from git (`git show OLD_REV:results/<model>/seed_<k>.json`), the current ones from
results/; the exact means (correct images over all seeds) decide "met", as the results table does.
"""

import subprocess
import sys
import tempfile
from pathlib import Path

from tinyhub.tables import markdown_table
from tinyhub.trainer.record import SeedRecord, SeedStats

MODELS = ("efficient", "model4", "opt6k", "net24k", "minimobilenet", "gap8k", "gap20k")
ROOT = Path(__file__).resolve().parent.parent


def _records(rev: str | None, model: str) -> list[SeedRecord]:
    """Seeds 0-2 of a recipe, read through SeedRecord like every other consumer: from results/, or as of rev."""
    paths = [f"results/{model}/seed_{seed}.json" for seed in (0, 1, 2)]
    if rev is None:
        return [SeedRecord.load(ROOT / path) for path in paths]
    with tempfile.TemporaryDirectory() as tmp:
        out = []
        for path in paths:
            copy = Path(tmp) / Path(path).name
            copy.write_text(subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, check=True,
                                           capture_output=True, text=True).stdout)
            out.append(SeedRecord.load(copy))
        return out


def _cell(records: list[SeedRecord]) -> tuple[str, SeedStats]:
    stats = SeedStats.of([(r.seed, r.test_correct, r.test_total) for r in records])
    return f"{stats.mean:.2f}% ({', '.join(f'{r.test_accuracy:.2f}' for r in records)})", stats


def main(old_rev: str) -> None:
    rows = []
    for model in MODELS:
        old, new = _records(old_rev, model), _records(None, model)
        if not all(r.final_is_last_epoch for r in new):
            raise SystemExit(f"results/{model}: a record without its per-epoch history; run the seeds again first")
        (old_txt, old_stats), (new_txt, new_stats) = _cell(old), _cell(new)
        target = new[0].target_accuracy
        met = {True: "yes", False: "no"}
        rows.append([model, f"{target}%", old_txt, met[old_stats.meets(target)], new_txt,
                     met[new_stats.meets(target)], f"{new_stats.mean - old_stats.mean:+.2f}"])
    print(markdown_table(["model", "target", "earlier records (seeds 0, 1, 2)", "met", "2026-11-28 (seeds 0, 1, 2)",
                          "met", "change"], rows, "lrlllll"))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "905df28")
