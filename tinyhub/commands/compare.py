"""tinyhub compare: finished runs side by side: a Markdown and HTML table and an overlay of test-accuracy curves.

    tinyhub compare "runs/model4-*" runs/opt6k-s0-... --out comparison/
"""

from __future__ import annotations

import argparse
import glob
import sys
from pathlib import Path

from ._common import ArgumentParser, fail


def parser(prog: str) -> argparse.ArgumentParser:
    p = ArgumentParser(prog, __doc__)
    p.add_argument("runs", nargs="+", help="run directories or glob patterns")
    p.add_argument("--out", default="comparison", help="output folder (default ./comparison)")
    return p


def main(argv: list[str] | None = None, prog: str = "tinyhub compare") -> int:
    args = parser(prog).parse_args(argv)
    from tinyhub.errors import TinyhubError, UsageError
    from tinyhub.utils.files import output_kind
    from tinyhub.trainer.report import compare_runs

    dirs = []
    for pattern in args.runs:
        matches = sorted(glob.glob(pattern)) or [pattern]
        dirs += [Path(m) for m in matches if Path(m).is_dir()] or [Path(pattern)]
    runs = []
    for d in dirs:
        kind = output_kind(d)
        if kind:  # what tinyhub wrote beside the runs (an upload folder, a comparison, a sweep) is not a run
            print(f"note: skipped {d}: {kind}, not a run", file=sys.stderr)
        else:
            runs.append(d)
    try:
        if not runs:
            raise UsageError(f"no runs to compare in {' '.join(args.runs)}: give run directories (folders "
                             "`tinyhub train` wrote) or a glob of them.")
        out = compare_runs(runs, Path(args.out))
    except (FileNotFoundError, TinyhubError) as e:
        return fail(e)
    print(out["markdown"].read_text())
    print(f"written: {out['markdown']}, {out['html']}, {out['plot']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
