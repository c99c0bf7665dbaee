"""data.source=hub: a Hub dataset through 🤗 datasets, or a folder saved with DatasetDict.save_to_disk."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
from pathlib import Path

import torch

from tinyhub.utils.hub_http import hub_unreachable, unreachable

from ..record import DatasetIdentity
from ..schema import DataConfig
from .images import pixels_uint8
from .common import (
    DataError, MNIST_FINGERPRINT, MNIST_HUB_ID, MNIST_NAME, NAMED_BY_THE_USER, OFFLINE_HINT, SourceData,
    _check_labels, _describe, _read_cache, _write_cache, certified_name)


#: Which of a dataset's splits tinyhub trains, validates and tests on (data.splits maps other names).
DEFAULT_SPLITS = {"train": "train", "validation": "validation", "test": "test"}


@contextlib.contextmanager
def _datasets_offline(datasets):
    saved = datasets.config.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE = saved


def _open_hub(dataset_id: str, revision: str | None):
    import datasets

    if not os.path.isdir(dataset_id) and (dataset_id.startswith((".", "/", "~")) or dataset_id.count("/") > 1):
        raise DataError(f"data.dataset={dataset_id!r} is neither a folder (it does not exist) nor a Hub dataset id "
                        "(NAMESPACE/NAME). Check the path of the folder saved with DatasetDict.save_to_disk.")
    try:
        if os.path.isdir(dataset_id):
            return datasets.load_from_disk(dataset_id)
        if hub_unreachable():
            # No network: `datasets` would retry for half a minute; ask its cache alone, which answers at once.
            try:
                with _datasets_offline(datasets):
                    return datasets.load_dataset(dataset_id, revision=revision)
            except Exception as e:
                why = unreachable() or "the Hub cannot be reached (offline mode)."
                raise DataError(f"{dataset_id!r} is not in the datasets cache, and {why} {OFFLINE_HINT}") from e
        return datasets.load_dataset(dataset_id, revision=revision)
    except DataError:
        raise
    except ConnectionError as e:  # what `datasets` raises offline or when the Hub cannot be reached
        raise DataError(f"Could not download {dataset_id!r} from the Hub ({e}). {OFFLINE_HINT}") from e
    except Exception as e:
        raise DataError(f"Could not load the dataset {dataset_id!r}: {e}") from e


def _stack_images(column, where: str):
    import numpy as np

    raw = [np.asarray(img) for img in column]
    for i, array in enumerate(raw):  # a NaN anywhere is named first: it explains whatever else looks wrong
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise DataError(f"{where}: image {i} has {int((~np.isfinite(array)).sum()):,} pixel(s) that are not "
                            "finite numbers (NaN or infinite); fix or drop those images first.")
    arrays = [pixels_uint8(array, f"{where}: image {i}") for i, array in enumerate(raw)]
    sizes = sorted({a.shape[:2] for a in arrays})
    if len(sizes) > 1:
        raise DataError(f"{where} holds images of different sizes ({', '.join(f'{h}x{w}' for h, w in sizes[:4])}): "
                        "tinyhub trains on one square size; resize them first (e.g. with Dataset.map).")
    images = np.stack(arrays) if arrays else np.zeros((0, 1, 1), np.uint8)
    return images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)  # H, W, C -> C, H, W


def _load_hub(dataset_id: str, revision: str | None, split_names: dict[str, str]) -> tuple[dict, dict]:
    """(tensors, description) of a Hub dataset or a saved folder: its ClassLabel names, its DatasetInfo and the
    splits it was read from."""
    import datasets
    import numpy as np

    ds = _open_hub(dataset_id, revision)
    if not isinstance(ds, datasets.DatasetDict):
        raise DataError(f"{dataset_id!r} is a single split, not a DatasetDict; tinyhub needs named training and "
                        "test splits (save a DatasetDict with save_to_disk).")
    wanted = {role: split_names.get(role) for role in DEFAULT_SPLITS}
    missing = [role for role in ("train", "test") if wanted[role] not in ds]
    if missing:
        raise DataError(
            f"Dataset {dataset_id!r} has the splits {list(ds)}, but no "
            f"{' and no '.join(repr(wanted[r]) for r in missing)} split. Say which split plays which part: "
            + " ".join(f"data.splits.{r}=SPLIT" for r in missing) + ".")
    roles = [r for r in DEFAULT_SPLITS if wanted[r] in ds]
    features = ds[wanted["train"]].features
    image_col = next((k for k, f in features.items() if isinstance(f, datasets.Image)), None)
    label_col = next((k for k, f in features.items() if isinstance(f, datasets.ClassLabel)), None)
    if image_col is None or label_col is None:
        raise DataError(
            f"Dataset {dataset_id!r} needs an Image column and a ClassLabel column; its features are {features}."
        )
    first = ds[wanted["train"]][0][image_col] if len(ds[wanted["train"]]) else None
    mode = "L" if first is None or first.mode in ("1", "L", "I", "I;16", "F") else "RGB"  # one channel count
    # Integer and float images are read as they are and checked pixel by pixel (pixels_uint8): converting them
    # to 8 bits here would turn NaN into 0 and floats in [0, 1] into black, silently.
    wide = first is not None and first.mode in ("I", "I;16", "F")
    out = {}
    for role in roles:
        part = ds[wanted[role]] if wide else ds[wanted[role]].cast_column(image_col, datasets.Image(mode=mode))
        part = part.with_format("numpy", columns=[image_col, label_col])
        images = _stack_images(part[image_col], f"split {wanted[role]!r} of {dataset_id!r}")
        out[f"{role if role != 'validation' else 'val'}_images"] = torch.from_numpy(np.ascontiguousarray(images))
        out[f"{role if role != 'validation' else 'val'}_labels"] = torch.from_numpy(
            np.asarray(part[label_col], dtype=np.int64))
    info = ds[wanted["train"]].info
    described = {k: getattr(info, k, None) or None
                 for k in ("dataset_name", "builder_name", "description", "citation", "license", "homepage")}
    meta = {"label_names": list(features[label_col].names), "dataset_info": described,
            "splits": {r: wanted[r] for r in roles}}
    return out, meta


def _hub_identity(dataset_id: str, revision: str | None, is_folder: bool, name: str | None,
                  meta: dict) -> DatasetIdentity:
    info = meta.get("dataset_info") or {}
    about = {k: info.get(k) for k in ("description", "citation", "license", "homepage")}
    hub_id = None if is_folder else dataset_id
    source = "folder" if is_folder else "hub"
    if meta["fingerprint"] == MNIST_FINGERPRINT or hub_id == MNIST_HUB_ID:
        how = "its content (every image and label of canonical MNIST)" if meta["fingerprint"] == MNIST_FINGERPRINT \
            else "its Hub id"
        return DatasetIdentity(MNIST_NAME, source, how, meta["fingerprint"], hub_id=hub_id, revision=revision,
                               canonical="mnist", **about)
    for given, what in ((name, NAMED_BY_THE_USER), (hub_id, "data.dataset")):
        if certified_name(given):
            raise DataError(f"{what}={given!r} names MNIST, but {dataset_id!r} is not canonical MNIST (its images and "
                            "labels differ from the 70,000 of MNIST): the name MNIST, in any spelling, is kept for "
                            "MNIST itself. Give its own name with data.name=NAME.")
    if name:
        return DatasetIdentity(name, source, NAMED_BY_THE_USER, meta["fingerprint"], hub_id=hub_id, revision=revision,
                               **about)
    if hub_id:
        return DatasetIdentity(hub_id, source, "its Hub id", meta["fingerprint"], hub_id=hub_id, revision=revision,
                               **about)
    own = info.get("dataset_name") or info.get("builder_name")
    if own and not certified_name(own):
        return DatasetIdentity(own, source, "the folder's DatasetInfo", meta["fingerprint"], **about)
    why = ("the folder's DatasetInfo calls it 'mnist', but its content is not canonical MNIST" if own else
           "the folder's DatasetInfo has no name")
    return DatasetIdentity(None, source, f"nothing: {why}; give data.name=NAME", meta["fingerprint"], **about)


def _load_hub_cached(dataset_id: str, revision: str | None, split_names: dict[str, str], cache_root: Path):
    is_folder = os.path.isdir(dataset_id)
    key = hashlib.sha256(f"{dataset_id}@{revision}@{sorted(split_names.items())}".encode()).hexdigest()[:20]
    cache_path = cache_root / f"hub-{key}.safetensors"
    cached = None if is_folder else _read_cache(cache_path)  # a folder can change in place: read it every time
    if cached is None:
        tensors, meta = _load_hub(dataset_id, revision, split_names)
        _check_labels(tensors, len(meta["label_names"]), f"the labels of {dataset_id!r}", every_class_in_train=False)
        meta.update(num_classes=len(meta["label_names"]), **_describe(tensors))
        if not is_folder:
            _write_cache(cache_path, tensors, meta)
    else:
        tensors, meta = cached
    info = {"kind": "hub", "dataset_id": dataset_id, "revision": revision, "splits": meta["splits"]}
    return tensors, meta, is_folder, info, cache_path


def hub_source(data: DataConfig, cache_root: Path) -> SourceData:
    """A Hub dataset (data.dataset at data.revision), or a folder saved with DatasetDict.save_to_disk."""
    splits = dataclasses.asdict(data.splits) if dataclasses.is_dataclass(data.splits) else dict(data.splits or {})
    unknown = set(splits) - set(DEFAULT_SPLITS)
    if unknown:
        raise DataError(f"data.splits has {sorted(unknown)}; it maps only {', '.join(DEFAULT_SPLITS)}.")
    split_names = {**DEFAULT_SPLITS, **{k: v for k, v in splits.items() if v}}
    tensors, meta, is_folder, info, cache_path = _load_hub_cached(data.dataset, data.revision, split_names,
                                                                  cache_root)
    identity = _hub_identity(data.dataset, data.revision, is_folder, data.name, meta)
    return SourceData(tensors, meta["label_names"], "the dataset's ClassLabel feature", info, identity, meta,
                      cache_path)
