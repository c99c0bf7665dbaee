"""Batched on-device augmentation with independent random parameters per sample.

One `affine_grid`/`grid_sample` call warps the whole batch; every image draws its own rotation, translation,
scale, shear and (with probability p) the seeds' centre-crop zoom. Random erasing is one masked multiply.
All randomness comes from a `torch.Generator` the caller seeds, so a run is reproducible and resumable.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from tinyhub.errors import UsageError

from .record import Augmentation
from .schema import AugmentSchema, TrainConfig, check_limits, limits_of

AUGMENT_LIMITS = limits_of(AugmentSchema, "augment.")


class AugmentConfigError(UsageError, ValueError):
    """The augment section asks for impossible parameters."""


@dataclass
class AugmentConfig:
    rotation: float = 0.0  # degrees, uniform in [-rotation, rotation]
    translate: tuple[float, float] = (0.0, 0.0)  # max fraction of width / height
    scale: tuple[float, float] = (1.0, 1.0)  # uniform zoom range
    shear: float = 0.0  # degrees, uniform in [-shear, shear] (x shear)
    center_crop_size: int = 0  # the seeds' RandomApply(CenterCrop(k)) + resize back: 0 disables
    center_crop_p: float = 0.0
    erase_p: float = 0.0  # random erasing probability per image
    erase_area: tuple[float, float] = (0.02, 0.15)  # fraction of the image area
    erase_ratio: tuple[float, float] = (0.3, 3.3)  # aspect ratio range

    def __post_init__(self):
        self.translate = tuple(float(v) for v in self.translate)
        self.scale = tuple(float(v) for v in self.scale)
        self.erase_area = tuple(float(v) for v in self.erase_area)
        self.erase_ratio = tuple(float(v) for v in self.erase_ratio)
        # The limits of the `augment` section, said once in the schema: an AugmentConfig built in Python is held
        # to the same ones as a recipe (whose values were already checked when it was composed).
        check_limits(SimpleNamespace(augment=self), AUGMENT_LIMITS, TrainConfig, AugmentConfigError)

    @property
    def uses_affine(self) -> bool:
        return bool(self.rotation or any(self.translate) or self.scale != (1.0, 1.0) or self.shear
                    or (self.center_crop_size and self.center_crop_p))

    @property
    def enabled(self) -> bool:
        return self.uses_affine or self.erase_p > 0

    def describe(self) -> Augmentation:
        """The exact resolved parameters, as results.json and the model card record them."""
        return Augmentation(enabled=self.enabled, per_sample=True,
                            **{k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()})


def _uniform(n: int, low: float, high: float, g: torch.Generator, device) -> torch.Tensor:
    return torch.rand(n, generator=g, device=device) * (high - low) + low


def affine_matrices(cfg: AugmentConfig, n: int, size: int, g: torch.Generator, device) -> torch.Tensor:
    """(n, 2, 3) sampling matrices for `affine_grid`: one independent transform per image."""
    angle = torch.deg2rad(_uniform(n, -cfg.rotation, cfg.rotation, g, device))
    shear = torch.deg2rad(_uniform(n, -cfg.shear, cfg.shear, g, device))
    zoom = _uniform(n, *cfg.scale, g, device)
    if cfg.center_crop_size and cfg.center_crop_p:
        crop = torch.rand(n, generator=g, device=device) < cfg.center_crop_p
        zoom = torch.where(crop, zoom * (size / cfg.center_crop_size), zoom)
    # Translations are fractions of the image; affine_grid coordinates span [-1, 1], i.e. 2 per image width.
    tx = _uniform(n, -cfg.translate[0], cfg.translate[0], g, device) * 2
    ty = _uniform(n, -cfg.translate[1], cfg.translate[1], g, device) * 2
    cos, sin, tan = torch.cos(angle), torch.sin(angle), torch.tan(shear)
    # Forward map of the content: x' = R @ Sh @ (zoom * x) + t. grid_sample needs the inverse (output -> input).
    forward = torch.zeros(n, 3, 3, device=device)
    forward[:, 0, 0] = zoom * cos
    forward[:, 0, 1] = zoom * (cos * tan - sin)
    forward[:, 1, 0] = zoom * sin
    forward[:, 1, 1] = zoom * (sin * tan + cos)
    forward[:, 0, 2], forward[:, 1, 2], forward[:, 2, 2] = tx, ty, 1.0
    # inv_ex: the inverse without torch.linalg.inv's singularity check, which waits for the GPU every step. These
    # matrices are invertible by construction (zoom > 0, |shear| < 90 degrees).
    return torch.linalg.inv_ex(forward).inverse[:, :2, :]


def erase_masks(cfg: AugmentConfig, n: int, h: int, w: int, g: torch.Generator, device) -> torch.Tensor:
    """(n, 1, h, w) masks, 0 inside one random rectangle for the images chosen with probability erase_p."""
    chosen = torch.rand(n, generator=g, device=device) < cfg.erase_p
    area = _uniform(n, *cfg.erase_area, g, device) * h * w
    log_ratio = _uniform(n, math.log(cfg.erase_ratio[0]), math.log(cfg.erase_ratio[1]), g, device)
    ratio = torch.exp(log_ratio)
    eh = torch.sqrt(area * ratio).clamp(1, h)
    ew = torch.sqrt(area / ratio).clamp(1, w)
    top = torch.rand(n, generator=g, device=device) * (h - eh)
    left = torch.rand(n, generator=g, device=device) * (w - ew)
    rows = torch.arange(h, device=device).view(1, h, 1)
    cols = torch.arange(w, device=device).view(1, 1, w)
    inside = ((rows >= top.view(n, 1, 1)) & (rows < (top + eh).view(n, 1, 1))
              & (cols >= left.view(n, 1, 1)) & (cols < (left + ew).view(n, 1, 1)))
    return (~(inside & chosen.view(n, 1, 1))).unsqueeze(1).float()


def augment_batch(images: torch.Tensor, cfg: AugmentConfig, g: torch.Generator) -> torch.Tensor:
    """images: float (N, C, H, W) in [0, 1] (background 0). Returns the augmented batch, same shape."""
    if not cfg.enabled:
        return images
    n, _, h, w = images.shape
    if cfg.uses_affine:
        theta = affine_matrices(cfg, n, w, g, images.device).to(images.dtype)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        images = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if cfg.erase_p > 0:
        images = images * erase_masks(cfg, n, h, w, g, images.device).to(images.dtype)
    return images


__all__ = ["AugmentConfig", "augment_batch", "affine_matrices", "erase_masks"]
