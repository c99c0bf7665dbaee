"""Train a tinyhub recipe.

    python scripts/train.py model=model4 training.epochs=30 data.dir=../shared/data/mnist
    accelerate launch scripts/train.py model=opt6k
    torchrun --nproc_per_node 2 scripts/train.py model=model4 training.device=cpu
    python scripts/train.py --config-dir my_recipes --config-name my_recipe
"""

import sys

import hydra
from omegaconf import DictConfig

import modeling
import trainer


@hydra.main(version_base=None, config_path="pkg://trainer.recipes", config_name="train")
def main(cfg: DictConfig) -> None:
    try:
        trainer.train(cfg)
    except (trainer.DataError, trainer.ConfigError, modeling.UnknownModelError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
