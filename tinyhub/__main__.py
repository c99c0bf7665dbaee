"""`python -m tinyhub ...` is the `tinyhub` command (and `accelerate launch -m tinyhub train ...` launches it)."""

import sys

from tinyhub.cli import main

if __name__ == "__main__":
    sys.exit(main())
