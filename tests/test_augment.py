"""Augmentation draws independent parameters per sample, is seeded, and keeps digits recognisable."""

import pytest
import torch

from tinyhub.trainer.augment import AugmentConfig, augment_batch
from tinyhub.trainer.seeding import generator


def _digit_batch(n=16):
    img = torch.zeros(1, 1, 28, 28)
    img[:, :, 6:22, 12:16] = 1.0  # a "1"
    return img.repeat(n, 1, 1, 1)


CFG = AugmentConfig(rotation=15, translate=(0.1, 0.1), scale=(0.9, 1.1), shear=10)


def test_each_sample_gets_its_own_transform():
    out = augment_batch(_digit_batch(), CFG, generator("augment", 0, 1, 0))
    flat = out.flatten(1)
    # Identical inputs, so any two equal outputs would mean a shared parameter set (torchvision-style).
    distinct = {tuple(row.round(decimals=4).tolist()) for row in flat}
    assert len(distinct) == len(flat)


def test_seeded_and_reproducible():
    a = augment_batch(_digit_batch(), CFG, generator("augment", 3, 2, 0))
    b = augment_batch(_digit_batch(), CFG, generator("augment", 3, 2, 0))
    c = augment_batch(_digit_batch(), CFG, generator("augment", 3, 3, 0))
    d = augment_batch(_digit_batch(), CFG, generator("augment", 3, 2, 1))
    assert torch.equal(a, b)
    assert not torch.equal(a, c) and not torch.equal(a, d)  # other epoch / other rank -> other draws


def test_identity_config_is_a_no_op_and_mass_is_roughly_preserved():
    x = _digit_batch(4)
    assert torch.equal(augment_batch(x, AugmentConfig(), generator("augment", 0, 0, 0)), x)
    out = augment_batch(x, AugmentConfig(rotation=10, translate=(0.05, 0.05)), generator("augment", 0, 0, 0))
    ratio = out.sum((1, 2, 3)) / x.sum((1, 2, 3))
    assert ((ratio > 0.85) & (ratio < 1.15)).all()


def test_center_crop_with_probability_zooms_some_images():
    cfg = AugmentConfig(center_crop_size=22, center_crop_p=0.5)
    out = augment_batch(_digit_batch(64), cfg, generator("augment", 0, 0, 0))
    height = (out[:, 0].sum(2) > 0.5).sum(1).float()  # rows covered by the stroke
    assert (height == 16).any() and (height > 18).any()  # untouched ones and zoomed (x28/22) ones


def test_random_erasing_is_per_sample():
    x = torch.ones(32, 1, 28, 28)
    out = augment_batch(x, AugmentConfig(erase_p=0.5), generator("augment", 0, 0, 0))
    erased = (out == 0).flatten(1).sum(1)
    assert (erased == 0).any() and (erased > 0).any()
    assert len(set(erased.tolist())) > 3


def test_invalid_configuration_is_explained():
    with pytest.raises(ValueError, match=r"augment.scale=\[1.2,0.8\]: must be \[low,high\] with low <= high"):
        AugmentConfig(scale=(1.2, 0.8))
    with pytest.raises(ValueError, match="augment.erase_p=2: must be a number from 0 up to 1 .a probability."):
        AugmentConfig(erase_p=2)


def test_resolved_parameters_are_described():
    d = CFG.describe()  # the record's type, as results.json and the card state it
    assert d.per_sample is True and d.rotation == 15 and d.translate == [0.1, 0.1]
    assert d.text.startswith("rot ±15°, shift ±0.1/0.1") and d.as_dict()["translate"] == [0.1, 0.1]
