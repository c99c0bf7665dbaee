"""What the repository keeps of each packaged recipe: results/<label>/seed_<k>.json (written by `tinyhub
reproduce`), the reruns log, and the statistics over seeds the tables print."""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Annotated

from tinyhub.utils.files import write_json_atomic

from pydantic import PlainSerializer

from ..schema import TrainConfig
from .run import recipe_dict
from .common import Record, RunRecordError
from .run import EpochRecord, GitState, RunRecord, typed_recipe


@dataclass(kw_only=True)  # keyword-only, so that fields stand in groups whether or not older records have them
class SeedRecord(Record):
    """One seed of a recipe as the repository keeps it: the numbers of its RunRecord that tables need, the recipe,
    and the per-epoch history, so that "final epoch, never the best" can be checked from the file alone."""

    # what was trained
    model: str
    label: str | None = None  # the results/ folder it is kept in; its model's name in older records
    seed: int
    parameters: int
    recipe: Annotated[TrainConfig | None, PlainSerializer(recipe_dict)] = None
    distilled_from: str | None = None
    # what it scored: the final epoch, and every epoch before it
    target_accuracy: float | None
    test_accuracy: float
    test_correct: int
    test_total: int
    train_accuracy: float | None = None
    epochs: int
    history: list[EpochRecord] | None = None  # None in records written before tinyhub kept it
    # how and where it ran
    hardware: str
    train_seconds: float | None
    wall_seconds: float | None = None
    world_size: int | None = None
    mixed_precision: str | None = None
    git: GitState | None = None
    run_dir: str | None = None

    @classmethod
    def from_run(cls, record: RunRecord, run_dir: str | Path, label: str | None = None) -> SeedRecord:
        return cls(model=record.model, label=label or record.model, seed=record.seed,
                   parameters=record.parameters,
                   distilled_from=record.distillation.text if record.distillation else None,
                   target_accuracy=record.target_accuracy, test_accuracy=record.final.test_accuracy,
                   test_correct=record.final.test_correct, test_total=record.final.test_total,
                   train_accuracy=record.final.train_accuracy, epochs=len(record.epochs),
                   train_seconds=record.train_seconds, wall_seconds=record.wall_seconds,
                   hardware=record.hardware_text, world_size=record.world_size,
                   mixed_precision=record.mixed_precision, git=record.git, run_dir=str(run_dir),
                   recipe=record.recipe, history=list(record.epochs))

    @classmethod
    def load(cls, path: str | Path) -> SeedRecord:
        try:
            d = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise RunRecordError(f"{path} cannot be read as a seed record ({e}).") from e
        if isinstance(d, dict) and isinstance(d.get("recipe"), dict):  # typed as the configuration it ran with
            d = {**d, "recipe": typed_recipe(d["recipe"], str(path), model=d.get("model"))}
        if isinstance(d, dict) and not d.get("label"):  # records written before variants had labels
            d = {**d, "label": d.get("model")}
        return cls.from_dict(d, str(path))

    def save(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, self.as_dict())

    @property
    def final_is_last_epoch(self) -> bool | None:
        """Whether the recorded accuracy is the last epoch's (None when the history was not kept)."""
        if not self.history:
            return None
        last = self.history[-1]
        return last.epoch == self.epochs and last.test_correct == self.test_correct


# ---------------------------------------------------------------------------------------------------------
# results/reruns.json: recorded seeds trained again from scratch (`tinyhub reproduce --rerun`)
# ---------------------------------------------------------------------------------------------------------
RERUNS_FILE = "reruns.json"


@dataclass
class Rerun(Record):
    model: str
    seed: int
    recorded_accuracy: float  # % on the test split, as the seed record says
    rerun_accuracy: float
    difference: float  # rerun minus recorded, in points
    recorded_commit: str | None
    rerun_commit: str | None
    run_dir: str
    date: str
    recorded_hardware: str | None = None
    rerun_hardware: str | None = None


def load_reruns(out_root: str | Path) -> list[Rerun]:
    """Every rerun logged under `out_root` (none when there is no log yet)."""
    path = Path(out_root) / RERUNS_FILE
    if not path.is_file():
        return []
    try:
        return [Rerun.from_dict(e, str(path)) for e in json.loads(path.read_text())]
    except (OSError, ValueError, TypeError) as e:
        raise RunRecordError(f"{path} cannot be read as tinyhub's rerun log ({e}).") from e


def log_rerun(out_root: str | Path, rerun: Rerun) -> None:
    """Add one rerun to the log, which is written whole or not at all."""
    entries = [*load_reruns(out_root), rerun]
    write_json_atomic(Path(out_root) / RERUNS_FILE, [e.as_dict() for e in entries])


# ---------------------------------------------------------------------------------------------------------
# Mean ± std over seeds: the one helper for every table and card
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SeedStats:
    """Test accuracy over runs of one recipe. `exact_mean` is computed from the correct/total counts, so a mean
    that sits exactly on a target (29,820 of 30,000 images = 99.40%) never misses it by a float rounding error."""

    values: tuple[float, ...]
    seeds: tuple[int | None, ...]
    exact_mean: Fraction

    @classmethod
    def of(cls, runs: list[tuple[int | None, int, int]]) -> SeedStats:
        """From (seed, test_correct, test_total) of each run."""
        if not runs:
            raise ValueError("no runs to average")
        fractions = [Fraction(100 * c, t) for _, c, t in runs]
        return cls(values=tuple(float(f) for f in fractions), seeds=tuple(s for s, _, _ in runs),
                   exact_mean=sum(fractions) / len(fractions))

    @classmethod
    def of_records(cls, records: list[RunRecord]) -> SeedStats:
        return cls.of([(r.seed, r.final.test_correct, r.final.test_total) for r in records])

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return float(self.exact_mean)

    @property
    def std(self) -> float:
        """Sample standard deviation (n - 1); 0 for one run."""
        return statistics.stdev(self.values) if self.n > 1 else 0.0

    def meets(self, target: float | None) -> bool | None:
        return None if target is None else self.exact_mean >= Fraction(str(target))

    def text(self) -> str:
        """`99.37% ± 0.06`; one run: `99.37%`."""
        return f"{self.mean:.2f}% ± {self.std:.2f}" if self.n > 1 else f"{self.mean:.2f}%"


def finite_metrics(record: RunRecord) -> bool:
    values = [record.final.test_accuracy, record.final.test_loss, record.final.train_accuracy,
              record.final.train_loss] + [v for e in record.epochs for v in (
                  (e.train_loss, e.test_loss, e.test_accuracy) if e.evaluated else (e.train_loss,))]
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)
