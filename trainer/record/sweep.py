"""What `tinyhub sweep` writes: <sweep dir>/sweep.json."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tinyhub.utils.files import write_json_atomic

from .common import Record, RESULTS_FILE, RunRecordError, _refuse_constant


SWEEP_SUMMARY_FILE = "sweep.json"
SWEEP_SCHEMA_VERSION = 1


@dataclass
class SweepTrial(Record):
    """One trial of a sweep: its sampled values and what it reached on the validation split."""

    trial: str
    status: str  # TERMINATED | INTERRUPTED | ERROR | NOT RUN
    config: dict  # the sampled values, by dotted key
    best: float | None  # its best value of the metric over the epochs it ran
    best_epoch: int | None
    last: float | None
    epochs_run: int
    stopped_early: bool  # stopped by ASHA before the sweep's epochs
    error: str | None
    run_dir: str
    history: list[dict]  # [{"epoch": e, <metric>: value}, ...]
    rank: int | None = None  # 1 = the winner; None for a trial that reported nothing


@dataclass
class SweepBest(Record):
    trial: str
    value: float
    epoch: int
    epochs_run: int
    config: dict
    run_dir: str
    recipe: str  # best_recipe.yaml: the winner as a recipe to train


@dataclass
class SweepSummary(Record):
    """A finished (or interrupted) sweep: how it searched, every trial, and the winner chosen on validation."""

    name: str
    sweep_dir: str
    model: str
    metric: str  # val_accuracy | val_loss
    mode: str  # max | min
    selection: str  # how the winner was chosen, in words
    val_size: int
    epochs: int
    num_samples: int
    search: str
    seed: int | None
    scheduler: dict
    resources: dict
    space: dict
    ray: dict
    started: str
    resumed: bool
    wall_seconds: float
    trials: list[SweepTrial]
    best: SweepBest | None
    schema_version: int = SWEEP_SCHEMA_VERSION

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / SWEEP_SUMMARY_FILE
        write_json_atomic(path, self.as_dict())
        return path

    @classmethod
    def load(cls, folder: str | Path) -> SweepSummary:
        """A sweep folder's summary: sweep.json, or results.json in folders written before it had its own name."""
        folder = Path(folder)
        path = folder / SWEEP_SUMMARY_FILE
        if not path.is_file() and (folder / RESULTS_FILE).is_file():
            path = folder / RESULTS_FILE
        try:
            return cls.from_dict(json.loads(path.read_text(), parse_constant=_refuse_constant), str(path))
        except (OSError, ValueError) as e:
            raise RunRecordError(f"{path} cannot be read as a sweep summary ({e}).") from e
