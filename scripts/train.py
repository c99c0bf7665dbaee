"""Train a tinyhub recipe: the same as `tinyhub train` (kept so `accelerate launch scripts/train.py ...` works).

    python scripts/train.py model=model4 training.epochs=30 --data-dir ../shared/data/mnist
    accelerate launch scripts/train.py model=opt6k
"""

import sys

from tinyhub.commands.train import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], prog="scripts/train.py"))
