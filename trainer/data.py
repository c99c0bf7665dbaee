"""Datasets as whole uint8 tensors: local IDX files or a Hub dataset, decoded once and cached.

The training loop never sees a DataLoader: `load_dataset_splits` returns uint8 tensors that the engine moves to
the accelerator device in one piece, and `shard_batches` yields index batches of a seeded permutation.

What a run was trained on is decided here, from what was loaded, never from a default: `DatasetIdentity` names
the data (canonical MNIST is recognised by its checksums or by its content), and the class names and the
per-channel normalisation statistics come from the data too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import hashlib
import json
import logging
import os
import re
import struct
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from tinyhub.errors import TinyhubError
from tinyhub.files import atomic_path, disk_full_message, is_disk_full, sha256_file
from tinyhub.hub_http import hub_unreachable, unreachable

from .record import DatasetIdentity
from .schema import DataConfig
from .seeding import validation_permutation

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
#: Order-independent digest of canonical MNIST's 70,000 (image, label) pairs (`content_fingerprint`): recognises
#: MNIST whatever it was loaded from (IDX files, the Hub, a saved folder), and nothing else.
MNIST_FINGERPRINT = "abc9f508efcbbfa3f122540eaae72c178b63b68dee72ede3511c471690bd7b14"
MNIST_HUB_ID = "ylecun/mnist"
MNIST_NAME = "MNIST"

#: The datasets tinyhub certifies by content, by the skeleton of their name (see `certified_name`). A name or Hub
#: id with one of these skeletons is only ever recorded, carded or published for data whose fingerprint matches.
CERTIFIED_NAMES = {"mnist": MNIST_NAME}
#: Letters of other scripts, and digits, that read as the Latin letters of a certified name.
_LOOK_ALIKES = str.maketrans({
    "М": "m", "м": "m", "Μ": "m", "ｍ": "m", "Ν": "n", "Н": "n", "п": "n", "И": "n", "Ι": "i", "І": "i",
    "і": "i", "ι": "i", "ı": "i", "Ӏ": "i", "1": "i", "!": "i", "|": "i", "l": "i", "Ѕ": "s", "ѕ": "s",
    "5": "s", "$": "s", "Т": "t", "т": "t", "Τ": "t", "τ": "t", "7": "t", "+": "t",
})
#: What is read past when names are compared: separators, punctuation, and invisible characters.
_SEPARATORS = re.compile(r"[\W_]+|[\u200b-\u200f\u2060\ufeff]", re.UNICODE)


def certified_name(text: str | None) -> str | None:
    """The certified dataset (its display name, "MNIST") that `text` spells in any form, else None.

    The comparison reads past what makes two spellings look alike to a person: Unicode compatibility forms
    (NFKC), accents, letters of other scripts that look Latin, case, whitespace and separators (- _ . and
    spaces), and a Hub namespace (`someone/MNIST`). "MNIST ", "ylecun/MNIST", "m-n-i-s-t" and "МNIST" (Cyrillic М)
    all name MNIST; "fashion-mnist" does not."""
    if not text or not isinstance(text, str):
        return None
    folded = unicodedata.normalize("NFKC", text).strip().rsplit("/", 1)[-1]
    folded = "".join(c for c in unicodedata.normalize("NFKD", folded) if not unicodedata.combining(c))
    skeleton = _SEPARATORS.sub("", folded.translate(_LOOK_ALIKES).casefold()).translate(_LOOK_ALIKES)
    return CERTIFIED_NAMES.get(skeleton)


#: A file beside the IDX files naming the classes: UTF-8, one name per line, line i names class i.
LABELS_FILE = "labels.txt"
#: How a dataset named by its user is identified (DatasetIdentity.identified_by): the setting that named it.
NAMED_BY_THE_USER = "data.name"
SUPPORTED_CHANNELS = (1, 3)
CACHE_FORMAT = 2
logger = logging.getLogger(__name__)
OFFLINE_HINT = (
    "To train offline, point tinyhub at the four MNIST IDX files (.gz or raw): "
    "pass --data-dir /path/to/mnist to the command (every tinyhub command takes it), or set TINYHUB_DATA_DIR."
)


class DataError(TinyhubError, RuntimeError):
    """A dataset could not be found, read or verified. The message names the file and the fix."""


@dataclass
class DatasetSplits:
    """Whole splits as tensors: images uint8 (N, C, H, W), labels int64 (N,), with what describes them."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    label_names: list[str]
    source: dict = field(default_factory=dict)  # what was loaded, for results.json and the card
    val_images: torch.Tensor | None = None
    val_labels: torch.Tensor | None = None
    mean: tuple[float, ...] = ()  # per channel, of the whole training split, in [0, 1] units
    std: tuple[float, ...] = ()

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


# ---------------------------------------------------------------------------------------------------------
# Hub datasets (through `datasets`)
# ---------------------------------------------------------------------------------------------------------
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


def _pixels_uint8(array, where: str, index: int):
    """One image's (finite) pixels as uint8, refusing what a cast would silently turn into other pixels: values
    outside 0-255, or floats in [0, 1] (which a cast would make all but black)."""
    import numpy as np

    if array.dtype == np.uint8:
        return array
    if array.dtype.kind not in "uif" and array.dtype != np.bool_:
        raise DataError(f"{where}: image {index} holds {array.dtype} values, not pixels; give 8-bit images.")
    if array.dtype.kind == "f":
        if array.size and array.max() <= 1.0 and array.max() > 0 and not np.all(array == np.round(array)):
            raise DataError(f"{where}: image {index} is floats in [0, 1]; tinyhub reads 8-bit pixels (0-255). "
                            "Scale the images by 255 (and store them as uint8) first.")
    if array.size and (array.min() < 0 or array.max() > 255):
        raise DataError(f"{where}: image {index} has pixel values from {array.min()} to {array.max()}; tinyhub "
                        "reads 8-bit pixels (0-255). Rescale the images first.")
    return np.rint(array).astype(np.uint8) if array.dtype.kind == "f" else array.astype(np.uint8)


def _stack_images(column, where: str):
    import numpy as np

    raw = [np.asarray(img) for img in column]
    for i, array in enumerate(raw):  # a NaN anywhere is named first: it explains whatever else looks wrong
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise DataError(f"{where}: image {i} has {int((~np.isfinite(array)).sum()):,} pixel(s) that are not "
                            "finite numbers (NaN or infinite); fix or drop those images first.")
    arrays = [_pixels_uint8(array, where, i) for i, array in enumerate(raw)]
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
    # Integer and float images are read as they are and checked pixel by pixel (_pixels_uint8): converting them
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


def _check_labels(tensors: dict[str, torch.Tensor], num_classes: int, where: str, *,
                  every_class_in_train: bool) -> None:
    """Labels are 0..K-1 (with every class present in training, for IDX files whose K is inferred): a stray value
    (a corrupt byte, a label seen only in the test split) would otherwise invent classes, or fail inside the loss."""
    counts = torch.bincount(tensors["train_labels"].clamp(min=0), minlength=num_classes)
    empty = [i for i in range(num_classes) if counts[i] == 0]
    if every_class_in_train and empty:
        raise DataError(f"{where} are not 0..{num_classes - 1}: class(es) {empty[:10]} have no training image, so "
                        "a stray label would be taken for extra classes. Check the labels files.")
    for split in ("train", "val", "test"):
        labels = tensors.get(f"{split}_labels")
        if labels is not None and len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
            bad = int(labels.min()) if int(labels.min()) < 0 else int(labels.max())
            raise DataError(f"{where}: the {split} split has label {bad}, but the classes are 0..{num_classes - 1}.")


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of uint8 images (N, C, H, W), in [0, 1] units, to 4 decimals.
    Sums are exact integers, so the result does not depend on chunking or on the order of the images."""
    c = images.shape[1]
    s1 = torch.zeros(c, dtype=torch.int64)
    s2 = torch.zeros(c, dtype=torch.int64)
    per_image = max(1, images[0].numel() if len(images) else 1)
    for chunk in images.split(max(1, 4_000_000 // per_image)):
        x = chunk.to(torch.int64)
        s1 += x.sum((0, 2, 3))
        s2 += (x * x).sum((0, 2, 3))
    count = max(1, images.numel() // c)
    mean = s1.double() / count / 255.0
    std = (s2.double() / count / 255.0**2 - mean**2).clamp(min=0).sqrt()
    return tuple(round(float(v), 4) for v in mean), tuple(round(float(v), 4) for v in std)


def content_fingerprint(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over every (image, label) pair of the train and test splits, in any order: the same data gives the
    same fingerprint whether it came from IDX files, the Hub or a saved folder, and whatever its order."""
    digest = hashlib.sha256()
    for split in ("train", "test"):
        images, labels = tensors[f"{split}_images"], tensors[f"{split}_labels"]
        flat = images.reshape(len(images), -1).numpy()
        label_bytes = labels.numpy().astype("<i8")
        rows = sorted(hashlib.sha256(label_bytes[i].tobytes() + flat[i].tobytes()).digest() for i in range(len(flat)))
        digest.update(f"{split}:{list(images.shape[1:])}:{len(rows)};".encode())
        digest.update(b"".join(rows))
    return digest.hexdigest()


def _describe(tensors: dict[str, torch.Tensor]) -> dict:
    """What is computed once per dataset and cached with its tensors: fingerprint and normalisation statistics."""
    images = tensors["train_images"]
    if images.ndim != 4 or images.shape[1] not in SUPPORTED_CHANNELS:
        raise DataError(f"the images have {images.shape[1] if images.ndim == 4 else '?'} channels; tinyhub trains "
                        "grayscale (1) or RGB (3) images. Convert them first.")
    if images.shape[2] != images.shape[3]:
        raise DataError(f"the images are {images.shape[2]}x{images.shape[3]} pixels; tinyhub trains square images. "
                        "Pad or resize them to one square size first.")
    for split in ("train", "test"):
        if len(tensors[f"{split}_images"]) == 0:
            raise DataError(f"the {split} split has no images; tinyhub needs images to train on and to test "
                            "with. Check the files (or data.splits) and what they hold.")
    mean, std = channel_stats(images)
    if len(images) and min(std) == 0:
        raise DataError("every training image is the same in at least one channel (standard deviation 0); "
                        "there is nothing to learn from it.")
    return {"fingerprint": content_fingerprint(tensors), "mean": list(mean), "std": list(std)}


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


def _write_cache(path: Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """The decoded dataset for next time. It only saves time: on a full disk the run goes on without it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_writes(path)
        with atomic_path(path) as tmp:  # a killed write leaves only a .tmp file, never a half cache
            save_file(tensors, str(tmp), metadata={"format": str(CACHE_FORMAT), "tinyhub": json.dumps(meta)})
    except Exception as e:
        if not is_disk_full(e, path.parent):
            raise
        needed = sum(t.nbytes for t in tensors.values())
        logger.warning(f"{disk_full_message(path.parent, 'the decoded dataset cache', needed)} Training goes on "
                       "without the cache; the next run decodes the files again.")


def _read_cache(path: Path) -> tuple[dict[str, torch.Tensor], dict] | None:
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != str(CACHE_FORMAT) or not set(CACHE_TENSORS) <= set(f.keys()):
                return None
        described = json.loads(meta["tinyhub"])
        if not {"fingerprint", "mean", "std", "num_classes"} <= set(described):
            return None
        _remove_stale_writes(path)
        return load_file(str(path)), described
    except Exception:  # an unreadable cache is rebuilt, never trusted
        return None


def _checked_names(names, num_classes: int, where: str) -> list[str]:
    names = [str(n) for n in names]
    if len(names) != num_classes:
        raise DataError(f"{where} names {len(names)} classes, but the data has {num_classes} (labels 0.."
                        f"{num_classes - 1}): give exactly one name per class, in label order.")
    if any(not n.strip() for n in names):
        raise DataError(f"{where} has an empty class name; every class needs one.")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataError(f"{where} names several classes {repeated[0]!r}; class names must be distinct.")
    return names


# ---------------------------------------------------------------------------------------------------------
# Data sources (tinyhub.registry.DATA_SOURCES): each reads one kind of storage into a SourceData
# ---------------------------------------------------------------------------------------------------------
@dataclass
class SourceData:
    """What a data source hands over. Only `tensors` is required: train_images, train_labels, test_images,
    test_labels (and val_images, val_labels when the data has its own validation split); images uint8 (N, C, H, W)
    or (N, H, W), labels integers 0..K-1. tinyhub checks them, computes the content fingerprint and normalisation
    statistics (`meta`), and names the data (`identity`: MNIST by its content, else data.name) when the source
    leaves these out."""

    tensors: dict
    label_names: list[str] | None = None  # class names in label order; None = the indices
    names_from: str = "indices"  # where the names came from, in words
    info: dict = field(default_factory=dict)  # what was read (paths, revision, ...), kept in results.json
    identity: DatasetIdentity | None = None
    meta: dict | None = None  # num_classes, fingerprint, mean, std: computed from the tensors when None
    cache_path: Path | None = None


def idx_source(data: DataConfig, cache_root: Path) -> SourceData:
    """Four IDX files named like MNIST's in data.dir."""
    if not data.dir:
        raise DataError(f"data.source=local needs a data folder. {OFFLINE_HINT}")
    tensors, meta, identity, names, names_from, info, cache_path = _load_idx(
        Path(data.dir).expanduser(), name=data.name, verify=data.verify, cache_root=cache_root)
    return SourceData(tensors, names, names_from, info, identity, meta, cache_path)


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


def _completed(loaded: SourceData, source: str, name: str | None) -> SourceData:
    """A plugin's SourceData with what tinyhub derives itself: checked uint8 tensors, meta and identity."""
    if loaded.meta is not None and loaded.identity is not None:
        return loaded
    tensors = {}
    for key, value in loaded.tensors.items():
        t = value if isinstance(value, torch.Tensor) else torch.as_tensor(value)
        if key.endswith("_images"):
            if t.dtype != torch.uint8:
                raise DataError(f"the {source} data source returned {key} as {t.dtype}; images must be uint8 "
                                "(0-255).")
            t = t.unsqueeze(1) if t.ndim == 3 else t
        tensors[key] = t.contiguous() if key.endswith("_images") else t.long()
    missing = [k for k in CACHE_TENSORS if k not in tensors]
    if missing:
        raise DataError(f"the {source} data source returned no {', '.join(missing)}.")
    num_classes = len(loaded.label_names) if loaded.label_names else int(tensors["train_labels"].max()) + 1
    _check_labels(tensors, num_classes, f"the labels from the {source} data source",
                  every_class_in_train=not loaded.label_names)
    meta = {"num_classes": num_classes, **_describe(tensors)}
    identity = loaded.identity or _source_identity(source, name, meta["fingerprint"])
    names = loaded.label_names or [str(i) for i in range(num_classes)]
    return SourceData(tensors, names, loaded.names_from, {"kind": source, **loaded.info}, identity, meta,
                      loaded.cache_path)


def _source_identity(source: str, name: str | None, fingerprint: str) -> DatasetIdentity:
    if fingerprint == MNIST_FINGERPRINT:
        return DatasetIdentity(MNIST_NAME, source, "its content (every image and label of canonical MNIST)",
                               fingerprint, canonical="mnist")
    if certified_name(name):
        raise DataError(f"data.name={name!r} names MNIST, but the {source} data is not canonical MNIST: the name "
                        "MNIST, in any spelling, is kept for MNIST itself. Give its own name with data.name=NAME.")
    if name:
        return DatasetIdentity(name, source, NAMED_BY_THE_USER, fingerprint)
    return DatasetIdentity(None, source, "nothing: no data.name", fingerprint)


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
    """
    from tinyhub.registry import DATA_SOURCES, UnknownNameError

    t0 = time.perf_counter()
    dir = dir or os.environ.get("TINYHUB_DATA_DIR") or None
    name = name or os.environ.get("TINYHUB_DATA_NAME") or None
    if source == "auto":
        source = "local" if dir else "hub"
    cache_root = Path(cache_dir) if cache_dir else default_cache_dir()
    data = DataConfig(source=source, dir=dir, dataset=dataset, revision=revision, name=name, verify=verify,
                      label_names=label_names, splits=splits or {}, cache_dir=cache_dir)
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
    else:
        validation = None
    if subset:
        split.train_images, split.train_labels = split.train_images[:subset], split.train_labels[:subset]
    info.update(
        name=identity.name, identity=identity.as_dict(), canonical_mnist=identity.canonical == "mnist",
        fingerprint=identity.fingerprint, label_names_from=names_from, mean=list(split.mean), std=list(split.std),
        image_shape=list(split.image_shape), validation=validation, cache_file=str(cache_path) if cache_path else None,
        load_seconds=round(time.perf_counter() - t0, 4), train_size=len(split.train_labels),
        test_size=len(split.test_labels), val_size=0 if split.val_labels is None else len(split.val_labels))
    return split


def load_from_config(data: DataConfig | dict, **changes) -> DatasetSplits:
    """load_dataset_splits with a recipe's `data` section (typed, or part of one as a dict; `changes` on top), over
    the schema's defaults: the one place that maps it."""
    given = dataclasses.asdict(data) if dataclasses.is_dataclass(data) else data
    d = {**dataclasses.asdict(DataConfig()), **given, **changes}
    return load_dataset_splits(
        source=d["source"], dir=d["dir"], dataset=d["dataset"], revision=d["revision"], name=d["name"],
        verify=d["verify"], label_names=list(d["label_names"]) if d["label_names"] else None, splits=d["splits"],
        cache_dir=d["cache_dir"], val_size=d["val_size"], subset=d["subset"])


def shard_batches(perm: torch.Tensor, batch_size: int, rank: int, world_size: int) -> list[torch.Tensor]:
    """Split one epoch's permutation into this rank's batches. Every rank gets the same number of batches;
    the last (world_size - 1) samples at most are dropped so that shards are equal."""
    per_rank = len(perm) // world_size
    mine = perm[rank * per_rank : (rank + 1) * per_rank]
    return list(mine.split(batch_size))
