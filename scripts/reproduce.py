"""The same as `tinyhub reproduce` (see `tinyhub reproduce --help`)."""

import sys

from tinyhub.commands.reproduce import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], prog="scripts/reproduce.py"))
