"""data.source=folder: image files in one subfolder per class (the layout of torchvision's ImageFolder and 🤗
datasets' `imagefolder`), or `train/` and `test/` (and `val/`) folders above the class folders.

The files are read with Pillow directly rather than through `datasets`' imagefolder builder: tinyhub needs the
header before the pixels (to refuse an image that declares hundreds of millions of pixels before decoding it), one
line naming the file that fails, and no second copy of the data in an Arrow cache; the decoded tensors are cached
like IDX files, keyed by the files' content and the decoding options.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from ..schema import DataConfig
from .common import DataError, SourceData, _describe, _read_cache, _source_identity, _write_cache, logger
from .images import IMAGE_SUFFIXES, Shaping, decode_image, shape_images
from .splits import carve_test

SPLIT_FOLDERS = {"train": "train", "test": "test", "val": "val"}
CACHE_VERSION = "folder-1"


def data_path(data: DataConfig, source: str, what: str) -> Path:
    """data.path, which must exist: the folder or file a file source reads."""
    if not data.path:
        given = f" (data.dir / --data-dir is read by data.source=local, not {source})" if data.dir else ""
        raise DataError(f"data.source={source} needs data.path: {what}{given}.")
    path = Path(data.path).expanduser()
    if not path.exists():
        raise DataError(f"data.path={data.path!r} does not exist; data.source={source} reads {what}.")
    return path


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _split_folders(root: Path) -> dict[str, Path]:
    """{"train": ..., "test": ..., "val": ...} when the root holds split folders, else {"train": root}."""
    named = {split: root / folder for split, folder in SPLIT_FOLDERS.items() if (root / folder).is_dir()}
    if "train" in named:
        return named
    if "test" in named:
        raise DataError(f"{root} has a test/ folder but no train/ folder: put the training images' class folders "
                        "in train/ beside it.")
    return {"train": root}


def _images_of(class_dir: Path, root: Path, bad: list[str]) -> list[str]:
    """The image files under one class folder (its subfolders too), in a fixed order. A link is followed only
    where it stays inside the data folder; one that leaves it is a bad file."""
    found, seen, stack = [], set(), [class_dir]
    while stack:
        folder = stack.pop()
        real = folder.resolve()
        if real in seen:  # a link back to a folder already read
            continue
        seen.add(real)
        with os.scandir(folder) as entries:
            listed = sorted(entries, key=lambda e: e.name)
        subfolders = []
        for entry in listed:
            if entry.name.startswith("."):
                continue
            if entry.is_symlink() and not Path(entry.path).resolve().is_relative_to(root):
                bad.append(f"{entry.path} is a link to {Path(entry.path).resolve()}, outside the data folder {root}")
            elif entry.is_dir():
                subfolders.append(Path(entry.path))
            elif entry.is_file() and os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES:
                found.append(entry.path)  # a string: 70,000 Path objects cost a second
        stack += reversed(subfolders)
    return found


def _listing(root: Path, skip_bad: bool) -> tuple[dict[str, list[tuple[str, int]]], list[str], list[str]]:
    """Each split's (file, label) pairs, the class names, and the files and folders left out."""
    folders = _split_folders(root)
    classes = [p.name for p in _subfolders(folders["train"])]
    if not classes:
        raise DataError(f"{folders['train']} has no class folders: put each class's images in a folder named after "
                        "the class (e.g. cats/, dogs/), or train/ and test/ folders with class folders inside.")
    bad: list[str] = []
    listing = {}
    for split, folder in folders.items():
        present = [p.name for p in _subfolders(folder)]
        unknown = sorted(set(present) - set(classes))
        if unknown:
            raise DataError(f"{folder} has a class folder {unknown[0]!r} that {folders['train']} does not have: "
                            "every class must have training images.")
        pairs = []
        for label, name in enumerate(classes):
            if not (folder / name).is_dir():
                continue
            files = _images_of(folder / name, root, bad)
            if not files and split == "train":
                bad.append(f"the class folder {folder / name} has no images ({', '.join(IMAGE_SUFFIXES)})")
            pairs += [(path, label) for path in files]
        listing[split] = pairs
    if bad and not skip_bad:
        raise DataError(f"{bad[0]}. Fix it, or set data.skip_bad=true to leave such files out"
                        + (f" ({len(bad)} found)." if len(bad) > 1 else "."))
    present = {label for _, label in listing["train"]}
    empty = {name for i, name in enumerate(classes) if i not in present}
    if empty:  # data.skip_bad: a class with no training image is left out, and the labels renumbered
        keep = [name for name in classes if name not in empty]
        renumber = {classes.index(name): i for i, name in enumerate(keep)}
        listing = {split: [(p, renumber[label]) for p, label in pairs if label in renumber]
                   for split, pairs in listing.items()}
        classes = keep
    return listing, classes, bad


def _content_key(listing: dict, root: Path, shaping: Shaping, extra: str) -> str:
    """SHA-256 of every file's bytes, its place and its label, with the decoding options."""
    digest = hashlib.sha256(f"{CACHE_VERSION};{shaping.key()};{extra}".encode())
    start = len(str(root)) + 1
    for split, pairs in listing.items():
        for path, label in pairs:
            with open(path, "rb") as f:
                content = f.read()
            digest.update(f"{split}/{label}/{path[start:]}:{len(content)}:".encode())
            digest.update(content)
    return digest.hexdigest()[:20]


def _decode(listing: dict, shaping: Shaping, skip_bad: bool, bad: list[str]) -> tuple[dict, str]:
    tensors, said = {}, ""
    for split, pairs in listing.items():
        arrays, kept = [], []
        for path, label in pairs:
            try:
                arrays.append(decode_image(path, shaping.background))
            except DataError as e:
                if not skip_bad:
                    raise
                bad.append(str(e).split(":")[0] + " could not be decoded")
                continue
            kept.append((path, label))
        if not arrays:
            raise DataError(f"the {split} split has no images that could be read; check the folder.")
        images, said_here = shape_images(arrays, lambda i, kept=kept: kept[i][0], shaping)
        said = said or said_here
        tensors[f"{split}_images"] = torch.from_numpy(images)
        tensors[f"{split}_labels"] = torch.tensor([label for _, label in kept], dtype=torch.long)
    return tensors, said


def folder_source(data: DataConfig, cache_root: Path) -> SourceData:
    """Image files in a folder per class (PNG, JPEG, BMP, WebP, GIF, TIFF), at data.path."""
    root = data_path(data, "folder", "a folder with one subfolder of images per class").resolve()
    if not root.is_dir():
        raise DataError(f"data.path={data.path!r} is a file; data.source=folder reads a folder with one subfolder "
                        "of images per class (for a CSV or an .npz file, use data.source=csv or npz).")
    shaping = Shaping.of(data)
    listing, classes, bad = _listing(root, data.skip_bad)
    carving = "" if "test" in listing else f"test{data.test_size}-seed{data.split_seed}"
    cache_path = cache_root / f"folder-{_content_key(listing, root, shaping, f'{carving};{data.skip_bad}')}.safetensors"
    cached = _read_cache(cache_path)
    if cached is not None:
        tensors, meta = cached
    else:
        tensors, said = _decode(listing, shaping, data.skip_bad, bad)
        carved = carve_test(tensors, data.test_size, data.split_seed) if carving else None
        meta = {"num_classes": len(classes), **_describe(tensors), "decoding": said, "carved_test": carved,
                "skipped": len(bad), "skipped_examples": bad[:5]}
        _write_cache(cache_path, tensors, meta)
    if meta["skipped"]:
        logger.warning("data.skip_bad: %d file(s) left out, e.g. %s", meta["skipped"], meta["skipped_examples"][0])
    info = {"kind": "folder", "path": str(root), "decoding": meta["decoding"] or None,
            "carved_test": meta["carved_test"], "skipped": meta["skipped"]}
    identity = _source_identity("image-folder", data.name, meta["fingerprint"])
    return SourceData(tensors, classes, "the class folders' names", info, identity, meta, cache_path)
