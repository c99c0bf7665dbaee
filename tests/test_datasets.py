"""Any small image dataset, named honestly: identity, class names, statistics, shapes and splits come from the
data, and the card says exactly what the model was trained on. Synthetic data is made here; nothing is downloaded."""

import json
import shutil

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results

from tinyhub import cards, modeling, trainer
from tinyhub.trainer import data as data_mod
from tinyhub.trainer.data import hub as hub_module
from conftest import FAST, _write_idx, is_real_mnist, make_synthetic_idx, run_cli_many

TINY = [*FAST, "training.epochs=1", "data.subset=0", "data.eval_batch_size=500"]
SHAPE_NAMES = ["red square", "green disc with a rather long name", "blue bar"]


def _train(tmp_path, name, *overrides):
    cfg = trainer.load_config([*TINY, f"run.dir={tmp_path / name}", *overrides])
    return trainer.train(cfg)


def _card(run, **naming):
    card = cards.build_card(run, repo_id="me/tiny", **naming)
    parsed = ModelCard(card.content)
    _, evals = model_index_to_eval_results(parsed.data.to_dict()["model-index"])
    return parsed.data.to_dict(), evals[0], parsed.text


def _fashion_like_idx(folder, n_train=400, n_test=200, seed=1):
    """Ten classes of 28x28 stripes: another dataset in IDX files named like MNIST's."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n) % 10
        images = rng.integers(0, 40, (n, 28, 28))
        for i, y in enumerate(labels):
            images[i, 2 + 2 * y: 5 + 2 * y, 3:25] = 230
        _write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return folder


def _shapes_dataset(datasets, splits=("train", "validation", "test"), size=32, description=True):
    """Three classes of coloured 32x32 shapes as a DatasetDict with ClassLabel names and a DatasetInfo."""
    rng = np.random.default_rng(0)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=SHAPE_NAMES)})
    info = datasets.DatasetInfo(description="Coloured shapes for tests." if description else "",
                                citation="@misc{shapes, title={Shapes}}" if description else "",
                                license="cc0-1.0" if description else "", features=features)

    def part(n):
        labels = np.arange(n) % 3
        images = rng.integers(0, 60, (n, size, size, 3)).astype(np.uint8)
        for i, y in enumerate(labels):
            images[i, 8 + 4 * y: 16 + 4 * y, 6:26, y] = 250
        return datasets.Dataset.from_dict({"image": list(images), "label": labels.tolist()}, features=features,
                                          info=info)

    return datasets.DatasetDict({s: part(n) for s, n in zip(splits, (240, 60, 90))})


# ---------------------------------------------------------------------------------------------------------
# Statistics and identity
# ---------------------------------------------------------------------------------------------------------
def test_mnist_identity_names_and_statistics_come_from_the_files(mnist_dir, tmp_path):
    if not is_real_mnist(mnist_dir):
        pytest.skip("needs the real MNIST files (../shared/data/mnist)")
    s = trainer.load_dataset_splits(dir=str(mnist_dir), cache_dir=str(tmp_path))
    assert (s.mean, s.std) == ((0.1307,), (0.3081,))  # the familiar values, computed from the 60,000 images
    identity = s.source["identity"]
    assert identity["canonical"] == "mnist" and identity["name"] == "MNIST"
    assert identity["fingerprint"] == data_mod.MNIST_FINGERPRINT
    assert s.source["label_names_from"] == "MNIST's digits"


def test_fingerprint_ignores_order_and_sees_every_pixel():
    g = torch.Generator().manual_seed(0)
    t = {"train_images": torch.randint(0, 256, (50, 1, 16, 16), generator=g, dtype=torch.uint8),
         "train_labels": torch.arange(50) % 5, "test_images": torch.randint(0, 256, (20, 1, 16, 16), generator=g,
                                                                            dtype=torch.uint8),
         "test_labels": torch.arange(20) % 5}
    perm = torch.randperm(50, generator=g)
    shuffled = {**t, "train_images": t["train_images"][perm], "train_labels": t["train_labels"][perm]}
    assert data_mod.content_fingerprint(shuffled) == data_mod.content_fingerprint(t)
    changed = {**t, "test_images": t["test_images"].clone()}
    changed["test_images"][3, 0, 7, 7] ^= 1
    assert data_mod.content_fingerprint(changed) != data_mod.content_fingerprint(t)
    mean, std = data_mod.channel_stats(t["train_images"])
    x = t["train_images"].double() / 255
    assert mean == (round(float(x.mean()), 4),) and std == (round(float(x.std(unbiased=False)), 4),)


# ---------------------------------------------------------------------------------------------------------
# Three sources, each trained and carded
# ---------------------------------------------------------------------------------------------------------
def test_another_idx_dataset_with_a_labels_file_is_carded_as_itself(tmp_path):
    folder = _fashion_like_idx(tmp_path / "stripes")
    names = [f"stripe {i}" for i in range(10)]
    (folder / data_mod.LABELS_FILE).write_text("\n".join(names) + "\n")
    run = _train(tmp_path, "run", "model=model4", f"data.dir={folder}", "data.name=Stripes-10")
    results = json.loads((run / "results.json").read_text())
    config = json.loads((run / "model" / "config.json").read_text())
    assert results["label_names"] == names and list(config["id2label"].values()) == names
    assert config["mean"] == results["data"]["mean"] != [0.1307]  # statistics of this data, not MNIST's
    assert results["target_accuracy"] is None and results["target_dataset"] == "mnist"  # model4's target is MNIST's
    meta, evals, text = _card(run)
    assert "mnist" not in meta["tags"] and "datasets" not in meta  # not on the Hub: no dataset link
    assert (evals.dataset_type, evals.dataset_name) == ("stripes-10", "Stripes-10")
    assert "on Stripes-10" in text.split("\n# ")[1].split("\n")[0]
    assert "LeCun" not in text and "handwriting" not in text and "99.4" not in text
    assert "`Stripes-10` (local IDX files)" in text and "| Target | — |" in text
    assert "`stripe 0`, `stripe 1`" in text and "(from labels.txt)" in text


def test_rgb_folder_with_classlabels_and_its_own_validation_split(tmp_path):
    datasets = pytest.importorskip("datasets")
    _shapes_dataset(datasets).save_to_disk(tmp_path / "shapes")
    run = _train(tmp_path, "run", "model=model4", "data.source=hub", f"data.dataset={tmp_path / 'shapes'}",
                 "data.val_size=10")
    results = json.loads((run / "results.json").read_text())
    # model4 at 3x32x32 has 7,302 parameters for 10 classes; with 3 classes its 1x1 head loses 7 x 10
    assert results["parameters"] == 7_302 - 7 * 10 and results["summary"]["input_shape"] == [3, 32, 32]
    assert results["data"]["val_size"] == 60 and "'validation' split" in results["data"]["validation"]
    assert "val_accuracy" in results["epochs"][0]
    assert len(results["data"]["mean"]) == 3 and results["label_names"] == SHAPE_NAMES
    identity = results["data"]["identity"]
    assert identity["name"] is None and identity["description"] == "Coloured shapes for tests."
    # No name anywhere in the data: the card asks for one instead of guessing (and never accepts MNIST).
    with pytest.raises(cards.CardError, match="--dataset-name"):
        cards.build_card(run, repo_id="me/tiny")
    with pytest.raises(cards.CardError, match="not canonical MNIST"):
        cards.build_card(run, repo_id="me/tiny", dataset_name="MNIST")
    meta, evals, text = _card(run, dataset_name="Shapes-3")
    assert evals.dataset_name == "Shapes-3" and "mnist" not in meta["tags"]
    assert "| Input | 3×32×32 (RGB) |" in text and 'convert("RGB")' in text
    assert "Coloured shapes for tests." in text and "@misc{shapes" in text and "| License | cc0-1.0 |" in text
    assert "| **total** | | | **7,232** |" in text and "`green disc with a rather long name`" in text


def test_hub_dataset_whose_id_ends_in_mnist_is_not_mnist(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    fake = _shapes_dataset(datasets, splits=("train", "test", "unused"), description=False)
    monkeypatch.setattr(hub_module, "_open_hub", lambda dataset_id, revision: fake)
    run = _train(tmp_path, "run", "model=gap8k", "data.source=hub", "data.dataset=someone/fake-mnist",
                 "data.revision=v2")
    meta, evals, text = _card(run)
    assert meta["datasets"] == ["someone/fake-mnist"] and "mnist" not in meta["tags"]
    assert (evals.dataset_type, evals.dataset_revision) == ("someone/fake-mnist", "v2")
    assert "LeCun" not in text and "[`someone/fake-mnist`](https://huggingface.co/datasets/someone/fake-mnist)" in text
    with pytest.raises(cards.CardError, match="contradicts"):  # a push may not rename what the run recorded
        cards.build_card(run, repo_id="me/tiny", dataset_id="someone/other")


@pytest.mark.e2e
def test_mnist_named_files_that_are_not_mnist_never_make_an_mnist_card(tmp_path):
    folder = make_synthetic_idx(tmp_path / "lookalike", n_train=300, n_test=100)
    with pytest.raises(trainer.DataError, match="not match the canonical MNIST checksum"):
        trainer.load_dataset_splits(dir=str(folder), cache_dir=str(tmp_path / "c"), name=None)
    with pytest.raises(trainer.DataError, match="name MNIST is kept for the canonical files"):
        trainer.load_dataset_splits(dir=str(folder), cache_dir=str(tmp_path / "c"), name="mnist")
    run = _train(tmp_path, "run", "model=gap8k", f"data.dir={folder}", "data.verify=false", "data.name=null")
    results = json.loads((run / "results.json").read_text())
    assert results["data"]["identity"]["name"] is None and results["data"]["canonical_mnist"] is False
    assert results["data"]["label_names_from"] == "indices"
    with pytest.raises(cards.CardError, match="not identified"):
        cards.build_card(run, repo_id="me/tiny")
    dry = tmp_path / "upload"
    refused, named = run_cli_many(
        ["push", str(run), "--repo-id", "me/tiny", "--dry-run", str(dry)],
        ["push", str(run), "--repo-id", "me/tiny", "--dry-run", str(tmp_path / "named"), "--dataset-name", "blobs"])
    assert refused.returncode == 1 and "--dataset-name" in refused.stderr and not dry.exists()
    assert named.returncode == 0, named.stderr
    text = (tmp_path / "named" / "README.md").read_text()
    assert "on blobs" in text and "LeCun" not in text and "\n  - mnist\n" not in text
    assert "the class names are their indices" in text


def test_hub_splits_are_mapped_by_name_or_refused_naming_them(tmp_path):
    datasets = pytest.importorskip("datasets")
    _shapes_dataset(datasets, splits=("training", "dev", "testing")).save_to_disk(tmp_path / "renamed")
    kwargs = {"source": "hub", "dataset": str(tmp_path / "renamed"), "cache_dir": str(tmp_path / "c")}
    with pytest.raises(trainer.DataError, match=r"has the splits \['training', 'dev', 'testing'\].*"
                                                r"data.splits.train=SPLIT data.splits.test=SPLIT"):
        trainer.load_dataset_splits(**kwargs)
    s = trainer.load_dataset_splits(**kwargs, splits={"train": "training", "test": "testing", "validation": "dev"})
    assert (len(s.train_labels), len(s.val_labels), len(s.test_labels)) == (240, 60, 90)
    with pytest.raises(trainer.DataError, match="neither a folder .* nor a Hub dataset id"):
        trainer.load_dataset_splits(**{**kwargs, "dataset": str(tmp_path / "missing")})
    _shapes_dataset(datasets, size=20).save_to_disk(tmp_path / "small")
    assert trainer.load_dataset_splits(source="hub", dataset=str(tmp_path / "small")).image_shape == (3, 20, 20)


@pytest.mark.parametrize("content, message", [
    ("a\nb\n", "names 2 classes, but the data has 10"),
    ("\n".join(["same"] * 10), "names several classes 'same'"),
])
def test_a_wrong_labels_file_is_refused_naming_the_problem(tmp_path, content, message):
    folder = _fashion_like_idx(tmp_path / "stripes", n_train=100, n_test=20)
    (folder / data_mod.LABELS_FILE).write_text(content)
    with pytest.raises(trainer.DataError, match=message):
        trainer.load_dataset_splits(dir=str(folder), name="stripes", cache_dir=str(tmp_path / "c"))


# ---------------------------------------------------------------------------------------------------------
# Shapes: every architecture builds for the data's shape, or says which shapes it takes
# ---------------------------------------------------------------------------------------------------------
# Parameter counts by hand: the first conv grows by (C-1) x k x k x out; heads that flatten grow with the size.
EXPECTED = {
    #               1x28x28  3x32x32                       1x16x16
    "model4": (7_194, 7_194 + 2 * 9 * 6, 7_194),
    "efficient": (19_578, "budget", 19_578),  # 5x5x16 first conv: 20,378 > 20,000
    "net24k": (24_552, 24_552 + 2 * 9 * 8, 24_552 - 56 * 16 * 10 + 56 * 4 * 10),  # 4x4 -> 2x2 flatten at 16
    "opt6k": (6_132, 6_132 + 2 * 9 * 10 + (128 - 72) * 20, "shape"),  # 8x4x4 flatten at 32; needs >= 18 px
    "minimobilenet": (3_114, 3_114 + 2 * 9 * 12, 3_114),
    "gap8k": (7_432, 7_432 + 2 * 9 * 8, 7_432),
    "gap20k": (18_720, 18_720 + 2 * 9 * 12, 18_720),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("column, shape", [(0, (1, 28)), (1, (3, 32)), (2, (1, 16))])
def test_every_architecture_at_three_shapes(name, column, shape):
    chans, size = shape
    build = {"in_chans": chans, "input_size": size, "num_classes": 7, "mean": (0.5,) * chans, "std": (0.2,) * chans}
    expected = EXPECTED[name][column]
    if expected == "shape":
        with pytest.raises(modeling.InputShapeError, match=r"at least 18x18 pixels"):
            modeling.create_model(name, **build)
        return
    if expected == "budget":
        with pytest.raises(modeling.ParameterBudgetError, match=rf"at input {chans}x{size}x{size} has .* over its "):
            modeling.create_model(name, **build)
        model, expected = modeling.create_model(name, **build, param_budget=25_000), 19_578 + 2 * 25 * 16
    else:
        model = modeling.create_model(name, **build)
    expected -= 3 * _head_inputs(model)  # the counts above are for 10 classes; these models have 7
    assert model.num_parameters() == modeling.summary(model).total_params == expected
    assert model(torch.zeros(2, chans, size, size)).shape == (2, 7)


def _head_inputs(model) -> int:
    """Parameters per class in the last layer (weights, plus its bias)."""
    last = [m for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))][-1]
    return last.weight[0].numel() + (1 if last.bias is not None else 0)


# ---------------------------------------------------------------------------------------------------------
# Pictures
# ---------------------------------------------------------------------------------------------------------
def test_confusion_matrix_stays_readable_with_many_long_names(tmp_path):
    from PIL import Image

    from tinyhub.trainer.report import LABEL_CHARS, confusion_matrix_plot, short_label

    def draw(n, names, path):
        matrix = [[5 if i == j else 1 for j in range(n)] for i in range(n)]
        return Image.open(confusion_matrix_plot(matrix, names, path)).size

    small = draw(10, [str(i) for i in range(10)], tmp_path / "ten.png")
    large = draw(47, [f"class number {i} with a very long descriptive name" for i in range(47)], tmp_path / "many.png")
    assert large[0] > 2 * small[0] and large[1] > 2 * small[1]  # the figure grows with the class count
    assert len(short_label("class number 1 with a very long descriptive name")) == LABEL_CHARS
    assert short_label("seven") == "seven"
    shutil.rmtree(tmp_path)
