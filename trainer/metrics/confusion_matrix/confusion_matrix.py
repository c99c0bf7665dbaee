"""Confusion matrix, rows = true class, columns = predicted class (tinyhub's own `evaluate` module)."""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "Counts of (true class, predicted class) pairs as a num_classes x num_classes matrix."
_KWARGS = """
Args:
    predictions (list of int): predicted class ids.
    references (list of int): true class ids.
    num_classes (int): matrix size.
Returns:
    confusion_matrix (list of list of int): rows are true classes, columns predicted classes.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class ConfusionMatrix(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION, citation="", inputs_description=_KWARGS,
            features=datasets.Features({"predictions": datasets.Value("int64"),
                                        "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references, num_classes):
        from tinyhub.trainer.scores import classification_scores  # the one computation tinyhub trains with

        return {"confusion_matrix": classification_scores(np.asarray(predictions), np.asarray(references),
                                                          num_classes).confusion}
