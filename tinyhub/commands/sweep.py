"""tinyhub sweep: search hyperparameters of a recipe with Ray Tune and ASHA (trainer/recipes/sweep.yaml
documents `hpo`). Every trial is an ordinary `tinyhub train` run, compared on a validation split.

    tinyhub sweep model=minimobilenet hpo.num_samples=8 --data-dir ../shared/data/mnist
    tinyhub sweep model=opt6k training.epochs=10 hpo.search=optuna hpo.num_samples=32 \\
        '+hpo.space.training.label_smoothing={type:uniform,low:0,high:0.15}'
    tinyhub sweep model=net24k hpo.address=auto hpo.resources.gpu=0.5       # an existing Ray cluster
    tinyhub sweep --config-dir my_sweeps --config-name my_sweep            # defaults: [sweep, _self_]

The table, the best recipe and a report land in the sweep folder (hpo.dir, default sweeps/<name>); train the
winner with `tinyhub train --config-dir SWEEP_DIR --config-name best_recipe`.
Exit status: 0 done, 1 no trial finished an epoch, 2 invalid configuration (nothing was started; one `error:` line
with the fix, or Hydra's own report with --verbose).
"""

from __future__ import annotations

import sys

from ._common import run_hydra, run_reporting


def _sweep(cfg) -> int:
    return run_reporting(_run_sweep, cfg)


def _run_sweep(cfg) -> int:
    from tinyhub.trainer.sweep import run_sweep

    summary = run_sweep(cfg)
    if summary.best is None:
        print(f"error: no trial reported {summary.metric}; see {summary.sweep_dir}/results.md",
              file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None, prog: str = "tinyhub sweep") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__.strip() + "\n\nThe sweep's options (Hydra's help follows):\n")
    from tinyhub.trainer.schema import SweepConfig

    return run_hydra(_sweep, config_name="sweep", argv=argv, prog=prog, schema=SweepConfig, typed=False)
