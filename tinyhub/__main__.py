"""`python -m tinyhub ...` is the `tinyhub` command (and `accelerate launch -m tinyhub train ...` launches it)."""

import sys

from tinyhub.cli import main

sys.exit(main())
