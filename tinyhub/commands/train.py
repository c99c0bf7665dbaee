"""tinyhub train: train a recipe. Every option is a Hydra override of trainer/recipes/train.yaml.

    tinyhub train model=model4 training.epochs=30 --data-dir ../shared/data/mnist
    accelerate launch -m tinyhub train model=opt6k                   # several processes / GPUs
    torchrun --nproc_per_node 2 -m tinyhub train model=model4 training.device=cpu
    tinyhub train --config-dir my_recipes --config-name my_recipe    # recipes that build on the packaged ones

--data-dir DIR and --batch-size N are data.dir=DIR and data.batch_size=N, spelled as on every other command.
A configuration mistake is one `error:` line with the fix (exit 2); --verbose shows Hydra's own report of it.
"""

from __future__ import annotations

import sys

from ._common import run_hydra, run_reporting


def _train(cfg) -> int:
    """cfg: the checked TrainConfig (or, under Hydra's own flags, its DictConfig, typed here)."""
    from tinyhub import trainer
    from tinyhub.trainer.schema import typed_config

    def body() -> int:
        trainer.train(typed_config(cfg))
        return 0

    return run_reporting(body)


def main(argv: list[str] | None = None, prog: str = "tinyhub train") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__.strip() + "\n\nThe recipe's options (Hydra's help follows):\n")
    return run_hydra(_train, config_name="train", argv=argv, prog=prog)
