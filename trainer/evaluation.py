"""Evaluating a saved model (run directory, model folder or Hub repo) on a whole split, on one process or many.

Accuracy, per-class accuracy and the confusion matrix come from classification_scores, as in training (tinyhub's
`evaluate` modules in trainer/metrics wrap the same function). Results are written as JSON (evaluate.save's
fields) next to the model, where the card finds them.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from tinyhub import modeling
from tinyhub.errors import TinyhubError
from tinyhub.utils.files import MODEL_ARGUMENT_HINT, missing_local_path
from tinyhub.utils.hub_http import describe

from .inputs import model_input
from .record import RunRecord, RunRecordError, load_run
from .scores import classification_scores

# Test-time augmentation: the image itself and one-pixel shifts in the four directions.
TTA_SHIFTS = ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))


class EvaluationError(TinyhubError, RuntimeError):
    """The model or data to evaluate could not be found or read. The message says which and how to fix it."""


def _full_precision_forward(model):
    """The model's own forward, without the autocast wrapper that Accelerate's prepare() installs under mixed
    precision (it keeps the original as `_original_forward`; an outer `autocast(enabled=False)` cannot undo it).
    The patched module sits inside any DDP / torch.compile wrapper."""
    return getattr(modeling.unwrap_model(model), "_original_forward", model)


@torch.no_grad()
def predict(model, images: torch.Tensor, accelerator, batch_size: int, *, channels_last: bool = False,
            tta: bool = False) -> torch.Tensor:
    """Log-probabilities (N, C) for a whole split, in dataset order, each image computed exactly once ((N, K, C)
    for a ModelStack of K models).

    Each process takes one contiguous slice (the last padded by repeating its final index), so gathering in rank
    order and keeping the first N rows gives exactly the split, whatever the number of processes.
    """
    model.eval()
    forward = _full_precision_forward(model)
    normalize01 = modeling.unwrap_model(model).normalize01
    n, world, rank = len(images), accelerator.num_processes, accelerator.process_index
    per_rank = math.ceil(n / world)
    idx = torch.arange(rank * per_rank, (rank + 1) * per_rank, device=images.device).clamp_(max=n - 1)
    shifts = TTA_SHIFTS if tta else TTA_SHIFTS[:1]
    outputs = []
    for chunk in idx.split(batch_size):
        probs = None
        for shift in shifts:
            x = model_input([images[chunk]], normalize01, shift=shift, channels_last=channels_last).x
            # Full precision even when training uses bf16/fp16 autocast: the recorded accuracy is then exactly
            # what anyone gets from the saved fp32 weights (evaluation is a tiny share of the time).
            logp = F.log_softmax(forward(x).float(), dim=-1)  # (N, C); a stack gives (N, K, C)
            probs = logp.exp() if probs is None else probs + logp.exp()
        outputs.append(logp if len(shifts) == 1 else (probs / len(shifts)).log())
    return accelerator.gather_for_metrics(torch.cat(outputs))[:n]


def compute_metrics(log_probs: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict:
    """The fields of an evaluation record (EvaluationRecord; `evaluate`'s conventions: accuracy as a fraction),
    computed by classification_scores (trainer/scores.py), the one computation of accuracy and the confusion
    matrix."""
    scores = classification_scores(None, labels, num_classes, log_probs=log_probs.float())
    return {"loss": scores.loss, "accuracy": scores.correct / scores.total, "correct": scores.correct,
            "total": scores.total,
            "per_class_accuracy": [c / t if t else None for c, t in zip(scores.per_class_correct,
                                                                        scores.per_class_total)],
            "per_class_correct": scores.per_class_correct, "per_class_total": scores.per_class_total,
            "confusion_matrix": scores.confusion}


# ---------------------------------------------------------------------------------------------------------
# Which model, which data
# ---------------------------------------------------------------------------------------------------------
@dataclass
class ModelSource:
    kind: str  # "run" | "folder" | "hub"
    model_ref: str  # what modeling.from_pretrained takes
    revision: str | None
    run_results: RunRecord | None  # the record of a run directory
    default_output: Path


def resolve_model(spec: str) -> ModelSource:
    path = Path(spec)
    if path.is_dir():
        if (path / "results.json").is_file() and (path / "model").is_dir():
            try:
                results = load_run(path)
            except RunRecordError as e:
                raise EvaluationError(str(e)) from e
            return ModelSource("run", str(path / "model"), None, results, path / "eval")
        if (path / "config.json").is_file():
            return ModelSource("folder", str(path), None, None, path / "eval")
        raise EvaluationError(f"{spec} is a folder but neither a tinyhub run (results.json + model/) nor a saved "
                              "model (config.json + model.safetensors).")
    missing = missing_local_path(spec)
    if missing:  # a typo'd local folder: said at once, without asking the Hub for a repo of that name
        raise EvaluationError(f"{missing}. {MODEL_ARGUMENT_HINT}")
    repo_id, _, revision = spec.partition("@")
    return ModelSource("hub", repo_id, revision or None, None,
                       Path("eval") / (repo_id.replace("/", "__") + (f"@{revision}" if revision else "")))


def load_model(source: ModelSource):
    from huggingface_hub.errors import HfHubHTTPError
    from safetensors import SafetensorError

    try:
        return modeling.from_pretrained(source.model_ref, revision=source.revision)
    except (FileNotFoundError, SafetensorError, json.JSONDecodeError, ValueError, modeling.WeightsMismatchError,
            modeling.PickleRefusedError) as e:
        raise EvaluationError(f"cannot load the model from {source.model_ref!r}: {describe(e)}") from e
    except HfHubHTTPError as e:
        raise EvaluationError(f"cannot load {source.model_ref!r}@{source.revision or 'main'} from the Hub: {e}") from e


def check_model_fits(model, splits, name: str) -> None:
    """The data holds images of the size and channels `model` takes, in as many classes; else EvaluationError."""
    if splits.image_shape != model.expected_input_shape or splits.num_classes != model.num_classes:
        raise EvaluationError(
            f"{name} takes {'x'.join(map(str, model.expected_input_shape))} images in {model.num_classes} "
            f"classes, but the data holds {'x'.join(map(str, splits.image_shape))} images in {splits.num_classes} "
            "classes: point --data-dir at the dataset it was trained on.")


def data_settings(source: ModelSource, data_dir: str | None) -> dict:
    """The `data` section to evaluate on: a run's own (its dataset, names and splits), with --data-dir pointing at
    another copy of IDX files; for a bare model, the defaults."""
    run_data = dataclasses.asdict(source.run_results.recipe.data) if source.run_results else {}
    # everything that decides what the test split is (where, how decoded, how carved); not how training read it
    settings = {k: v for k, v in run_data.items() if k not in ("val_size", "subset", "batch_size", "eval_batch_size")}
    if data_dir:
        settings.update(source="local", dir=data_dir)
    return {k: v for k, v in settings.items() if v is not None}


def recount_test(run_dir: str | Path, data_dir: str | None = None) -> int:
    """How many of its recorded test split's images a run's saved model classifies correctly now: what a push
    compares with results.json before it publishes a card (cheap for a tiny model; full precision, as recorded)."""
    from accelerate import Accelerator

    from .data import load_from_config
    from .schema import DataConfig

    source = resolve_model(str(run_dir))
    model = load_model(source)
    splits = load_from_config(data_settings(source, data_dir))
    check_model_fits(model, splits, str(run_dir))
    accelerator = Accelerator(cpu=True)
    log_probs = predict(model, splits.test_images, accelerator, DataConfig.eval_batch_size)
    return compute_metrics(log_probs, splits.test_labels, splits.num_classes)["correct"]
