"""What `tinyhub evaluate` writes: eval/eval_<split>[_tta].json."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from tinyhub.utils.files import write_json_atomic

from pydantic import Field

from .common import Record, RunRecordError, _refuse_constant


@dataclass
class EvaluationRecord(Record):
    """One evaluation of a saved model on a whole split, in evaluate.save's layout (its `_` fields included), so
    that tools reading evaluate's files read these too."""

    model: str  # what was evaluated: a run directory, a model folder or a Hub repo id[@revision]
    architecture: str
    split: str  # train | validation | test
    tta: bool  # test-time augmentation (the image and its one-pixel shifts)
    num_processes: int
    labels: list[str]  # class names in label order
    loss: float
    accuracy: float  # a fraction, as evaluate's accuracy module gives it
    correct: int
    total: int
    per_class_accuracy: list[float | None]
    per_class_correct: list[int]
    per_class_total: list[int]
    confusion_matrix: list[list[int]]  # rows: true class, columns: predicted
    # evaluate.save writes these three with a leading `_`
    timestamp: Annotated[str | None, Field(alias="_timestamp")] = None
    evaluate_version: Annotated[str | None, Field(alias="_evaluate_version")] = None
    python_version: Annotated[str | None, Field(alias="_python_version")] = None

    def save(self, path: str | Path) -> Path:
        write_json_atomic(path, self.as_dict())
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> EvaluationRecord:
        try:
            return cls.from_dict(json.loads(Path(path).read_text(), parse_constant=_refuse_constant), str(path))
        except (OSError, ValueError, TypeError) as e:
            raise RunRecordError(f"{path} cannot be read as a tinyhub evaluation ({e}).") from e
