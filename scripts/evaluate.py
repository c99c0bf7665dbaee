"""Evaluate a tinyhub model on a whole split: the same as `tinyhub evaluate`.

    python scripts/evaluate.py runs/model4-s0-...
    torchrun --nproc_per_node 2 scripts/evaluate.py MODEL --cpu
"""

import sys
from pathlib import Path

# This file is named like the `evaluate` library; drop its folder from the import path so `import evaluate`
# finds the library, not this script.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from tinyhub.commands.evaluate import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], prog="scripts/evaluate.py"))
