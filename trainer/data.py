"""Datasets as whole uint8 tensors: local IDX files or a Hub dataset, decoded once and cached.

The training loop never sees a DataLoader: `load_dataset_splits` returns uint8 tensors that the engine moves to
the accelerator device in one piece, and `shard_batches` yields index batches of a seeded permutation.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from tinyhub.errors import TinyhubError

# The canonical MNIST files (LeCun, Cortes, Burges), compressed and raw.
MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
IDX_STEMS = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}
CACHE_FORMAT = 1
OFFLINE_HINT = (
    "To train offline, point tinyhub at the four MNIST IDX files (.gz or raw): "
    "pass --data-dir /path/to/mnist to the command (every tinyhub command takes it), or set TINYHUB_DATA_DIR."
)


class DataError(TinyhubError, RuntimeError):
    """A dataset could not be found, read or verified. The message names the file and the fix."""


@dataclass
class DatasetSplits:
    """Whole splits as tensors: images uint8 (N, C, H, W), labels int64 (N,)."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    label_names: list[str]
    source: dict = field(default_factory=dict)  # what was loaded, for results.json and the card
    val_images: torch.Tensor | None = None
    val_labels: torch.Tensor | None = None

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_images.shape[1:])

    def to(self, device) -> "DatasetSplits":
        moved = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in vars(self).items()}
        return DatasetSplits(**moved)


# ---------------------------------------------------------------------------------------------------------
# Local IDX files
# ---------------------------------------------------------------------------------------------------------
def _find_idx_file(data_dir: Path, stem: str) -> Path:
    for folder in (data_dir, data_dir / "MNIST" / "raw", data_dir / "raw"):
        for name in (stem + ".gz", stem):
            if (folder / name).is_file():
                return folder / name
    raise DataError(
        f"{data_dir} has no {stem}(.gz) (looked in {data_dir}, {data_dir}/MNIST/raw and {data_dir}/raw). "
        "It needs the four standard IDX files: " + ", ".join(s + "(.gz)" for s in IDX_STEMS.values()) + "."
    )


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


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
    return torch.frombuffer(bytearray(raw[offset:]), dtype=torch.uint8).reshape(dims)


def _local_files(data_dir: Path) -> dict[tuple[str, str], Path]:
    if not data_dir.is_dir():
        raise DataError(f"The data folder {str(data_dir)!r} is not a directory. {OFFLINE_HINT}")
    return {key: _find_idx_file(data_dir, stem) for key, stem in IDX_STEMS.items()}


def _verify(files: dict[tuple[str, str], Path], digests: dict[Path, str], verify: bool) -> bool:
    """Check canonical MNIST checksums. Returns True if all four files are the canonical ones."""
    if not verify:
        return False
    for path in files.values():
        want = MNIST_SHA256.get(path.name)
        if want is not None and digests[path] != want:
            raise DataError(
                f"{path} does not match the canonical MNIST checksum (sha256 {digests[path][:16]}..., expected "
                f"{want[:16]}...): it is truncated, corrupt or a different dataset. Replace it with a fresh copy, "
                "or if it is another IDX dataset on purpose, set data.name to its name and data.verify=false."
            )
    return True


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


# ---------------------------------------------------------------------------------------------------------
# Hub datasets (through `datasets`)
# ---------------------------------------------------------------------------------------------------------
def _hub_unreachable() -> bool:
    """True when the Hub's host name does not even resolve (no network): one lookup, no retries."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return True
    host = urlparse(constants.ENDPOINT).hostname
    try:
        socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError):
        return True
    return False


@contextlib.contextmanager
def _datasets_offline(datasets):
    saved = datasets.config.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE = saved


def _load_hub(dataset_id: str, revision: str | None) -> tuple[dict[str, torch.Tensor], list[str], dict]:
    import datasets
    import numpy as np

    try:
        if os.path.isdir(dataset_id):
            ds = datasets.load_from_disk(dataset_id)
        elif _hub_unreachable():
            # No network: `datasets` would retry for half a minute; ask its cache alone, which answers at once.
            try:
                with _datasets_offline(datasets):
                    ds = datasets.load_dataset(dataset_id, revision=revision)
            except Exception as e:
                raise DataError(f"The Hub cannot be reached (no network, or offline mode) and {dataset_id!r} is not "
                                f"in the datasets cache. {OFFLINE_HINT}") from e
        else:
            ds = datasets.load_dataset(dataset_id, revision=revision)
    except DataError:
        raise
    except ConnectionError as e:  # what `datasets` raises offline or when the Hub cannot be reached
        raise DataError(f"Could not download {dataset_id!r} from the Hub ({e}). {OFFLINE_HINT}") from e
    except Exception as e:
        raise DataError(f"Could not load the dataset {dataset_id!r}: {e}") from e
    if not isinstance(ds, datasets.DatasetDict) or "train" not in ds or "test" not in ds:
        raise DataError(f"Dataset {dataset_id!r} needs 'train' and 'test' splits; it has {list(ds)}.")
    features = ds["train"].features
    image_col = next((k for k, f in features.items() if isinstance(f, datasets.Image)), None)
    label_col = next((k for k, f in features.items() if isinstance(f, datasets.ClassLabel)), None)
    if image_col is None or label_col is None:
        raise DataError(
            f"Dataset {dataset_id!r} needs an Image column and a ClassLabel column; its features are {features}."
        )
    out = {}
    for split in ("train", "test"):
        part = ds[split].with_format("numpy", columns=[image_col, label_col])
        images = np.stack([np.asarray(img, dtype=np.uint8) for img in part[image_col]])
        if images.ndim == 3:
            images = images[:, None]
        else:  # H, W, C -> C, H, W
            images = images.transpose(0, 3, 1, 2)
        out[f"{split}_images"] = torch.from_numpy(np.ascontiguousarray(images))
        out[f"{split}_labels"] = torch.from_numpy(np.asarray(part[label_col], dtype=np.int64))
    info = {"dataset_id": dataset_id, "revision": revision,
            "fingerprint": ds["train"]._fingerprint + ds["test"]._fingerprint}
    return out, list(features[label_col].names), info


def _check_labels(tensors: dict[str, torch.Tensor], num_classes: int, where: str) -> None:
    """Labels are 0..K-1 with every class present in training: a stray value (a corrupt byte, a label seen only
    in the test split) would otherwise invent classes, or fail deep inside the loss."""
    counts = torch.bincount(tensors["train_labels"], minlength=num_classes)
    empty = [i for i in range(num_classes) if counts[i] == 0]
    if empty:
        raise DataError(f"{where} are not 0..{num_classes - 1}: class(es) {empty[:10]} have no training image, so "
                        "a stray label would be taken for extra classes. Check the labels files.")
    test = tensors["test_labels"]
    if len(test) and (int(test.min()) < 0 or int(test.max()) >= num_classes):
        raise DataError(f"{where}: the test split has label {int(test.max())}, but training has only classes "
                        f"0..{num_classes - 1}.")


# ---------------------------------------------------------------------------------------------------------
# Cache and entry point
# ---------------------------------------------------------------------------------------------------------
def default_cache_dir() -> Path:
    return Path(os.environ.get("TINYHUB_CACHE", Path.home() / ".cache" / "tinyhub")) / "datasets"


#: The tensors every cache file must hold; a file without one of them is rebuilt, never trusted.
CACHE_TENSORS = ("train_images", "train_labels", "test_images", "test_labels")


def _remove_stale_writes(path: Path) -> None:
    """Delete `<cache>.<pid>.tmp` files left by writes whose process is gone (killed mid-write): tens of MB each."""
    for tmp in path.parent.glob(f"{path.name}.*.tmp"):
        pid = tmp.name[len(path.name) + 1: -len(".tmp")]
        if pid.isdigit() and int(pid) != os.getpid() and not _process_alive(int(pid)):
            tmp.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def _write_cache(path: Path, tensors: dict[str, torch.Tensor], label_names: list[str], source: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_writes(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    meta = {"format": str(CACHE_FORMAT), "label_names": "\x1f".join(label_names),
            **{f"source.{k}": str(v) for k, v in source.items()}}
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, path)  # a killed write leaves only a .tmp file, never a half cache


def _read_cache(path: Path) -> tuple[dict[str, torch.Tensor], list[str]] | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != str(CACHE_FORMAT) or not set(CACHE_TENSORS) <= set(f.keys()):
                return None
        _remove_stale_writes(path)
        return load_file(str(path)), meta["label_names"].split("\x1f")
    except Exception:  # an unreadable cache is rebuilt, never trusted
        return None


def load_dataset_splits(
    *,
    source: str = "auto",
    dir: str | None = None,
    dataset: str = "ylecun/mnist",
    revision: str | None = None,
    name: str | None = None,
    verify: bool = True,
    cache_dir: str | None = None,
    val_size: int = 0,
    subset: int = 0,
    seed: int = 0,
) -> DatasetSplits:
    """Load train/test (and optionally a validation split carved from train) as uint8 tensors.

    source: "local" (IDX files in `dir`), "hub" (`dataset`: a Hub id or a folder saved with
    `DatasetDict.save_to_disk`), or "auto" (local when `dir` or TINYHUB_DATA_DIR is set, else hub).
    subset: keep only the first N training images (tests and smoke runs); 0 keeps all.
    name: the dataset's name (default $TINYHUB_DATA_NAME or "mnist"); files of a dataset named "mnist" must
    match the canonical MNIST checksums, so another IDX dataset with the same file names (Fashion-MNIST) needs
    its own name.
    """
    t0 = time.perf_counter()
    dir = dir or os.environ.get("TINYHUB_DATA_DIR") or None
    name = name or os.environ.get("TINYHUB_DATA_NAME") or "mnist"
    if source == "auto":
        source = "local" if dir else "hub"
    cache_root = Path(cache_dir) if cache_dir else default_cache_dir()

    if source == "local":
        if not dir:
            raise DataError(f"data.source=local needs a data folder. {OFFLINE_HINT}")
        files = _local_files(Path(dir).expanduser())
        digests = {p: _sha256(p) for p in files.values()}
        canonical = _verify(files, digests, verify and name == "mnist")
        key = hashlib.sha256("".join(digests[files[k]] for k in IDX_STEMS).encode()).hexdigest()[:20]
        cache_path = cache_root / f"{name}-idx-{key}.safetensors"
        info = {"kind": "local", "dir": str(Path(dir).resolve()), "name": name, "canonical_mnist": canonical,
                "sha256": {p.name: digests[p] for p in files.values()}}
        cached = _read_cache(cache_path)
        if cached is None:
            tensors = _decode_local(files)
            label_names = [str(i) for i in range(int(tensors["train_labels"].max()) + 1)]
            _check_labels(tensors, len(label_names), f"the labels in {dir}")
            _write_cache(cache_path, tensors, label_names, {"kind": "local", "dir": info["dir"]})
        else:
            tensors, label_names = cached
    elif source == "hub":
        key = hashlib.sha256(f"{dataset}@{revision}".encode()).hexdigest()[:20]
        cache_path = cache_root / f"hub-{key}.safetensors"
        cached = None if os.path.isdir(dataset) else _read_cache(cache_path)
        info = {"kind": "hub", "dataset_id": dataset, "revision": revision, "name": name}
        if cached is None:
            tensors, label_names, hub_info = _load_hub(dataset, revision)
            info.update(hub_info)
            if not os.path.isdir(dataset):
                _write_cache(cache_path, tensors, label_names, {"kind": "hub", "dataset_id": dataset})
        else:
            tensors, label_names = cached
    else:
        raise DataError(f"data.source must be 'local', 'hub' or 'auto', not {source!r}.")
    info["cache_file"] = str(cache_path)
    info["load_seconds"] = round(time.perf_counter() - t0, 4)

    splits = DatasetSplits(
        tensors["train_images"], tensors["train_labels"], tensors["test_images"], tensors["test_labels"],
        label_names, info,
    )
    if val_size:
        if not 0 < val_size < len(splits.train_labels):
            raise DataError(f"data.val_size={val_size} must be between 1 and {len(splits.train_labels) - 1}.")
        # Carved with its own seed so the validation set is the same whatever the training seed.
        perm = torch.randperm(len(splits.train_labels), generator=torch.Generator().manual_seed(1234))
        val_idx, train_idx = perm[:val_size].sort().values, perm[val_size:].sort().values
        splits.val_images, splits.val_labels = splits.train_images[val_idx], splits.train_labels[val_idx]
        splits.train_images, splits.train_labels = splits.train_images[train_idx], splits.train_labels[train_idx]
    if subset:
        splits.train_images, splits.train_labels = splits.train_images[:subset], splits.train_labels[:subset]
    info.update(train_size=len(splits.train_labels), test_size=len(splits.test_labels),
                val_size=0 if splits.val_labels is None else len(splits.val_labels))
    return splits


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of training samples for one epoch: a function of (seed, epoch) only, so resume is exact."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


def shard_batches(perm: torch.Tensor, batch_size: int, rank: int, world_size: int) -> list[torch.Tensor]:
    """Split one epoch's permutation into this rank's batches. Every rank gets the same number of batches;
    the last (world_size - 1) samples at most are dropped so that shards are equal."""
    per_rank = len(perm) // world_size
    mine = perm[rank * per_rank : (rank + 1) * per_rank]
    return list(mine.split(batch_size))
