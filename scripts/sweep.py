"""Search hyperparameters of a tinyhub recipe with Ray Tune and ASHA (trainer/recipes/sweep.yaml documents `hpo`).

    python scripts/sweep.py model=minimobilenet hpo.num_samples=8
    python scripts/sweep.py model=opt6k training.epochs=10 hpo.search=optuna hpo.num_samples=32 \
        '+hpo.space.training.label_smoothing={type:uniform,low:0,high:0.15}'
    python scripts/sweep.py model=net24k hpo.address=auto hpo.resources.gpu=0.5      # an existing Ray cluster
    python scripts/sweep.py --config-dir my_sweeps --config-name my_sweep           # defaults: [sweep, _self_]

The table, the best recipe and a report land in the sweep folder (hpo.dir, default sweeps/<name>); train the
winner with `python scripts/train.py --config-dir SWEEP_DIR --config-name best_recipe`.
Exit status: 0 done, 1 no trial finished an epoch, 2 invalid configuration (nothing was started).
"""

import sys

import hydra
from omegaconf import DictConfig

import modeling
import trainer


@hydra.main(version_base=None, config_path="pkg://trainer.recipes", config_name="sweep")
def main(cfg: DictConfig) -> None:
    from trainer.sweep import run_sweep

    try:
        summary = run_sweep(cfg)
    except (trainer.DataError, trainer.ConfigError, modeling.UnknownModelError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    if summary["best"] is None:
        print(f"error: no trial reported {summary['metric']}; see {summary['sweep_dir']}/results.md",
              file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
