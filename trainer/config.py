"""Compose a training configuration in Python, exactly as `scripts/train.py` would from the command line."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig


def load_config(overrides: list[str] | tuple[str, ...] = (), config_name: str = "train",
                config_dir: str | Path | None = None) -> DictConfig:
    """`load_config(["model=opt6k", "training.epochs=3"])` -> the resolved recipe as a DictConfig.

    With `config_dir` (like `--config-dir` on the command line) the recipe is looked up there first and can build
    on the packaged ones: `defaults: [train, {override /model: net24k}, _self_]`.
    """
    from hydra import compose, initialize_config_dir, initialize_config_module

    overrides = list(overrides)
    if config_dir is not None:
        ctx = initialize_config_dir(config_dir=str(Path(config_dir).resolve()), version_base=None)
        overrides.append("hydra.searchpath=[pkg://trainer.recipes]")
    else:
        ctx = initialize_config_module("trainer.recipes", version_base=None)
    with ctx:
        return compose(config_name=config_name, overrides=overrides)
