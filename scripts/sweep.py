"""Search hyperparameters with Ray Tune: the same as `tinyhub sweep`.

    python scripts/sweep.py model=minimobilenet hpo.num_samples=8
"""

import sys

from tinyhub.commands.sweep import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], prog="scripts/sweep.py"))
