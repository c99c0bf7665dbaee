"""Datasets as whole uint8 tensors: local IDX files or a Hub dataset, decoded once and cached.

The training loop never sees a DataLoader: `load_dataset_splits` returns uint8 tensors that the engine moves to
the accelerator device in one piece, and `shard_batches` yields index batches of a seeded permutation.

What a run was trained on is decided here, from what was loaded, never from a default: `DatasetIdentity` names
the data (canonical MNIST is recognised by its checksums or by its content), and the class names and the
per-channel normalisation statistics come from the data too.
"""
from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import torch

from tinyhub.errors import TinyhubError

from ..schema import DataConfig
from ..seeding import validation_permutation
from .splits import split_hash
from .hub import DEFAULT_SPLITS, hub_source  # noqa: F401
from .idx import idx_source  # noqa: F401
from .common import (  # noqa: F401  (what the package offers, and the entry point's own needs)
    IDX_STEMS, LABELS_FILE, MNIST_FINGERPRINT, MNIST_HUB_ID, MNIST_NAME, MNIST_SHA256, NAMED_BY_THE_USER, DataError,
    DatasetSplits, SourceData, _checked_names, _completed, certified_name, channel_stats, content_fingerprint,
    default_cache_dir, logger)


def load_dataset_splits(
    *,
    source: str = "auto",
    dir: str | None = None,
    dataset: str = MNIST_HUB_ID,
    revision: str | None = None,
    name: str | None = None,
    verify: bool = True,
    label_names: list[str] | None = None,
    splits: dict[str, str] | None = None,
    cache_dir: str | None = None,
    val_size: int = 0,
    subset: int = 0,
    **options,
) -> DatasetSplits:
    """Load train/test (and a validation split: the dataset's own, else carved from train) as uint8 tensors.

    source: a name of tinyhub.registry.DATA_SOURCES: "local" (IDX files in `dir`), "hub" (`dataset`: a Hub id or
    a folder saved with `DatasetDict.save_to_disk`), a plugin's; or "auto" (local when `dir` or TINYHUB_DATA_DIR
    is set, else hub).
    name: the dataset's name (default $TINYHUB_DATA_NAME); needed for IDX files that are not canonical MNIST
    (unless verify=False, which trains them unidentified). "mnist" is refused for anything but MNIST itself.
    label_names: the class names in label order; default a labels.txt beside IDX files, or a Hub dataset's
    ClassLabel names, else the indices.
    splits: which splits of a Hub dataset are train / validation / test (default their own names).
    val_size: images carved from train for validation, when the dataset has no validation split; 0 = none.
    subset: keep only the first N training images (tests and smoke runs); 0 keeps all.
    options: the other settings of the `data` section (path, image_size, channels, test_size, ...; see
    DataConfig), read by the sources that read image files and arrays.
    """
    from tinyhub.registry import DATA_SOURCES, UnknownNameError

    t0 = time.perf_counter()
    dir = dir or os.environ.get("TINYHUB_DATA_DIR") or None
    name = name or os.environ.get("TINYHUB_DATA_NAME") or None
    if source == "auto":
        source = "local" if dir else "hub"
    cache_root = Path(cache_dir) if cache_dir else default_cache_dir()
    data = DataConfig(source=source, dir=dir, dataset=dataset, revision=revision, name=name, verify=verify,
                      label_names=label_names, splits=splits or {}, cache_dir=cache_dir, **options)
    try:
        read = DATA_SOURCES.get(source)
    except UnknownNameError as e:
        raise DataError(f"data.source: {e}") from e
    try:
        loaded = _completed(read(data, cache_root), source, name)
    except Exception as e:  # noqa: BLE001 - a plugin's own failure, said in one line (tinyhub's own say theirs)
        if isinstance(e, TinyhubError) or DATA_SOURCES.entries()[source].origin == "tinyhub":
            raise
        said = str(e).splitlines()[0][:300] if str(e) else ""
        raise DataError(f"the {source} data source could not read the data ({type(e).__name__}: {said}); check "
                        "data.dir and the files it names.") from e
    tensors, meta, identity = loaded.tensors, loaded.meta, loaded.identity
    names, names_from, info, cache_path = loaded.label_names, loaded.names_from, loaded.info, loaded.cache_path
    if label_names:
        names, names_from = label_names, "data.label_names"
    names = _checked_names(names, meta["num_classes"], names_from)

    split = DatasetSplits(
        tensors["train_images"], tensors["train_labels"], tensors["test_images"], tensors["test_labels"],
        names, info, tensors.get("val_images"), tensors.get("val_labels"),
        mean=tuple(meta["mean"]), std=tuple(meta["std"]),
    )
    if split.val_labels is not None:
        validation = f"the dataset's own {meta.get('splits', {}).get('validation', 'validation')!r} split"
        if val_size:
            logger.info("Validation uses %s; data.val_size=%d is not carved from train", validation, val_size)
    elif val_size:
        if not 0 < val_size < len(split.train_labels):
            raise DataError(f"data.val_size={val_size} must be between 1 and {len(split.train_labels) - 1}.")
        # Carved with its own seed so the validation set is the same whatever the training seed.
        perm = validation_permutation(len(split.train_labels))
        val_idx, train_idx = perm[:val_size].sort().values, perm[val_size:].sort().values
        split.val_images, split.val_labels = split.train_images[val_idx], split.train_labels[val_idx]
        split.train_images, split.train_labels = split.train_images[train_idx], split.train_labels[train_idx]
        validation = f"{val_size:,} images carved from the training split"
        info["carved_val"] = {"images": val_size, "of": len(perm), "stratified": False,
                              "sha256": split_hash(split.val_images, split.val_labels)}
    else:
        validation = None
    if subset:
        split.train_images, split.train_labels = split.train_images[:subset], split.train_labels[:subset]
    info.update(
        name=identity.name, identity=identity.as_dict(), canonical_mnist=identity.canonical == "mnist",
        fingerprint=identity.fingerprint, label_names_from=names_from, mean=list(split.mean), std=list(split.std),
        image_shape=list(split.image_shape), validation=validation, cache_file=str(cache_path) if cache_path else None,
        load_seconds=round(time.perf_counter() - t0, 4), train_size=len(split.train_labels),
        test_size=len(split.test_labels), val_size=0 if split.val_labels is None else len(split.val_labels),
        class_counts={part: torch.bincount(labels, minlength=split.num_classes).tolist() for part, labels in
                      (("train", split.train_labels), ("test", split.test_labels), ("val", split.val_labels))
                      if labels is not None})
    return split


def load_from_config(data: DataConfig | dict, **changes) -> DatasetSplits:
    """load_dataset_splits with a recipe's `data` section (typed, or part of one as a dict; `changes` on top), over
    the schema's defaults: the one place that maps it."""
    given = dataclasses.asdict(data) if dataclasses.is_dataclass(data) else data
    d = {**dataclasses.asdict(DataConfig()), **given, **changes}
    d["label_names"] = list(d["label_names"]) if d["label_names"] else None
    return load_dataset_splits(**{k: v for k, v in d.items() if k not in ("batch_size", "eval_batch_size")})


def shard_batches(perm: torch.Tensor, batch_size: int, rank: int, world_size: int) -> list[torch.Tensor]:
    """Split one epoch's permutation into this rank's batches. Every rank gets the same number of batches;
    the last (world_size - 1) samples at most are dropped so that shards are equal."""
    per_rank = len(perm) // world_size
    mine = perm[rank * per_rank : (rank + 1) * per_rank]
    return list(mine.split(batch_size))
