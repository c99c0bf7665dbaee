"""Accuracy of every class separately (tinyhub's own `evaluate` module)."""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "For each class: how many of its examples were predicted correctly, out of how many."
_KWARGS = """
Args:
    predictions (list of int): predicted class ids.
    references (list of int): true class ids.
    num_classes (int): number of classes (classes absent from the references get total 0).
Returns:
    per_class_accuracy (list of float or None), per_class_correct (list of int), per_class_total (list of int).
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class PerClassAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION, citation="", inputs_description=_KWARGS,
            features=datasets.Features({"predictions": datasets.Value("int64"),
                                        "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references, num_classes):
        from tinyhub.trainer.scores import classification_scores  # the one computation tinyhub trains with

        scores = classification_scores(np.asarray(predictions), np.asarray(references), num_classes)
        correct, total = scores.per_class_correct, scores.per_class_total
        return {
            "per_class_accuracy": [c / t if t else None for c, t in zip(correct, total)],
            "per_class_correct": correct,
            "per_class_total": total,
        }
