"""What every data source shares: the splits as tensors, the checks, the content fingerprint and statistics,
the dataset cache, and SourceData, what a source hands over."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from tinyhub.errors import TinyhubError
from tinyhub.utils.files import OFFLINE_HINT, atomic_path, disk_full_message, is_disk_full  # noqa: F401

from ..record import DatasetIdentity

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
#: Digits and punctuation that read as the Latin letters of a certified name inside a word ("mn1st", "mn!st");
#: letters of other scripts are mapped by the Unicode confusables data instead (`_latin`).
_LOOK_ALIKES = str.maketrans({"1": "i", "!": "i", "|": "i", "l": "i", "5": "s", "$": "s", "7": "t", "+": "t"})
#: Letters that readers take for a letter of MNIST although Unicode's confusables data maps them elsewhere (small
#: Cyrillic em to a turned w, Cyrillic en to H) or nowhere (pe, i, dotless i, small te and tau).
_READ_AS = {"м": "m", "Н": "n", "н": "n", "п": "n", "И": "n", "и": "n", "ı": "i", "т": "t", "τ": "t"}
#: Where a name is cut into words: whitespace, punctuation and invisible characters (look-alikes of letters kept).
_SEPARATORS = re.compile(r"[^\w!|$+]+|_", re.UNICODE)
#: Characters nobody sees: read past, as if absent ("M\u200bNIST" is MNIST).
_INVISIBLE = re.compile(r"[\u200b-\u200f\u2060\ufeff\u00ad]")
#: Words that add nothing to which dataset a name means: "the MNIST database", "MNIST-dataset", "mnist full",
#: "torchvision MNIST", "mnist_784" all name MNIST. A word not listed (fashion, k, e, q, kuzushiji, 1d, sign, ...)
#: makes another dataset. Numbers count as such words too.
NON_IDENTIFYING_WORDS = frozenset("""
    a an the of and for my our your this
    dataset datasets database databases data db set sets corpus collection benchmark
    digit digits handwritten handwriting hand written numbers numerals
    full complete whole original orig official standard classic canonical clean raw real true
    train training test testing split splits all
    image images img imgs picture pictures pixels
    version ver v copy mirror sample
    lecun yann ylecun torchvision tfds keras openml sklearn huggingface hf kaggle pytorch tensorflow tf datasets
""".split())
_NOISE = re.compile("(?:" + "|".join(sorted(map(re.escape, NON_IDENTIFYING_WORDS), key=len, reverse=True))
                    + r"|\d)*")


def _latin(char: str) -> str:
    """A letter of another script, or a small capital, as the Latin letter it reads as (Unicode's confusables data,
    through confusable_homoglyphs); anything else as it is."""
    if char.isascii() or not char.isalpha():
        return char
    if char in _READ_AS:
        return _READ_AS[char]
    name = unicodedata.name(char, "")
    small_capital = re.fullmatch(r"LATIN LETTER SMALL CAPITAL ([A-Z])", name)
    if small_capital:
        return small_capital.group(1).lower()
    from confusable_homoglyphs import confusables

    for found in confusables.is_confusable(char, greedy=True, preferred_aliases=["latin"]) or []:
        for glyph in found["homoglyphs"]:
            if glyph["c"].isascii() and glyph["c"].isalpha():
                return glyph["c"]
    return char


def _words(text: str) -> list[str]:
    """The words of a name, as a person reads them: compatibility forms, accents, other scripts' look-alikes and case
    folded."""
    folded = _INVISIBLE.sub("", unicodedata.normalize("NFKC", text)).strip().rsplit("/", 1)[-1]  # not the namespace
    folded = "".join(_latin(c) for c in unicodedata.normalize("NFKD", folded) if not unicodedata.combining(c))
    return [w for w in _SEPARATORS.split(folded.casefold()) if w]


def _names(word: str, key: str) -> bool:
    """Whether `word` is `key` (a certified name's skeleton) with only non-identifying words around it."""
    seen = word.translate(_LOOK_ALIKES)
    start = seen.find(key)
    while start >= 0:
        if _NOISE.fullmatch(word[:start]) and _NOISE.fullmatch(word[start + len(key):]):
            return True
        start = seen.find(key, start + 1)
    return False


def certified_name(text: str | None) -> str | None:
    """The certified dataset (its display name, "MNIST") that `text` names, else None.

    A person reads past Unicode compatibility forms (NFKC), accents, letters of other scripts and small capitals
    that look Latin (Unicode's confusables data), digits and signs inside a word (`mn1st`), case, separators and
    invisible characters, a Hub namespace, and words that do not say which dataset (NON_IDENTIFYING_WORDS: "the",
    "dataset", "digits", "full", numbers, catalogue names such as torchvision): "MNIST ", "ylecun/MNIST",
    "m-n-i-s-t", "МNIST" (Cyrillic М), "the MNIST database" and "mnist_784" all name MNIST. A word that makes
    another dataset keeps it another: "fashion-mnist", "KMNIST", "EMNIST", "QMNIST", "MNIST-1D"."""
    if not text or not isinstance(text, str):
        return None
    # Read without the separators: "mnis t" and "MNIST-dataset" as "mnist", "mnistdataset"; a word that makes
    # another dataset stays glued on ("fashionmnist", "kmnist") and is not read past.
    joined = "".join(_words(text))[:200]
    return next((display for key, display in CERTIFIED_NAMES.items() if _names(joined, key)), None)


#: A file beside the IDX files naming the classes: UTF-8, one name per line, line i names class i.
LABELS_FILE = "labels.txt"
#: How a dataset named by its user is identified (DatasetIdentity.identified_by): the setting that named it.
NAMED_BY_THE_USER = "data.name"
SUPPORTED_CHANNELS = (1, 3)
CACHE_FORMAT = 2
logger = logging.getLogger(__name__)


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
