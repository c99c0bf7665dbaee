"""Compare finished runs side by side: a Markdown and HTML table and an overlay of test-accuracy curves.

    python scripts/compare.py runs/model4-* runs/opt6k-s0-... [--out comparison/]
"""

import argparse
import glob
import sys
from pathlib import Path

from trainer.report import compare_runs


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="run directories or glob patterns")
    p.add_argument("--out", default="comparison", help="output folder (default ./comparison)")
    args = p.parse_args(argv)
    dirs = []
    for pattern in args.runs:
        matches = sorted(glob.glob(pattern)) or [pattern]
        dirs += [Path(m) for m in matches if Path(m).is_dir()] or [Path(pattern)]
    try:
        out = compare_runs(dirs, Path(args.out))
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(out["markdown"].read_text())
    print(f"written: {out['markdown']}, {out['html']}, {out['plot']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
