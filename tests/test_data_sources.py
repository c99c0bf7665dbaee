"""Data as people keep it: a folder of image files per class, a CSV of pixels, NumPy arrays. The real images are
scikit-learn's 8x8 handwritten digits (1,797 of them, shipped with the package) written by the test in each form,
and real MNIST written as PNG files; the synthetic ones cover colour, odd sizes and every kind of bad file."""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import is_real_mnist
from tinyhub import trainer
from tinyhub.trainer.data import DataError, load_dataset_splits


@pytest.fixture(scope="module")
def digits():
    """The 8x8 digits as 8-bit pixels (their 0-16 levels scaled to 0-255) and their labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return np.rint(d.images * 255 / 16).astype(np.uint8), d.target.astype(np.int64)


def _write_folder(root: Path, images, labels, split: str | None = None) -> Path:
    for i, (image, label) in enumerate(zip(images, labels)):
        folder = root / (split or "") / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:04d}.png")
    return root


def _write_csv(path: Path, images, labels, header=True, extra_columns=None) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        pixels = images.reshape(len(images), -1)
        if header:
            writer.writerow(["label", *[f"pixel{i}" for i in range(pixels.shape[1])], *(extra_columns or {})])
        for i, (row, label) in enumerate(zip(pixels, labels)):
            writer.writerow([label, *row.tolist(), *(values[i] for values in (extra_columns or {}).values())])
    return path


@pytest.fixture(scope="module")
def digit_forms(digits, tmp_path_factory):
    """The same 1,797 digits as a PNG folder, a CSV and an npz, none with a test split."""
    images, labels = digits
    root = tmp_path_factory.mktemp("digits")
    np.savez(root / "digits.npz", x_train=images, y_train=labels)
    return {"folder": _write_folder(root / "folder", images, labels),
            "csv": _write_csv(root / "digits.csv", images, labels),
            "npz": root / "digits.npz"}


def _load(source, path, tmp_path, **options):
    return load_dataset_splits(source=source, path=str(path), cache_dir=str(tmp_path / "cache"), name="digits",
                               **options)


def test_the_digits_as_a_folder_a_csv_and_an_npz_are_the_same_data(digit_forms, digits, tmp_path):
    """Each form gives the same images, the same classes, the same carved test split and the same fingerprint:
    the order files or rows are read in plays no part."""
    loaded = {source: _load(source, path, tmp_path) for source, path in digit_forms.items()}
    fingerprints = {s.source["fingerprint"] for s in loaded.values()}
    assert len(fingerprints) == 1
    counts = [s.source["class_counts"] for s in loaded.values()]
    assert counts[0] == counts[1] == counts[2]
    folder = loaded["folder"]
    assert folder.image_shape == (1, 8, 8) and folder.label_names == [str(i) for i in range(10)]
    carved = folder.source["carved_test"]
    assert carved["images"] == len(folder.test_labels) == 359 and carved["of"] == 1797 and carved["stratified"]
    assert {s.source["carved_test"]["sha256"] for s in loaded.values()} == {carved["sha256"]}
    # stratified: every class keeps the share of the whole (1,797 -> 359 is 20%)
    per_class = np.bincount(digits[1], minlength=10)
    assert all(abs(t - round(n * 0.2)) <= 1 for t, n in zip(counts[0]["test"], per_class))
    # another split seed, another split; nothing else moves
    other = _load("npz", digit_forms["npz"], tmp_path, split_seed=1)
    assert other.source["carved_test"]["sha256"] != carved["sha256"]
    assert other.source["class_counts"] == counts[0]


def test_a_second_load_comes_from_the_cache_keyed_by_content_and_options(digit_forms, tmp_path):
    first = _load("folder", digit_forms["folder"], tmp_path)
    again = _load("folder", digit_forms["folder"], tmp_path)
    assert again.source["cache_file"] == first.source["cache_file"]
    resized = _load("folder", digit_forms["folder"], tmp_path, image_size=16)
    assert resized.source["cache_file"] != first.source["cache_file"] and resized.image_shape == (1, 16, 16)
    assert resized.source["decoding"] == "bilinear, to 16x16"
    # a file changed in place is read again
    victim = next(Path(digit_forms["folder"], "3").glob("*.png"))
    kept = victim.read_bytes()
    try:
        Image.fromarray(np.full((8, 8), 255, np.uint8)).save(victim)
        changed = _load("folder", digit_forms["folder"], tmp_path)
        assert changed.source["cache_file"] != first.source["cache_file"]
        assert changed.source["fingerprint"] != first.source["fingerprint"]
    finally:
        victim.write_bytes(kept)


@pytest.mark.parametrize("source", ["folder", "csv", "npz"])
def test_train_on_each_source_and_the_card_says_what_was_trained_on(source, digit_forms, tmp_path, monkeypatch):
    """`tinyhub train data.source=... data.path=...` trains; the record and the card give the source, the carved
    test split, the resizing and each class's images and accuracy."""
    from tinyhub.commands import push as push_command
    from tinyhub.commands import train as train_command
    from tinyhub.trainer.record import load_run

    run = tmp_path / "run"
    code = train_command.main(["model=gap2k", f"data.source={source}", f"data.path={digit_forms[source]}",
                               "data.name=sklearn-digits", "data.image_size=16", "training.epochs=2",
                               "progress=false", "report_to=none", "training.checkpoint_every=0", f"run.dir={run}",
                               f"data.cache_dir={tmp_path / 'cache'}"])
    assert code == 0
    record = load_run(run)
    assert record.data.kind == source and record.data.decoding == "bilinear, to 16x16"
    assert record.data.carved_test.images == 359 and record.data.class_counts["test"][0] == 36
    assert record.dataset.name == "sklearn-digits" and record.dataset.canonical is None
    assert "data.path" not in " ".join(record.overrides)  # where the files are is this machine's, not the recipe
    figures = record.per_class()
    assert [c.label for c in figures] == [str(i) for i in range(10)] and sum(c.test for c in figures) == 359
    assert sum(c.correct for c in figures) == record.final.test_correct

    from tinyhub.commands import evaluate as evaluate_command

    assert evaluate_command.main([str(run)]) == 0  # the same test split, read and decoded the same way again
    assert json.loads((run / "eval" / "eval_test.json").read_text())["correct"] == record.final.test_correct

    stage = tmp_path / "stage"
    assert push_command.main([str(run), "--repo-id", "someone/digits-gap2k", "--dry-run", str(stage)]) == 0
    card = (stage / "README.md").read_text()
    assert "| Test split | 359 of the 1,797 images carved out" in card
    assert "| Pixels | bilinear, to 16x16 |" in card
    assert "| class | training images | test images | test accuracy % |" in card
    assert "data.path=/path/to/sklearn-digits" in card
    assert "data.source=" + source in card
    report = (run / "report.html").read_text()
    assert 'id="per-class"' in report


@pytest.mark.e2e  # 70,000 PNG files written and decoded: half a minute
def test_mnist_written_as_png_files_is_recognised_as_mnist(mnist_dir, tmp_path):
    """Canonical MNIST as train/ and test/ folders of PNG files, and as an npz: the same content, so MNIST."""
    if not is_real_mnist(mnist_dir):
        pytest.skip("needs the real MNIST files (TINYHUB_TEST_DATA or ../shared/data/mnist)")
    idx = load_dataset_splits(source="local", dir=str(mnist_dir), cache_dir=str(tmp_path / "cache"))
    root = tmp_path / "mnist-png"
    _write_folder(root, idx.train_images[:, 0].numpy(), idx.train_labels.tolist(), "train")
    _write_folder(root, idx.test_images[:, 0].numpy(), idx.test_labels.tolist(), "test")
    folder = load_dataset_splits(source="folder", path=str(root), cache_dir=str(tmp_path / "cache"))
    assert folder.source["identity"]["canonical"] == "mnist" and folder.source["name"] == "MNIST"
    assert folder.source["fingerprint"] == idx.source["fingerprint"] and folder.source["carved_test"] is None
    from tinyhub.commands import push as push_command
    from tinyhub.commands import train as train_command

    run = tmp_path / "run"
    assert train_command.main(["model=gap2k", "data.source=folder", f"data.path={root}", "data.subset=2000",
                               "training.epochs=1", "progress=false", "report_to=none", f"run.dir={run}",
                               "training.checkpoint_every=0", f"data.cache_dir={tmp_path / 'cache'}"]) == 0
    assert push_command.main([str(run), "--repo-id", "someone/mnist-gap2k", "--dry-run", str(tmp_path / "stage")]) == 0
    card = (tmp_path / "stage" / "README.md").read_text()
    assert "- mnist" in card and "from a folder of image files, one folder per class, every image and label " \
        "canonical MNIST's" in card
    np.savez(tmp_path / "mnist.npz", x_train=idx.train_images[:, 0].numpy(), y_train=idx.train_labels.numpy(),
             x_test=idx.test_images[:, 0].numpy(), y_test=idx.test_labels.numpy())
    arrays = load_dataset_splits(source="npz", path=str(tmp_path / "mnist.npz"), cache_dir=str(tmp_path / "cache"))
    assert arrays.source["name"] == "MNIST"
    with pytest.raises(DataError, match="kept for MNIST"):  # the name MNIST is kept for MNIST's content
        load_dataset_splits(source="npz", path=str(tmp_path / "mnist.npz"), name="MNIST", subset=0,
                            cache_dir=str(tmp_path / "cache"), image_size=14)


# ---------------------------------------------------------------------------------------------------------
# Colour, sizes and shapes
# ---------------------------------------------------------------------------------------------------------
def _synthetic_folder(root: Path, sizes=((10, 10),), mode="RGB", per_class=6) -> Path:
    rng = np.random.default_rng(0)
    for c in range(2):
        (root / f"class{c}").mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            h, w = sizes[i % len(sizes)]
            channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
            pixels = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
            Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode).save(root / f"class{c}/{i}.png")
    return root


def test_colour_images_stay_rgb_or_become_grayscale_as_declared(tmp_path):
    root = _synthetic_folder(tmp_path / "rgb")
    rgb = load_dataset_splits(source="folder", path=str(root), name="colours", cache_dir=str(tmp_path / "c"),
                              test_size=0.5)
    assert rgb.image_shape == (3, 10, 10)
    gray = load_dataset_splits(source="folder", path=str(root), name="colours", cache_dir=str(tmp_path / "c"),
                               test_size=0.5, channels=1)
    assert gray.image_shape == (1, 10, 10) and "grayscale" in gray.source["decoding"]
    rgba = _synthetic_folder(tmp_path / "rgba", mode="RGBA")
    flat = load_dataset_splits(source="folder", path=str(rgba), name="colours", cache_dir=str(tmp_path / "c"),
                               test_size=0.5, background=255)
    assert flat.image_shape == (3, 10, 10)


def test_every_image_format_and_mode_people_keep(tmp_path):
    """PNG, JPEG, BMP, WebP, GIF (its first frame) and TIFF; grayscale, palette, RGB and 16-bit: all read."""
    rng = np.random.default_rng(1)
    root = tmp_path / "formats"
    for c in range(2):
        (root / str(c)).mkdir(parents=True)
        gray = Image.fromarray(rng.integers(0, 256, (12, 12), dtype=np.uint8))
        gray.save(root / str(c) / "a.png")
        gray.save(root / str(c) / "b.jpg")
        gray.save(root / str(c) / "c.bmp")
        gray.save(root / str(c) / "d.webp", lossless=True)
        gray.save(root / str(c) / "e.tiff")
        frames = [gray, Image.new("L", (12, 12), 255)]
        frames[0].save(root / str(c) / "f.gif", save_all=True, append_images=frames[1:])
        gray.convert("P").save(root / str(c) / "g.png")
        Image.fromarray(rng.integers(0, 65536, (12, 12), dtype=np.uint16)).save(root / str(c) / "h.png")
    loaded = load_dataset_splits(source="folder", path=str(root), name="formats", cache_dir=str(tmp_path / "c"),
                                 test_size=0.25)
    assert loaded.image_shape == (1, 12, 12) and len(loaded.train_labels) + len(loaded.test_labels) == 16
    from tinyhub.trainer.data.images import decode_image

    first = np.asarray(Image.open(root / "0" / "a.png"))[:, :, None]
    assert np.array_equal(decode_image(root / "0" / "f.gif", 0), first)  # the first frame, not the white second
    assert np.array_equal(decode_image(root / "0" / "d.webp", 0), first)


def test_mixed_sizes_are_refused_naming_two_files_unless_resized(tmp_path):
    root = _synthetic_folder(tmp_path / "mixed", sizes=((10, 10), (12, 12)), mode="L")
    with pytest.raises(DataError) as refused:
        load_dataset_splits(source="folder", path=str(root), name="sizes", cache_dir=str(tmp_path / "c"))
    message = str(refused.value)
    assert "10x10" in message and "12x12" in message and message.count(".png") == 2 and "data.image_size" in message
    resized = load_dataset_splits(source="folder", path=str(root), name="sizes", cache_dir=str(tmp_path / "c"),
                                  image_size=8)
    assert resized.image_shape == (1, 8, 8) and resized.source["decoding"] == "area, to 8x8"


def test_non_square_images_are_padded_or_stretched_as_declared(tmp_path):
    root = _synthetic_folder(tmp_path / "wide", sizes=((6, 10),), mode="L")
    padded = load_dataset_splits(source="folder", path=str(root), name="wide", cache_dir=str(tmp_path / "c"),
                                 background=7)
    assert padded.image_shape == (1, 10, 10)
    assert (padded.train_images[:, :, :2] == 7).all()  # two rows of background above, two below
    stretched = load_dataset_splits(source="folder", path=str(root), name="wide", cache_dir=str(tmp_path / "c"),
                                    non_square="resize")
    assert stretched.image_shape == (1, 10, 10) and "padded" not in (stretched.source["decoding"] or "")


def test_a_csv_with_a_split_column_and_string_labels(digits, tmp_path):
    images, labels = digits
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    split = np.where(np.arange(len(labels)) % 5 == 0, "test", "train")
    path = _write_csv(tmp_path / "digits.csv", images, names[labels], extra_columns={"split": split})
    loaded = load_dataset_splits(source="csv", path=str(path), name="digits", cache_dir=str(tmp_path / "c"))
    assert loaded.label_names == sorted(names.tolist()) and loaded.source["carved_test"] is None
    assert len(loaded.test_labels) == int((split == "test").sum())


def test_npz_in_nchw_and_floats_in_0_255(digits, tmp_path):
    images, labels = digits
    path = tmp_path / "nchw.npz"
    np.savez(path, x_train=images[:1500, None].astype(np.float32), y_train=labels[:1500],
             x_test=images[1500:, None].astype(np.float32), y_test=labels[1500:])
    loaded = load_dataset_splits(source="npz", path=str(path), name="digits", cache_dir=str(tmp_path / "c"))
    assert loaded.image_shape == (1, 8, 8) and len(loaded.test_labels) == 297
    assert np.array_equal(loaded.train_images[:, 0].numpy(), images[:1500])


# ---------------------------------------------------------------------------------------------------------
# Bad files: one line naming the file (or row) and the fix, before training; data.skip_bad leaves them out
# ---------------------------------------------------------------------------------------------------------
def _one_line(error) -> str:
    text = str(error)
    assert "\n" not in text and "Traceback" not in text
    return text


@pytest.mark.parametrize("damage", ["corrupt", "truncated", "empty"])
def test_an_unreadable_image_is_named_or_skipped(damage, tmp_path):
    root = _synthetic_folder(tmp_path / "bad", mode="L")
    victim = root / "class1" / "2.png"
    data = victim.read_bytes()
    victim.write_bytes({"corrupt": b"not a png at all" * 4, "truncated": data[: len(data) // 2], "empty": b""}[damage])
    with pytest.raises(DataError) as refused:
        load_dataset_splits(source="folder", path=str(root), name="bad", cache_dir=str(tmp_path / "c"))
    message = _one_line(refused.value)
    assert str(victim) in message and "data.skip_bad=true" in message
    kept = load_dataset_splits(source="folder", path=str(root), name="bad", cache_dir=str(tmp_path / "c"),
                               skip_bad=True, test_size=0.5)
    assert kept.source["skipped"] == 1 and len(kept.train_labels) + len(kept.test_labels) == 11


def test_an_image_that_declares_too_many_pixels_is_refused_before_it_is_decoded(tmp_path, monkeypatch):
    """A few kilobytes of PNG declaring 13,000 x 13,000 pixels: refused from its header, never decoded."""
    import PIL.ImageFile

    root = _synthetic_folder(tmp_path / "bomb", mode="L")
    Image.new("1", (13_000, 13_000)).save(root / "class0" / "bomb.png", optimize=True)
    assert (root / "class0" / "bomb.png").stat().st_size < 100_000
    decoded = []
    real_load = PIL.ImageFile.ImageFile.load
    monkeypatch.setattr(PIL.ImageFile.ImageFile, "load",
                        lambda self: decoded.append(self.size) or real_load(self))
    with pytest.raises(DataError) as refused:
        load_dataset_splits(source="folder", path=str(root), name="bomb", cache_dir=str(tmp_path / "c"))
    assert "bomb.png declares 13,000 x 13,000 pixels" in _one_line(refused.value)
    assert (13_000, 13_000) not in decoded


def test_a_link_out_of_the_folder_and_an_empty_class_folder(tmp_path):
    root = _synthetic_folder(tmp_path / "links", mode="L")
    outside = tmp_path / "secret.png"
    Image.new("L", (10, 10)).save(outside)
    (root / "class0" / "escape.png").symlink_to(outside)
    with pytest.raises(DataError) as refused:
        load_dataset_splits(source="folder", path=str(root), name="links", cache_dir=str(tmp_path / "c"))
    assert "escape.png is a link to" in _one_line(refused.value) and "outside the data folder" in str(refused.value)
    (root / "class0" / "escape.png").unlink()
    (root / "class2").mkdir()
    with pytest.raises(DataError) as refused:
        load_dataset_splits(source="folder", path=str(root), name="links", cache_dir=str(tmp_path / "c"))
    assert "class2 has no images" in _one_line(refused.value)
    kept = load_dataset_splits(source="folder", path=str(root), name="links", cache_dir=str(tmp_path / "c"),
                               skip_bad=True, test_size=0.5)
    assert kept.label_names == ["class0", "class1"] and kept.source["skipped"] == 1


def test_a_csv_row_with_the_wrong_number_of_pixels_is_named(digits, tmp_path):
    images, labels = digits
    path = _write_csv(tmp_path / "short.csv", images[:50], labels[:50])
    lines = path.read_text().splitlines()
    lines[8] = lines[8].rsplit(",", 1)[0]  # row 8 loses its last pixel
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as refused:
        load_dataset_splits(source="csv", path=str(path), name="d", cache_dir=str(tmp_path / "c"))
    assert "row 8 has 63 pixels, expected 64" in _one_line(refused.value)
    lines[8] = lines[9] + ",7"  # and now one too many
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as refused:
        load_dataset_splits(source="csv", path=str(path), name="d", cache_dir=str(tmp_path / "c"))
    assert "row 8 has 66 values" in _one_line(refused.value)
    lines[20] = lines[20].rsplit(",", 3)[0]  # and row 20 is short
    path.write_text("\n".join(lines) + "\n")
    kept = load_dataset_splits(source="csv", path=str(path), name="d", cache_dir=str(tmp_path / "c"), skip_bad=True,
                               label_names=[str(i) for i in range(10)])
    assert kept.source["skipped"] == 2 and len(kept.train_labels) + len(kept.test_labels) == 48


def test_a_label_outside_the_classes_is_named(digits, tmp_path):
    images, labels = digits
    path = tmp_path / "labels.npz"
    bad = labels[:300].copy()
    bad[5] = 12
    np.savez(path, x_train=images[:300], y_train=bad, x_test=images[300:400], y_test=labels[300:400])
    with pytest.raises(DataError) as refused:
        load_dataset_splits(source="npz", path=str(path), name="d", cache_dir=str(tmp_path / "c"),
                            label_names=[str(i) for i in range(10)])
    assert "label 12" in _one_line(refused.value)


def test_an_npz_with_pickled_objects_is_never_unpickled(tmp_path):
    path = tmp_path / "pickled.npz"
    np.savez(path, x_train=np.array([{"a": 1}], dtype=object), y_train=np.array([0]))
    with pytest.raises(DataError) as refused:
        load_dataset_splits(source="npz", path=str(path), name="d", cache_dir=str(tmp_path / "c"))
    assert "pickled" in _one_line(refused.value)
    with zipfile.ZipFile(tmp_path / "broken.npz", "w") as z:
        z.writestr("x_train.npy", b"garbage")
    with pytest.raises(DataError):
        load_dataset_splits(source="npz", path=str(tmp_path / "broken.npz"), name="d", cache_dir=str(tmp_path / "c"))


def test_the_new_settings_are_declared_and_refused_out_of_range():
    with pytest.raises(trainer.ConfigError, match="data.channels=2"):
        trainer.load_config(["model=gap2k", "data.channels=2"])
    with pytest.raises(trainer.ConfigError, match="data.non_square"):
        trainer.load_config(["model=gap2k", "data.non_square=crop"])
    with pytest.raises(trainer.ConfigError, match="data.background"):
        trainer.load_config(["model=gap2k", "data.background=300"])
    cfg = trainer.load_config(["model=gap2k", "data.source=folder", "data.path=/somewhere"])
    assert cfg.data.source == "folder" and json.dumps(cfg.data.test_size) == "0.2"


def test_the_command_line_says_a_bad_file_in_one_error_line_before_training(tmp_path, capsys):
    from tinyhub.commands import train as train_command

    root = _synthetic_folder(tmp_path / "bad", mode="L", per_class=8)
    (root / "class0" / "3.png").write_bytes(b"")
    code = train_command.main(["model=gap2k", "data.source=folder", f"data.path={root}", "data.name=bad",
                               "data.image_size=12", "progress=false", "report_to=none", f"run.dir={tmp_path / 'run'}",
                               f"data.cache_dir={tmp_path / 'c'}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and not (tmp_path / "run" / "results.json").exists()
    assert len(err) == 1 and err[0].startswith("error: ") and "3.png" in err[0] and "data.skip_bad=true" in err[0]
    # the same with data.skip_bad=true: trained without the file, and the card says so
    from tinyhub.commands import push as push_command

    assert train_command.main(["model=gap2k", "data.source=folder", f"data.path={root}", "data.name=bad",
                               "data.image_size=12", "data.skip_bad=true", "data.test_size=0.25", "training.epochs=1",
                               "progress=false", "report_to=none", f"run.dir={tmp_path / 'run'}",
                               f"data.cache_dir={tmp_path / 'c'}"]) == 0
    assert push_command.main([str(tmp_path / "run"), "--repo-id", "someone/bad", "--dry-run",
                              str(tmp_path / "stage")]) == 0
    assert "| Left out | 1 unreadable or bad file(s) or row(s) (data.skip_bad=true) |" in \
        (tmp_path / "stage" / "README.md").read_text()
