"""Top-1 accuracy with the counts behind it (tinyhub's own `evaluate` module: no download, no scikit-learn)."""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "Fraction of predictions equal to the references, with the number correct and the total."
_KWARGS = """
Args:
    predictions (list of int): predicted class ids.
    references (list of int): true class ids.
Returns:
    accuracy (float): correct / total, in [0, 1]; correct (int); total (int).
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class Accuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION, citation="", inputs_description=_KWARGS,
            features=datasets.Features({"predictions": datasets.Value("int64"),
                                        "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references):
        from tinyhub.trainer.scores import classification_scores  # the one computation tinyhub trains with

        num_classes = int(max(max(predictions, default=0), max(references, default=0))) + 1
        scores = classification_scores(np.asarray(predictions), np.asarray(references), num_classes)
        return {"accuracy": scores.correct / scores.total, "correct": scores.correct, "total": scores.total}
