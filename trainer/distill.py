"""Knowledge distillation: any tinyhub model, or an ensemble, teaches the model being trained.

A teacher is whatever `tinyhub.from_pretrained` loads: a run directory, a saved model folder, or a Hub repo
id[@revision] (so a model someone published teaches anyone). Teachers are checked against the data before
training starts, run in eval mode under inference mode on the same augmented batch as the student, and are recorded
precisely (repo id and commit, or path and weights sha256, and their own accuracy) for results.json and the card.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from tinyhub import modeling
from tinyhub.errors import UsageError
from tinyhub.utils.files import MODEL_ARGUMENT_HINT, missing_local_path, sha256_file
from tinyhub.modeling._base import WEIGHTS_NAME

from .inputs import normalised
from .record import RunRecordError, TeacherRecord, load_run


class TeacherError(UsageError, ValueError):
    """A teacher cannot be loaded, or does not fit the data; nothing was trained."""


@dataclass
class Teacher:
    model: torch.nn.Module
    record: TeacherRecord  # what results.json and the card say about it

    def to(self, device) -> "Teacher":
        self.model.to(device)
        return self


def teacher_specs(value) -> list[str]:
    """training.distill.teacher as a list: one spec, or several for an ensemble."""
    if value is None or value == "" or value == []:
        return []
    specs = [value] if isinstance(value, str) else list(value)
    if not all(isinstance(s, str) and s for s in specs):
        raise TeacherError(f"training.distill.teacher={value!r}: give a run directory, a model folder or a Hub repo "
                           "id[@revision], or a list of them.")
    return specs


def _load_one(spec: str) -> Teacher:
    path = Path(spec).expanduser()
    if path.is_dir():
        run = (path / "results.json").is_file() and (path / "model").is_dir()
        folder = path / "model" if run else path
        if not (folder / "config.json").is_file():
            raise TeacherError(f"training.distill.teacher={spec!r} is a folder but neither a tinyhub run "
                               "(results.json + model/) nor a saved model (config.json + model.safetensors).")
        model = modeling.from_pretrained(folder)
        record = {"kind": "run" if run else "folder", "path": str(folder.resolve()),
                  "weights_sha256": sha256_file(folder / WEIGHTS_NAME)}
        if run:
            results = load_run(path)
            record.update(test_accuracy=results.final.test_accuracy, dataset=results.dataset.name)
    else:
        missing = missing_local_path(spec)
        if missing:
            raise TeacherError(f"training.distill.teacher: {missing}. {MODEL_ARGUMENT_HINT}")
        from huggingface_hub import hf_hub_download, model_info

        from tinyhub.utils.hub_http import use_hub_timeouts

        use_hub_timeouts()
        repo_id, _, revision = spec.partition("@")
        commit = model_info(repo_id, revision=revision or None).sha  # pinned: the card links this exact commit
        model = modeling.from_pretrained(repo_id, revision=commit)
        weights = hf_hub_download(repo_id, WEIGHTS_NAME, revision=commit)
        record = {"kind": "hub", "repo_id": repo_id, "revision": revision or "main", "commit": commit,
                  "weights_sha256": sha256_file(Path(weights)), "test_accuracy": _published_accuracy(repo_id, commit)}
    return Teacher(model, TeacherRecord(**record, spec=spec, architecture=model.architecture,
                                        parameters=model.num_parameters()))


def _published_accuracy(repo_id: str, commit: str) -> float | None:
    """The test accuracy in the results.json a tinyhub push publishes beside the model (numbers only are read)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        results = load_run(hf_hub_download(repo_id, "results.json", revision=commit))
    except (EntryNotFoundError, RunRecordError, OSError):
        return None  # not published by tinyhub, or by a version whose record this one cannot read
    value = results.final.test_accuracy
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def load_teachers(specs: list[str], *, label_names: list[str], image_shape: tuple[int, int, int],
                  device) -> list[Teacher]:
    """Every teacher loaded and checked against the data: same classes in the same order, same input shape."""
    teachers = []
    for spec in specs:
        try:
            teacher = _load_one(spec)
        except TeacherError:
            raise
        except Exception as e:  # noqa: BLE001 - whatever stops it loading, training does not start
            raise TeacherError(f"training.distill.teacher {spec!r} cannot be loaded ({type(e).__name__}: "
                               f"{str(e)[:300]}); nothing was trained.") from e
        model = teacher.model
        names = [model.id2label[str(i)] for i in range(model.num_classes)]
        if model.num_classes != len(label_names):
            raise TeacherError(f"teacher {spec!r} predicts {model.num_classes} classes, but the data has "
                               f"{len(label_names)}; a teacher must know the same classes.")
        if names != list(label_names):
            raise TeacherError(f"teacher {spec!r} names its classes {names[:5]}..., the data "
                               f"{list(label_names)[:5]}...: the classes must be the same, in the same order.")
        if tuple(model.expected_input_shape) != tuple(image_shape):
            raise TeacherError(f"teacher {spec!r} takes {'x'.join(map(str, model.expected_input_shape))} images, "
                               f"the data is {'x'.join(map(str, image_shape))}.")
        teacher.to(device)
        model.eval().requires_grad_(False)
        teachers.append(teacher)
    return teachers


def soft_targets(teachers: list[Teacher], images01: torch.Tensor, temperature: float) -> torch.Tensor:
    """The teachers' class probabilities at `temperature`, averaged over the ensemble. `images01` is the augmented
    batch in [0, 1]; each teacher normalises it with its own statistics."""
    with torch.inference_mode():
        total = None
        for t in teachers:
            probs = F.softmax(t.model(normalised(images01, t.model.normalize01)).float() / temperature, dim=1)
            total = probs if total is None else total + probs
        averaged = total / len(teachers)
    return averaged.clone()  # an ordinary tensor again, usable by autograd as a constant


def distillation_loss(student_logits: torch.Tensor, targets: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton et al.'s soft-target term: KL(teacher || student) at `temperature`, scaled by T² so that its
    gradients keep their size as T changes."""
    log_student = F.log_softmax(student_logits.float() / temperature, dim=1)
    return F.kl_div(log_student, targets, reduction="batchmean") * temperature**2
