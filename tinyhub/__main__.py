"""`python -m tinyhub ...` is the `tinyhub` command (and `accelerate launch -m tinyhub train ...` launches it)."""

from tinyhub.cli import run

if __name__ == "__main__":
    run()
