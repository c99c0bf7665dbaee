"""The one input path: a uint8 batch as stored on the device -> the model's input. Training, evaluation,
distillation and `tinyhub bench` all go through it, so what the model sees is said once:

    scale to [0, 1] -> augment (training; each model of a stack with its own draws) or shift (test-time
    augmentation) -> the model's own normalisation -> its memory layout.

Precision is not a step here: the forward runs under Accelerate's autocast, and evaluation in full precision.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .augment import AugmentConfig, augment_batch


@dataclass
class ModelInput:
    x: torch.Tensor  # what the model's forward takes: normalised, in its layout
    x01: torch.Tensor  # the same (augmented) images in [0, 1]: what teachers normalise their own way


def scaled(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> floats in [0, 1]."""
    return images.float() / 255.0


def shifted(x01: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """A batch shifted by whole pixels, filled with the background (zeros in [0, 1] space)."""
    if dy == 0 and dx == 0:
        return x01
    out = torch.zeros_like(x01)
    h, w = x01.shape[-2:]
    out[..., max(dy, 0): h + min(dy, 0), max(dx, 0): w + min(dx, 0)] = \
        x01[..., max(-dy, 0): h + min(-dy, 0), max(-dx, 0): w + min(-dx, 0)]
    return out


def normalised(x01: torch.Tensor, normalize01, channels_last: bool = False) -> torch.Tensor:
    """Images in [0, 1] as a model takes them: its normalisation (`normalize01`), then its memory layout."""
    x = normalize01(x01)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def model_input(batches: list[torch.Tensor], normalize01, *, augment: AugmentConfig | None = None,
                generators: list[torch.Generator] | None = None, shift: tuple[int, int] = (0, 0),
                channels_last: bool = False) -> ModelInput:
    """One uint8 batch per model (one model: a list of one) -> the models' input. Training passes `augment` and
    one generator per model; model k's images then sit at channels k*C.. of one batch (trainer/stack.py)."""
    parts = [scaled(b) for b in batches]
    if augment is not None:
        parts = [augment_batch(p, augment, g) for p, g in zip(parts, generators)]
    parts = [shifted(p, *shift) for p in parts]
    x01 = parts[0] if len(parts) == 1 else torch.cat(parts, 1)  # one model: no copy
    return ModelInput(normalised(x01, normalize01, channels_last), x01)
