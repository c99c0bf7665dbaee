"""What `tinyhub evaluate` writes: eval/eval_<split>[_tta].json."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from tinyhub.files import write_json_atomic

from .common import RunRecordError, _fields, _refuse_constant


@dataclass
class EvaluationRecord:
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
    timestamp: str | None = None
    evaluate_version: str | None = None
    python_version: str | None = None

    _UNDERSCORED = ("timestamp", "evaluate_version", "python_version")  # evaluate.save writes these with a `_`

    @classmethod
    def from_dict(cls, d: dict, where: str = "evaluation") -> EvaluationRecord:
        plain = {k.removeprefix("_") if k.removeprefix("_") in cls._UNDERSCORED else k: v for k, v in d.items()}
        return cls(**_fields(cls, plain, where))

    def as_dict(self) -> dict:
        return {f"_{k}" if k in self._UNDERSCORED else k: v for k, v in dataclasses.asdict(self).items()}

    def save(self, path: str | Path) -> Path:
        write_json_atomic(path, self.as_dict())
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> EvaluationRecord:
        try:
            return cls.from_dict(json.loads(Path(path).read_text(), parse_constant=_refuse_constant), str(path))
        except (OSError, ValueError, TypeError) as e:
            raise RunRecordError(f"{path} cannot be read as a tinyhub evaluation ({e}).") from e
