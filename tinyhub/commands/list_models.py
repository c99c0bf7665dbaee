"""tinyhub list-models: the registered architectures, their parameters at default settings and their budgets.

    tinyhub list-models
    tinyhub list-models --names        # one name per line, for scripts
"""

from __future__ import annotations

import argparse
import sys

from ._common import ArgumentParser


def parser(prog: str) -> argparse.ArgumentParser:
    p = ArgumentParser(prog, __doc__)
    p.add_argument("--names", action="store_true", help="print only the names, one per line")
    return p


def main(argv: list[str] | None = None, prog: str = "tinyhub list-models") -> int:
    args = parser(prog).parse_args(argv)
    from tinyhub.modeling.catalog import CATALOG  # the packaged models' table: answers without importing torch

    if args.names:
        print("\n".join(sorted(CATALOG)))
        return 0
    rows = [("model", "parameters", "budget", "design")]
    for name in sorted(CATALOG):
        entry = CATALOG[name]
        budget = f"<{entry.param_budget:,}" if entry.param_budget else "-"
        rows.append((name, f"{entry.parameters:,}", budget, entry.design))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print(f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
