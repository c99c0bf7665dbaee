"""Hyperparameter search: Ray Tune + ASHA over any option of a tinyhub recipe, one laptop or a whole cluster.

    plan = prepare_sweep(load_config(["model=opt6k", "hpo.num_samples=8"], config_name="sweep"))
    summary = run_sweep(plan)

`prepare_sweep` (run.py) checks what the schema (trainer/schema.py) cannot: the search space against the training config,
the metric, the validation split, the scheduler, the sweep folder -- without Ray, so a bad sweep fails before a
cluster is touched. `run_sweep` starts or joins Ray and runs one Tune trial per sampled configuration; each trial
is `trainer.train(cfg, on_epoch_end=...)`, reporting validation metrics per epoch so ASHA can stop weak trials.
The tables and the best trial come from Tune's ResultGrid; an interrupted sweep continues through
`Tuner.restore` (hpo.resume=true), running only the trials that had not finished. The sweep folder gets:

    results.md / results.csv / results.json   one row per trial: sampled values, best validation metric, epochs
                                              run, stopped early or not, status (ERROR rows for failed trials)
    best_recipe.yaml                          the best configuration as a recipe:
                                              tinyhub train --config-dir SWEEP --config-name best_recipe
    report.md                                 what was searched, how, and what won
    sweep_config.yaml                         the resolved configuration the sweep ran with
    trials/<trial id>/                        each trial's run directory (config.yaml, results.json)
    tune/                                     Ray Tune's own experiment folder (per-trial progress.csv, errors)

Selection uses the validation split carved from the training images (data.val_size) and nothing else; the test
split is not reported to Tune. Ray is imported only here and only when a sweep runs.
"""

from .run import SweepPlan, forwarded_env, prepare_sweep, run_sweep, summarize  # noqa: F401
from .space import SweepConfigError  # noqa: F401
