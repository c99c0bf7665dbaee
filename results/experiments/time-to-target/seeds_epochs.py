"""The seeds' pipeline (tinyhub/commands/seeds_pipeline.py: torchvision, PIL augmentation, DataLoader) with model4's
recipe, on the 5,000 validation images tinyhub holds out (data.val_size=5000): the mean validation accuracy of N
seeds for each number of epochs. The fewest epochs whose mean reaches a target are what `tinyhub bench --to` gives
the seeds' pipeline for that target.

    python results/experiments/time-to-target/seeds_epochs.py DATA_DIR --epochs 2 3 --seeds 0 1 2 3
"""

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from tinyhub import trainer
from tinyhub.commands.seeds_pipeline import raw_mnist_root, spec_from_recipe, train
from tinyhub.trainer.schema import typed_config

if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("data_dir")
    p.add_argument("--epochs", type=int, nargs="+", required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    p.add_argument("--val-size", type=int, default=5000)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = p.parse_args()
    cfg = typed_config(trainer.load_config(["model=model4"]))
    with tempfile.TemporaryDirectory() as tmp:
        root = raw_mnist_root(Path(args.data_dir), Path(tmp))
        for epochs in args.epochs:
            vals = []
            for seed in args.seeds:
                result = train(spec_from_recipe(cfg, root, epochs, seed=seed, val_size=args.val_size,
                                                eval_each_epoch=False, threads=args.threads))
                vals.append(result["val_accuracy"])
                print(f"model4, {epochs} epochs, seed {seed}: validation {vals[-1]:.2f}%", flush=True)
            print(f"model4, {epochs} epochs: mean validation {statistics.fmean(vals):.3f}% over {len(vals)} seeds "
                  f"(min {min(vals):.2f}%)", flush=True)
    sys.exit(0)
