"""data.source=csv and data.source=npz: images kept as numbers rather than image files.

csv: a label column (data.label_column, else one named "label", else the first) and one column per pixel, as
Kaggle's digit-recognizer keeps MNIST (`label,pixel0,...,pixel783`). Train and test as two files in a folder
(train.csv, test.csv, optionally val.csv), or one file with a split column (data.split_column, else one named
"split"), or one file with no test split (one is carved). Rows are HxW grayscale pixels, or HxWxC in that order;
the shape is data.image_shape, or inferred from a square pixel count. pandas (which 🤗 datasets installs) parses
the file: its C parser reads 70,000 rows of 785 numbers in seconds, where Python's csv module takes a minute.

npz: arrays named x_train, y_train, x_test, y_test (and x_val, y_val), as Keras keeps MNIST; images NHW, NHWC or
NCHW (data.layout, else decided from where the 1- or 3-long axis is). Loaded with allow_pickle=False: an npz can
hold pickled objects, and tinyhub never unpickles a file from someone else.
"""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path

import numpy as np
import torch

from ..schema import DataConfig
from .common import DataError, SourceData, _check_labels, _describe, _read_cache, _source_identity, _write_cache
from .folder import data_path
from .images import Shaping, pixels_uint8, shape_images
from .splits import carve_test

CSV_FILES = {"train": "train.csv", "test": "test.csv", "val": "val.csv"}
SPLIT_NAMES = {"train": "train", "training": "train", "test": "test", "testing": "test", "val": "val",
               "valid": "val", "validation": "val"}


def _cached(kind: str, key_parts: list[str], cache_root: Path, build) -> tuple[dict, dict, Path]:
    key = hashlib.sha256(";".join(key_parts).encode()).hexdigest()[:20]
    cache_path = cache_root / f"{kind}-{key}.safetensors"
    cached = _read_cache(cache_path)
    if cached is not None:
        return *cached, cache_path
    tensors, meta = build()
    _write_cache(cache_path, tensors, meta)
    return tensors, meta, cache_path


def _finish(splits: dict[str, tuple[np.ndarray, np.ndarray]], data: DataConfig, names: list[str] | None,
            where: str) -> tuple[dict, dict]:
    """Arrays (N, H, W, C) uint8 and labels per split -> checked tensors, a carved test split if needed, meta."""
    shaping = Shaping.of(data)
    tensors, said = {}, ""
    for split, (images, labels) in splits.items():
        shaped, said_here = shape_images(images, lambda i, split=split: f"image {i} of the {split} split", shaping)
        said = said or said_here
        tensors[f"{split}_images"] = torch.from_numpy(np.ascontiguousarray(shaped))
        tensors[f"{split}_labels"] = torch.from_numpy(labels.astype(np.int64))
    num_classes = len(names) if names else int(max(int(t.max()) for k, t in tensors.items()
                                                    if k.endswith("_labels") and len(t)) + 1)
    _check_labels(tensors, num_classes, f"the labels in {where}", every_class_in_train=not names)
    carved = None
    if "test_images" not in tensors:
        carved = carve_test(tensors, data.test_size, data.split_seed)
    return tensors, {"num_classes": num_classes, **_describe(tensors), "decoding": said, "carved_test": carved,
                     "skipped": 0}


def _source_data(kind: str, identity_kind: str, path: Path, tensors, meta, names, names_from, cache_path,
                 data: DataConfig) -> SourceData:
    names = names or [str(i) for i in range(meta["num_classes"])]
    info = {"kind": kind, "path": str(path.resolve()), "decoding": meta["decoding"] or None,
            "carved_test": meta["carved_test"], "skipped": meta["skipped"]}
    identity = _source_identity(identity_kind, data.name, meta["fingerprint"])
    return SourceData(tensors, names, names_from, info, identity, meta, cache_path)


def _file_digest(path: Path) -> str:
    from tinyhub.utils.files import sha256_file

    return sha256_file(path)


# ---------------------------------------------------------------------------------------------------------
# npz
# ---------------------------------------------------------------------------------------------------------
def _layout(x: np.ndarray, layout: str, where: str) -> np.ndarray:
    """Images as (N, H, W, C)."""
    if x.ndim == 3:
        return x[..., None]
    if x.ndim != 4:
        raise DataError(f"{where} has shape {x.shape}; images are (N, H, W), (N, H, W, C) or (N, C, H, W).")
    if layout == "auto":
        last, second = x.shape[3] in (1, 3, 4), x.shape[1] in (1, 3, 4)
        if last == second:
            raise DataError(f"{where} has shape {x.shape}: it could be NHWC or NCHW. Say which with "
                            "data.layout=nhwc or data.layout=nchw.")
        layout = "nhwc" if last else "nchw"
    x = x if layout == "nhwc" else x.transpose(0, 2, 3, 1)
    if x.shape[3] == 4:  # RGBA: flattened onto the background
        return x  # handled by _flatten_alpha after the pixels are uint8
    if x.shape[3] not in (1, 3):
        raise DataError(f"{where} has {x.shape[3]} channels; tinyhub reads grayscale (1), RGB (3) or RGBA (4).")
    return x


def _flatten_alpha(x: np.ndarray, background: int) -> np.ndarray:
    if x.shape[3] != 4:
        return x
    alpha = x[..., 3:4].astype(np.uint32)
    return ((x[..., :3].astype(np.uint32) * alpha + background * (255 - alpha) + 127) // 255).astype(np.uint8)


def _labels(y: np.ndarray, where: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1 and set(np.unique(y).tolist()) <= {0, 1}:  # one-hot, as Keras often stores
        y = y.argmax(1)
    y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
    if y.ndim != 1 or y.dtype.kind not in "iu" and not (y.dtype.kind == "f" and np.all(y == np.round(y))):
        raise DataError(f"{where} has shape {y.shape} and type {y.dtype}; labels are one integer class index per "
                        "image.")
    return y.astype(np.int64)


def npz_source(data: DataConfig, cache_root: Path) -> SourceData:
    """x_train, y_train, x_test, y_test (and x_val, y_val) arrays in an .npz file at data.path."""
    path = data_path(data, "npz", "an .npz file with x_train, y_train (x_test, y_test, x_val, y_val) arrays")
    if path.is_dir():
        raise DataError(f"data.path={data.path!r} is a folder; data.source=npz reads one .npz file.")
    shaping = Shaping.of(data)

    def build():
        try:
            arrays = np.load(path, allow_pickle=False)
            keys = set(arrays.files)
        except ValueError as e:
            raise DataError(f"{path} holds pickled objects, which tinyhub never loads from a file (they can run "
                            "code); save plain numeric arrays with numpy.savez.") from e
        except Exception as e:  # noqa: BLE001 - a zip that is not one, a truncated file
            raise DataError(f"{path} is not a readable .npz file ({type(e).__name__}: {e}). Replace it with a fresh "
                            "copy.") from e
        missing = [k for k in ("x_train", "y_train") if k not in keys]
        if missing:
            raise DataError(f"{path} has the arrays {sorted(keys)}, but no {' and no '.join(missing)}: tinyhub reads "
                            "x_train, y_train, x_test, y_test (and x_val, y_val), as Keras stores MNIST.")
        splits = {}
        with arrays:
            for split in ("train", "test", "val"):
                if f"x_{split}" not in keys:
                    continue
                if f"y_{split}" not in keys:
                    raise DataError(f"{path} has x_{split} but no y_{split}: every image array needs its labels.")
                where = f"x_{split} in {path}"
                try:
                    x = _layout(arrays[f"x_{split}"], data.layout, where)
                    y = _labels(arrays[f"y_{split}"], f"y_{split} in {path}")
                except ValueError as e:
                    raise DataError(f"{path} holds pickled objects in x_{split} or y_{split}, which tinyhub never "
                                    "loads; save plain numeric arrays with numpy.savez.") from e
                if len(x) != len(y):
                    raise DataError(f"{path}: x_{split} holds {len(x):,} images but y_{split} {len(y):,} labels; "
                                    "they must match one to one.")
                splits[split] = (_flatten_alpha(pixels_uint8(x, where), shaping.background), y)
        return _finish(splits, data, data.label_names and list(data.label_names), str(path))

    parts = ["npz-1", _file_digest(path), shaping.key(), data.layout, f"{data.test_size}", f"{data.split_seed}"]
    tensors, meta, cache_path = _cached("npz", parts, cache_root, build)
    return _source_data("npz", "npz", path, tensors, meta, None, "indices", cache_path, data)


# ---------------------------------------------------------------------------------------------------------
# csv
# ---------------------------------------------------------------------------------------------------------
def _read_csv(path: Path, skip_bad: bool):
    """(the table, rows left out for having too many values: data.skip_bad)."""
    import pandas as pd

    try:
        with path.open(encoding="utf-8", errors="replace") as f:
            first = f.readline()
    except OSError as e:
        raise DataError(f"{path} cannot be read ({e}).") from e
    if not first.strip():
        raise DataError(f"{path} is empty: it needs a header or rows of a label and pixels.")
    header = any(re.search(r"[A-Za-z_]", cell) and not _is_number(cell) for cell in first.strip().split(","))
    try:
        table = pd.read_csv(path, header=0 if header else None, low_memory=False,
                            on_bad_lines="skip" if skip_bad else "error")
    except pd.errors.ParserError as e:
        line = re.search(r"line (\d+), saw (\d+)", str(e))
        where = f"row {int(line.group(1)) - (1 if header else 0)}" if line else "a row"
        raise DataError(f"{path}: {where} has {line.group(2) if line else 'more'} values, more than the "
                        f"{len(first.split(','))} columns of the first line; every row needs a label and the same "
                        "number of pixels (data.skip_bad=true leaves such rows out).") from e
    except (OSError, UnicodeDecodeError, pd.errors.EmptyDataError) as e:
        raise DataError(f"{path} cannot be read as a CSV file ({e}).") from e
    if not header:
        table.columns = [str(c) for c in table.columns]
    skipped = 0
    if skip_bad:
        with path.open(encoding="utf-8", errors="replace") as f:
            skipped = sum(1 for line in f if line.strip()) - (1 if header else 0) - len(table)
    return table, skipped


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _image_shape(count: int, data: DataConfig, path: Path) -> tuple[int, int, int]:
    if data.image_shape:
        shape = tuple(data.image_shape) + ((1,) if len(data.image_shape) == 2 else ())
        if math.prod(shape) != count:
            raise DataError(f"{path} has {count} pixel columns, but data.image_shape={list(data.image_shape)} "
                            f"holds {math.prod(shape)}; give the shape of its images ([H, W] or [H, W, C]).")
        return shape
    for channels in (1, 3):
        side = math.isqrt(count // channels)
        if side * side * channels == count:
            return side, side, channels
    raise DataError(f"{path} has {count} pixel columns, which is not a square image (N*N grayscale or N*N*3 "
                    "colour pixels); give its shape: data.image_shape=[H,W] or [H,W,C].")


def _table_split(table, path: Path, data: DataConfig, shape=None):
    """(images N,H,W,C, raw labels, shape, rows left out) of a table's rows."""
    columns = list(table.columns)
    label = data.label_column or ("label" if "label" in columns else columns[0])
    if label not in columns:
        raise DataError(f"{path} has no column {label!r} (data.label_column); its columns start "
                        f"{columns[:5]}.")
    pixels = table.drop(columns=[label])
    shape = shape or _image_shape(pixels.shape[1], data, path)
    if math.prod(shape) != pixels.shape[1]:
        raise DataError(f"{path} has {pixels.shape[1]} pixel columns, but the other files have {math.prod(shape)}; "
                        "every file needs the same columns.")
    values = pixels.to_numpy()
    if values.dtype == object:
        row, col = next(((r, c) for r, c in zip(*np.nonzero(~pixels.map(_is_number_cell).to_numpy()))), (0, 0))
        raise DataError(f"{path}: row {table.index[row] + 1}, column {pixels.columns[col]!r} holds {values[row, col]!r}, not a "
                        "pixel value (0-255).")
    missing = np.isnan(values).any(1) if values.dtype.kind == "f" else np.zeros(len(values), bool)
    missing |= table[label].isna().to_numpy()
    left_out = int(missing.sum()) if data.skip_bad else 0
    if left_out:  # short rows, empty cells, no label: left out (data.skip_bad)
        table, values = table[~missing], values[~missing]
    elif missing.any() and table[label].isna().to_numpy().any():
        row = int(np.nonzero(table[label].isna().to_numpy())[0][0])
        raise DataError(f"{path}: row {table.index[row] + 1} has no label in column {label!r}; every row needs one "
                        "(data.skip_bad=true leaves such rows out).")
    elif missing.any():
        row = int(np.nonzero(missing)[0][0])
        raise DataError(f"{path}: row {table.index[row] + 1} has {int((~np.isnan(values[row])).sum())} pixels, expected "
                        f"{values.shape[1]} (an empty cell or a short row); every row needs a label and "
                        f"{values.shape[1]} pixels (data.skip_bad=true leaves such rows out).")
    images = pixels_uint8(values, f"{path}").reshape(len(values), *shape)
    return images, table[label].to_numpy(), shape, left_out


def _is_number_cell(value) -> bool:
    return isinstance(value, (int, float, np.number)) or (isinstance(value, str) and _is_number(value))


def _class_index(raw: dict[str, np.ndarray], path: Path, given: list[str] | None):
    """Labels as class indices: integers as they are; names sorted into classes (their order, the names)."""
    every = np.concatenate(list(raw.values()))
    if every.dtype.kind in "iu" or (every.dtype.kind == "f" and np.all(every == np.round(every))):
        return {s: r.astype(np.int64) for s, r in raw.items()}, given, "data.label_names" if given else "indices"
    names = given or sorted({str(v) for v in every})
    index = {name: i for i, name in enumerate(names)}
    unknown = sorted({str(v) for v in every} - set(index))
    if unknown:
        raise DataError(f"{path} has the label {unknown[0]!r}, which data.label_names does not name.")
    return ({s: np.array([index[str(v)] for v in r], dtype=np.int64) for s, r in raw.items()}, names,
            "data.label_names" if given else "the label column's values, sorted")


def csv_source(data: DataConfig, cache_root: Path) -> SourceData:
    """A CSV of pixels (label, pixel0, ...): train.csv and test.csv in data.path, or one file."""
    path = data_path(data, "csv", "a CSV file of pixels, or a folder with train.csv and test.csv")
    if path.is_dir():
        files = {split: path / name for split, name in CSV_FILES.items() if (path / name).is_file()}
        if "train" not in files:
            raise DataError(f"{path} has no train.csv: data.source=csv reads train.csv and test.csv (and val.csv) "
                            "from a folder, or one CSV file given as data.path.")
    else:
        files = {"train": path}
    shaping = Shaping.of(data)

    def build():
        raw, images, shape, skipped = {}, {}, None, 0
        for split, file in files.items():
            table, long_rows = _read_csv(file, data.skip_bad)
            skipped += long_rows
            split_column = data.split_column or ("split" if "split" in table.columns and len(files) == 1 else None)
            if split_column:
                if split_column not in table.columns:
                    raise DataError(f"{file} has no column {split_column!r} (data.split_column).")
                for value, part in table.groupby(table[split_column].astype(str).str.lower(), sort=False):
                    role = SPLIT_NAMES.get(value)
                    if role is None:
                        raise DataError(f"{file}: the split column {split_column!r} holds {value!r}; use train, test "
                                        "or val.")
                    images[role], raw[role], shape, left_out = _table_split(part.drop(columns=[split_column]), file,
                                                                            data, shape)
                    skipped += left_out
            else:
                images[split], raw[split], shape, left_out = _table_split(table, file, data, shape)
                skipped += left_out
        if "train" not in images:
            raise DataError(f"{path} has no training rows (the split column names none 'train').")
        labels, names, names_from = _class_index(raw, path, data.label_names and list(data.label_names))
        splits = {s: (_flatten_alpha(images[s], shaping.background), labels[s]) for s in images}
        tensors, meta = _finish(splits, data, names, str(path))
        meta.update(label_names=names, label_names_from=names_from, skipped=skipped)
        return tensors, meta

    parts = ["csv-1", *(f"{s}:{_file_digest(f)}" for s, f in files.items()), shaping.key(), str(data.label_column),
             str(data.split_column), str(data.image_shape), f"{data.test_size}", f"{data.split_seed}",
             str(data.label_names), str(data.skip_bad)]
    tensors, meta, cache_path = _cached("csv", parts, cache_root, build)
    return _source_data("csv", "csv", path, tensors, meta, meta.get("label_names"),
                        meta.get("label_names_from") or "indices", cache_path, data)
