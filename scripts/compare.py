"""Compare finished runs side by side: the same as `tinyhub compare`.

    python scripts/compare.py "runs/model4-*" runs/opt6k-s0-... --out comparison/
"""

import sys

from tinyhub.commands.compare import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], prog="scripts/compare.py"))
