"""data.source=local: four IDX files named like MNIST's (.gz or raw; torchvision's MNIST/raw too), verified against
MNIST's checksums unless named otherwise."""

from __future__ import annotations

import gzip
import hashlib
import struct
from pathlib import Path

import torch

from tinyhub.utils.files import sha256_file

from ..record import DatasetIdentity
from ..schema import DataConfig
from .common import (
    DataError, IDX_STEMS, LABELS_FILE, MNIST_NAME, MNIST_SHA256, NAMED_BY_THE_USER, OFFLINE_HINT, SourceData,
    _check_labels, _describe, _read_cache, _write_cache, certified_name, logger)


def _find_idx_file(data_dir: Path, stem: str) -> Path:
    for folder in (data_dir, data_dir / "MNIST" / "raw", data_dir / "raw"):
        for name in (stem + ".gz", stem):
            if (folder / name).is_file():
                return folder / name
    raise DataError(
        f"{data_dir} has no {stem}(.gz) (looked in {data_dir}, {data_dir}/MNIST/raw and {data_dir}/raw). "
        "It needs the four standard IDX files: " + ", ".join(s + "(.gz)" for s in IDX_STEMS.values()) + "."
    )


def _read_idx(path: Path, expect_ndim: int) -> torch.Tensor:
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"{path} is corrupt or truncated ({e}). Replace it with a fresh copy.") from e
    if len(raw) < 4 + 4 * expect_ndim:
        raise DataError(f"{path} is truncated: only {len(raw)} bytes. Replace it with a fresh copy.")
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08 or ndim != expect_ndim:
        raise DataError(
            f"{path} is not an unsigned-byte IDX file with {expect_ndim} dimension(s) "
            f"(header says type 0x{dtype_code:02x}, {ndim} dims). Check that the file is what its name says."
        )
    dims = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    offset = 4 + 4 * ndim
    expected = 1
    for d in dims:
        expected *= d
    if len(raw) - offset != expected:
        raise DataError(
            f"{path} is truncated or padded: header promises {expected:,} bytes of data for shape {dims}, "
            f"file has {len(raw) - offset:,}. Replace it with a fresh copy."
        )
    if expected == 0:
        raise DataError(f"{path} holds no {'images' if expect_ndim == 3 else 'labels'} (its header says shape "
                        f"{dims}); every split needs some. Check that the file is the one you meant.")
    return torch.frombuffer(bytearray(raw[offset:]), dtype=torch.uint8).reshape(dims)


def _local_files(data_dir: Path) -> dict[tuple[str, str], Path]:
    if not data_dir.is_dir():
        raise DataError(f"The data folder {str(data_dir)!r} is not a directory. {OFFLINE_HINT}")
    return {key: _find_idx_file(data_dir, stem) for key, stem in IDX_STEMS.items()}


def _labels_file(files: dict[tuple[str, str], Path], data_dir: Path) -> Path | None:
    for folder in (files[("train", "images")].parent, data_dir):
        if (folder / LABELS_FILE).is_file():
            return folder / LABELS_FILE
    return None


def _read_labels_file(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path} cannot be read as UTF-8 text ({e}). It names the classes: one per line, line i "
                        "names class i.") from e
    while lines and not lines[-1].strip():
        lines.pop()
    return [line.strip() for line in lines]


def _idx_identity(files: dict[tuple[str, str], Path], digests: dict[Path, str], name: str | None,
                  verify: bool, fingerprint: str) -> DatasetIdentity:
    """MNIST only for the canonical files; any other IDX data by the name the user gives, or unidentified."""
    mismatched = [p for p in files.values() if MNIST_SHA256.get(p.name) != digests[p]]
    if not mismatched:
        if name and not certified_name(name):
            logger.warning("data.name=%s is not used: these are the canonical MNIST files (checksums verified)", name)
        return DatasetIdentity(MNIST_NAME, "idx", "the SHA-256 checksums of the four IDX files", fingerprint,
                               canonical="mnist")
    path = mismatched[0]
    found = f"{path} does not match the canonical MNIST checksum (sha256 {digests[path][:16]}...)"
    if certified_name(name):
        raise DataError(f"data.name={name!r} names MNIST, but {found}: the name MNIST is kept for the canonical files "
                        "(in any spelling). If these are MNIST, they are truncated or corrupt: replace them with a "
                        "fresh copy. If they are another dataset, give its own name: data.name=NAME.")
    if name:
        return DatasetIdentity(name, "idx", NAMED_BY_THE_USER, fingerprint)
    if verify:
        raise DataError(f"{found}: it is truncated, corrupt or a different dataset. Replace it with a fresh copy; or, "
                        "if it is another IDX dataset on purpose, give its name with data.name=NAME (class names go in "
                        f"a {LABELS_FILE} beside the files, or data.label_names=[...]).")
    return DatasetIdentity(None, "idx", "nothing: data.verify=false and no data.name", fingerprint)


def _decode_local(files: dict[tuple[str, str], Path]) -> dict[str, torch.Tensor]:
    out = {}
    for (split, kind), path in files.items():
        t = _read_idx(path, 3 if kind == "images" else 1)
        out[f"{split}_{kind}"] = t.unsqueeze(1).contiguous() if kind == "images" else t.long()
    for split in ("train", "test"):
        n_img, n_lab = len(out[f"{split}_images"]), len(out[f"{split}_labels"])
        if n_img != n_lab:
            raise DataError(
                f"{files[(split, 'images')]} holds {n_img:,} images but {files[(split, 'labels')]} holds "
                f"{n_lab:,} labels: the files do not belong together."
            )
    return out


def _load_idx(data_dir: Path, *, name: str | None, verify: bool, cache_root: Path):
    files = _local_files(data_dir)
    digests = {p: sha256_file(p) for p in files.values()}
    key = hashlib.sha256("".join(digests[files[k]] for k in IDX_STEMS).encode()).hexdigest()[:20]
    cache_path = cache_root / f"idx-{key}.safetensors"
    cached = _read_cache(cache_path)
    if cached is None:
        tensors = _decode_local(files)
        num_classes = int(tensors["train_labels"].max()) + 1 if len(tensors["train_labels"]) else 0
        _check_labels(tensors, num_classes, f"the labels in {data_dir}", every_class_in_train=True)
        meta = {"num_classes": num_classes, **_describe(tensors)}
        _write_cache(cache_path, tensors, meta)
    else:
        tensors, meta = cached
    identity = _idx_identity(files, digests, name, verify, meta["fingerprint"])
    labels_file = _labels_file(files, data_dir)
    if labels_file is not None:
        names, names_from = _read_labels_file(labels_file), f"{LABELS_FILE} ({labels_file})"
    elif identity.canonical == "mnist":
        names, names_from = [str(i) for i in range(meta["num_classes"])], "MNIST's digits"
    else:
        names, names_from = [str(i) for i in range(meta["num_classes"])], "indices"
    info = {"kind": "local", "dir": str(data_dir.resolve()), "canonical_mnist": identity.canonical == "mnist",
            "sha256": {p.name: digests[p] for p in files.values()}}
    return tensors, meta, identity, names, names_from, info, cache_path


def idx_source(data: DataConfig, cache_root: Path) -> SourceData:
    """Four IDX files named like MNIST's in data.dir."""
    if not data.dir:
        raise DataError(f"data.source=local needs a data folder. {OFFLINE_HINT}")
    tensors, meta, identity, names, names_from, info, cache_path = _load_idx(
        Path(data.dir).expanduser(), name=data.name, verify=data.verify, cache_root=cache_root)
    return SourceData(tensors, names, names_from, info, identity, meta, cache_path)
