"""Publish a tinyhub run to the Hugging Face Hub: the same as `tinyhub push`.

    python scripts/push.py RUN_DIR --repo-id me/model4-mnist --tag v1
"""

import sys

from tinyhub.commands.push import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], prog="scripts/push.py"))
