"""Data sources, cache, validation split, and every bad-input case with its message."""

import gzip
import os
import shutil
import subprocess
import sys

import pytest
import torch

from tinyhub.trainer import DataError, load_dataset_splits
from tinyhub.trainer import data as data_mod
from tinyhub.trainer.data import idx as idx_module
from conftest import is_real_mnist


def _copy(src, dst):
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.glob("*-ubyte.gz"):
        shutil.copy(f, dst / f.name)
    return dst


def test_local_idx_loads_whole_splits_as_uint8(mnist_dir, tmp_path):
    s = load_dataset_splits(dir=str(mnist_dir), cache_dir=str(tmp_path))
    assert s.train_images.dtype == torch.uint8 and s.train_images.shape[1:] == (1, 28, 28)
    assert s.test_labels.dtype == torch.int64 and len(s.test_labels) == 10_000
    assert s.label_names == [str(i) for i in range(10)]
    assert s.source["kind"] == "local" and s.source["test_size"] == 10_000


def test_canonical_mnist_is_verified(mnist_dir, tmp_path):
    if not is_real_mnist(mnist_dir):
        pytest.skip("synthetic stand-in data: the canonical checksums only apply to real MNIST")
    s = load_dataset_splits(dir=str(mnist_dir), cache_dir=str(tmp_path), name="mnist")
    assert s.source["canonical_mnist"] is True
    assert s.source["sha256"]["train-images-idx3-ubyte.gz"] == data_mod.MNIST_SHA256["train-images-idx3-ubyte.gz"]


def test_raw_and_torchvision_layouts(mnist_dir, tmp_path):
    raw = tmp_path / "tv" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in mnist_dir.glob("*-ubyte.gz"):
        (raw / f.name[:-3]).write_bytes(gzip.decompress(f.read_bytes()))
    a = load_dataset_splits(dir=str(tmp_path / "tv"), cache_dir=str(tmp_path / "c1"))
    b = load_dataset_splits(dir=str(mnist_dir), cache_dir=str(tmp_path / "c2"))
    assert torch.equal(a.test_images, b.test_images) and torch.equal(a.train_labels, b.train_labels)


def test_cache_is_reused_and_fast(mnist_dir, tmp_path, monkeypatch):
    first = load_dataset_splits(dir=str(mnist_dir), cache_dir=str(tmp_path))
    cache_files = list(tmp_path.glob("*.safetensors"))
    assert len(cache_files) == 1 and not list(tmp_path.glob("*.tmp"))

    def no_decoding(*a, **k):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(idx_module, "_decode_local", no_decoding)
    second = load_dataset_splits(dir=str(mnist_dir), cache_dir=str(tmp_path))  # read back, not decoded again
    assert torch.equal(first.train_images, second.train_images)
    assert torch.equal(first.test_labels, second.test_labels)


def test_corrupt_cache_is_rebuilt_not_trusted(mnist_dir, tmp_path):
    load_dataset_splits(dir=str(mnist_dir), cache_dir=str(tmp_path))
    cache = next(tmp_path.glob("*.safetensors"))
    cache.write_bytes(b"garbage")
    s = load_dataset_splits(dir=str(mnist_dir), cache_dir=str(tmp_path))
    assert len(s.test_labels) == 10_000


def test_validation_split_is_carved_from_train(mnist_dir, tmp_path):
    full = load_dataset_splits(dir=str(mnist_dir), cache_dir=str(tmp_path))
    s = load_dataset_splits(dir=str(mnist_dir), cache_dir=str(tmp_path), val_size=500)
    assert len(s.val_labels) == 500 and len(s.train_labels) == len(full.train_labels) - 500
    assert torch.equal(s.test_images, full.test_images)  # the test split is untouched
    again = load_dataset_splits(dir=str(mnist_dir), cache_dir=str(tmp_path), val_size=500)
    assert torch.equal(again.val_images, s.val_images)


def test_hub_dataset_saved_to_disk(mnist_dir, tmp_path):
    datasets = pytest.importorskip("datasets")
    import numpy as np

    local = load_dataset_splits(dir=str(mnist_dir), cache_dir=str(tmp_path / "c"))
    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=names)})

    def part(images, labels, n):
        return datasets.Dataset.from_dict(
            {"image": [np.asarray(im[0]) for im in images[:n].numpy()], "label": labels[:n].tolist()},
            features=features)

    dd = datasets.DatasetDict(train=part(local.train_images, local.train_labels, 300),
                              test=part(local.test_images, local.test_labels, 200))
    dd.save_to_disk(tmp_path / "hubds")
    s = load_dataset_splits(source="hub", dataset=str(tmp_path / "hubds"), cache_dir=str(tmp_path / "c"))
    assert s.label_names == names
    assert torch.equal(s.train_images, local.train_images[:300])
    assert torch.equal(s.test_labels, local.test_labels[:200])
    assert s.source["kind"] == "hub"


def test_offline_without_local_data_explains_how_to_point_at_files(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("TINYHUB_DATA_DIR", raising=False)
    with pytest.raises(DataError, match=r"--data-dir /path/to/mnist"):
        load_dataset_splits(source="auto", dataset="ylecun/mnist", cache_dir=str(tmp_path))


def test_missing_file_is_named(mnist_dir, tmp_path):
    d = _copy(mnist_dir, tmp_path / "d")
    (d / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="no t10k-labels-idx1-ubyte"):
        load_dataset_splits(dir=str(d), cache_dir=str(tmp_path / "c"))


def test_truncated_gzip_is_named_and_nothing_is_cached(mnist_dir, tmp_path):
    d = _copy(mnist_dir, tmp_path / "d")
    f = d / "train-labels-idx1-ubyte.gz"
    blob = f.read_bytes()
    f.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz"):
        load_dataset_splits(dir=str(d), cache_dir=str(tmp_path / "c"), verify=False)
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").iterdir())


def test_truncated_raw_file_is_named(mnist_dir, tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    for f in mnist_dir.glob("*-ubyte.gz"):
        (d / f.name[:-3]).write_bytes(gzip.decompress(f.read_bytes()))
    raw = d / "t10k-images-idx3-ubyte"
    raw.write_bytes(raw.read_bytes()[:-784])
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte is truncated or padded"):
        load_dataset_splits(dir=str(d), cache_dir=str(tmp_path / "c"), name="custom")


def test_checksum_mismatch_names_the_file(mnist_dir, tmp_path):
    if not is_real_mnist(mnist_dir):
        pytest.skip("needs the real MNIST files: the test tampers with one canonical file")
    d = tmp_path / "d"
    d.mkdir()
    for f in mnist_dir.glob("*-ubyte.gz"):
        (d / f.name[:-3]).write_bytes(gzip.decompress(f.read_bytes()))
    labels = d / "train-labels-idx1-ubyte"
    blob = bytearray(labels.read_bytes())
    blob[100] = (blob[100] + 1) % 10  # still a valid IDX file, but not canonical MNIST
    labels.write_bytes(bytes(blob))
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte does not match the canonical MNIST checksum"):
        load_dataset_splits(dir=str(d), cache_dir=str(tmp_path / "c"), name="mnist")
    # Declared as another dataset, the same files load.
    s = load_dataset_splits(dir=str(d), cache_dir=str(tmp_path / "c"), name="my-digits")
    assert s.source["canonical_mnist"] is False


def test_wrong_header_and_mismatched_counts(mnist_dir, tmp_path):
    d = _copy(mnist_dir, tmp_path / "d")
    # labels file where an images file should be
    shutil.copy(d / "t10k-labels-idx1-ubyte.gz", d / "t10k-images-idx3-ubyte.gz")
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.gz is not an unsigned-byte IDX file with 3"):
        load_dataset_splits(dir=str(d), cache_dir=str(tmp_path / "c"), name="x")
    d2 = _copy(mnist_dir, tmp_path / "d2")
    shutil.copy(d2 / "train-labels-idx1-ubyte.gz", d2 / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(DataError, match="do not belong together"):
        load_dataset_splits(dir=str(d2), cache_dir=str(tmp_path / "c"), name="x")


def test_cache_missing_a_tensor_is_rebuilt_not_trusted(mnist_dir, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    full = load_dataset_splits(dir=str(mnist_dir), cache_dir=str(tmp_path))
    cache = next(tmp_path.glob("*.safetensors"))
    with safe_open(str(cache), "pt") as f:
        meta = f.metadata()
    tensors = load_file(cache)
    del tensors["test_labels"]
    save_file(tensors, str(cache), metadata=meta)  # readable, right format, one tensor short
    again = load_dataset_splits(dir=str(mnist_dir), cache_dir=str(tmp_path))
    assert torch.equal(again.test_labels, full.test_labels)
    assert "test_labels" in load_file(cache)  # and the cache was written again, whole


@pytest.mark.e2e
def test_a_killed_cache_write_leaves_nothing_behind(mnist_dir, tmp_path):
    load_dataset_splits(dir=str(mnist_dir), cache_dir=str(tmp_path))
    cache = next(tmp_path.glob("*.safetensors"))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()  # a process that has ended
    leftover = cache.with_name(f"{cache.name}.{dead}.tmp")
    leftover.write_bytes(b"\0" * 1024)  # what a write killed half-way leaves
    live = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")  # a write in progress (this process) stays
    live.write_bytes(b"")
    load_dataset_splits(dir=str(mnist_dir), cache_dir=str(tmp_path))
    assert not leftover.exists() and live.exists()


@pytest.mark.e2e
def test_without_network_training_fails_with_one_message(tmp_path):
    import os

    from conftest import FAST, run_cli

    env = {"HF_ENDPOINT": "https://hub.tinyhub-test.invalid", "HF_HOME": str(tmp_path / "hf"),
           "TINYHUB_CACHE": str(tmp_path / "cache"), "TINYHUB_DATA_DIR": ""}
    r = run_cli("train", "model=opt6k", *[a for a in FAST if not a.startswith("data.dir")],
                f"run.dir={tmp_path / 'run'}", env_extra=env)
    assert r.returncode == 1, r.stderr[-2000:]
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot be reached" in lines[0] and "--data-dir" in lines[0], r.stderr[-2000:]
    assert "HF_HUB_OFFLINE=1" in lines[0] and "Traceback" not in r.stderr
    assert not (tmp_path / "run").exists() and os.environ.get("HF_ENDPOINT") != env["HF_ENDPOINT"]


def test_a_hub_that_cannot_be_reached_is_tried_once_without_back_off(monkeypatch, tmp_path):
    """No network: one connection attempt, then one error; huggingface_hub's five retries and their waits are for
    answers such as 429 and 5xx, not for a missing network."""
    from huggingface_hub.utils import _http

    from tinyhub import modeling
    from tinyhub.utils import hub_http

    hub_http.use_hub_timeouts()
    monkeypatch.setattr(hub_http._breaker, "failed", {})  # what earlier tests of this process left
    httpx = hub_http._breaker.httpx  # the HTTP library huggingface_hub uses (httpx, or its httpx2)
    attempts, waits = [], []

    def refuse(self, request):
        attempts.append(str(request.url))
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", refuse)
    monkeypatch.setattr(_http.time, "sleep", waits.append)
    _http.close_session()
    with pytest.raises(Exception) as failed:
        modeling.from_pretrained("someone/tiny-model", cache_dir=tmp_path / "hf")
    _http.close_session()
    assert len(attempts) == 1 and waits == [], (attempts, waits)
    assert "cannot be reached" in hub_http.describe(failed.value) and "HF_HUB_OFFLINE=1" in hub_http.unreachable()


@pytest.mark.parametrize("split, value", [("train", 200), ("t10k", 10)])
def test_labels_out_of_range_are_refused_not_made_into_classes(tmp_path, split, value):
    from conftest import _write_idx, make_synthetic_idx
    import numpy as np

    folder = make_synthetic_idx(tmp_path / "data", n_train=300, n_test=100)
    labels = np.random.default_rng(0).integers(0, 10, 300 if split == "train" else 100)
    labels[5] = value  # one stray label
    _write_idx(folder / f"{split}-labels-idx1-ubyte.gz", labels)
    with pytest.raises(DataError, match=r"no training image|the test split has label 10"):
        load_dataset_splits(dir=str(folder), cache_dir=str(tmp_path / "c"), name="custom")
