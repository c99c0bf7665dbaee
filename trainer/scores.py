"""The one place accuracy and the confusion matrix are computed: training's evaluations, `tinyhub evaluate`, the
exports' checks, the bench's reference pipeline and tinyhub's `evaluate` modules all call `classification_scores`.
It imports torch alone, so a process timed from its start (the bench's reference pipeline) pays for nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class ClassificationScores:
    correct: int
    total: int
    confusion: list[list[int]]  # rows: true class, columns: predicted
    loss: float | None = None  # mean negative log-likelihood, when log-probabilities were given

    @property
    def accuracy(self) -> float:
        """Percent of the examples predicted correctly."""
        return 100.0 * self.correct / self.total if self.total else 0.0

    @property
    def per_class_correct(self) -> list[int]:
        return [row[i] for i, row in enumerate(self.confusion)]

    @property
    def per_class_total(self) -> list[int]:
        return [sum(row) for row in self.confusion]


def classification_scores(predictions, labels, num_classes: int, *,
                          log_probs: torch.Tensor | None = None) -> ClassificationScores:
    """Scores of `predictions` (class ids, or None to take them from `log_probs`) against `labels`: tensors or
    arrays of any device. Counted where the tensors are, and read back once."""
    if predictions is None:
        predictions = log_probs.argmax(-1)
    pred = torch.as_tensor(predictions).long()
    target = torch.as_tensor(labels).long().to(pred.device)
    confusion = torch.bincount(target * num_classes + pred, minlength=num_classes**2).view(num_classes, num_classes)
    loss = None
    if log_probs is not None:
        loss = float(F.nll_loss(log_probs, target.to(log_probs.device)))
    matrix = confusion.cpu().tolist()
    return ClassificationScores(sum(matrix[i][i] for i in range(num_classes)), len(target), matrix, loss)
