"""The records of 2026-11-28 against the ones they replaced: prints the markdown table of this folder's README.md.

    python results/experiments/records-retrained-2026-11-28/compare_records.py [OLD_REV [NEW_REV]]
    # default 905df28 (before) and 014104e (the replacement)

Both sets are read from git (`git show REV:results/<model>/seed_<k>.json`), so the table stays that replacement's
when a recipe changes later (model4's batch 64 was recorded after it); NEW_REV `.` reads results/. The exact means
(correct images over all seeds) decide "met", as the results table does.
"""

import subprocess
import sys
import tempfile
from pathlib import Path

from tinyhub.utils.tables import markdown_table
from tinyhub.trainer.record import SeedRecord, SeedStats

MODELS = ("efficient", "model4", "opt6k", "net24k", "minimobilenet", "gap8k", "gap20k")
ROOT = Path(__file__).resolve().parents[3]  # the repository: results/experiments/<this folder>/ is three below it


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


def main(old_rev: str, new_rev: str) -> None:
    rows = []
    for model in MODELS:
        old, new = _records(old_rev, model), _records(None if new_rev == "." else new_rev, model)
        if not all(r.final_is_last_epoch for r in new):
            raise SystemExit(f"{model} at {new_rev}: a record without its per-epoch history; run the seeds again first")
        (old_txt, old_stats), (new_txt, new_stats) = _cell(old), _cell(new)
        target = new[0].target_accuracy
        met = {True: "yes", False: "no"}
        rows.append([model, f"{target}%", old_txt, met[old_stats.meets(target)], new_txt,
                     met[new_stats.meets(target)], f"{new_stats.mean - old_stats.mean:+.2f}"])
    print(markdown_table(["model", "target", "earlier records (seeds 0, 1, 2)", "met", "2026-11-28 (seeds 0, 1, 2)",
                          "met", "change"], rows, "lrlllll"))


if __name__ == "__main__":
    args = sys.argv[1:]
    main(args[0] if args else "905df28", args[1] if len(args) > 1 else "014104e")
