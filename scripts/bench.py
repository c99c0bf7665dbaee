"""The same as `tinyhub bench` (see `tinyhub bench --help`)."""

import sys

from tinyhub.commands.bench import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], prog="scripts/bench.py"))
