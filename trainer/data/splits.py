"""A test split carved from a dataset that has none: stratified by class, seeded by `data.split_seed`, and
independent of the order the images were read in, so that the same images give the same split whether they came
as a folder of PNGs, a CSV or an npz. Nothing is ever carved from a test split."""

from __future__ import annotations

import hashlib

import torch

from .common import DataError


def _digests(images: torch.Tensor, labels: torch.Tensor) -> list[bytes]:
    flat = images.reshape(len(images), -1).numpy()
    label_bytes = labels.numpy().astype("<i8")
    return [hashlib.sha256(label_bytes[i].tobytes() + flat[i].tobytes()).digest() for i in range(len(flat))]


def split_hash(images: torch.Tensor, labels: torch.Tensor) -> str:
    """SHA-256 of a split's (image, label) pairs in any order: the same images give the same hash."""
    return hashlib.sha256(b"".join(sorted(_digests(images, labels)))).hexdigest()


def carve_test(tensors: dict[str, torch.Tensor], size: float, seed: int) -> dict:
    """Move `size` of the training images (a fraction when below 1, else a count) into a new test split, the
    same share of every class; returns what results.json records about it."""
    images, labels = tensors["train_images"], tensors["train_labels"]
    n = len(labels)
    wanted = size * n if size < 1 else size
    if not size or not 1 <= round(wanted) < n:
        raise DataError(f"the data has no test split, and data.test_size={size:g} carves "
                        f"{'none' if not size else round(wanted)} of its {n:,} images: set data.test_size to a "
                        "fraction such as 0.2 (or a number of images) so that a test split is carved, stratified "
                        "by class, from the training images.")
    digests = _digests(images, labels)
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for c in torch.unique(labels).tolist():
        members = (labels == c).nonzero().flatten().tolist()
        members.sort(key=lambda i: (digests[i], i))  # the order the images were read in plays no part
        order = torch.randperm(len(members), generator=generator).tolist()
        take = round(len(members) * wanted / n)
        chosen += [members[j] for j in order[:take]]
    test = torch.zeros(n, dtype=torch.bool)
    test[chosen] = True
    tensors["test_images"], tensors["test_labels"] = images[test].contiguous(), labels[test]
    tensors["train_images"], tensors["train_labels"] = images[~test].contiguous(), labels[~test]
    return {"images": int(test.sum()), "of": n, "sha256": split_hash(tensors["test_images"], tensors["test_labels"]),
            "stratified": True, "seed": seed}
