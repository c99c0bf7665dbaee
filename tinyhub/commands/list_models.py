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
    from tinyhub import modeling

    names = modeling.list_models()
    if args.names:
        print("\n".join(names))
        return 0
    rows = [("model", "parameters", "budget", "design")]
    for name in names:
        info = modeling.model_info(name)
        budget = f"<{info['param_budget']:,}" if info["param_budget"] else "-"
        rows.append((name, f"{modeling.create_model(name).num_parameters():,}", budget, info["design"]))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print(f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
