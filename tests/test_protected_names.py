"""MNIST's name in any spelling (case, spaces, separators, accents, look-alike letters of other scripts, a Hub
namespace) is refused for data that is not canonical MNIST, at training, carding and pushing; what a dataset says
about itself reaches a card only quoted and attributed."""

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import FAST, make_synthetic_idx, run_cli_many
from tinyhub import cards, trainer
from tinyhub.cards.publish import stage_folder
from tinyhub.trainer import data as data_mod
from tinyhub.trainer.data import hub as hub_module
from tinyhub.trainer.data import idx as idx_module

pytestmark = pytest.mark.e2e  # the whole module drives processes, servers or wheels

#: How each letter of MNIST can be written so that a reader still sees MNIST.
LOOK_ALIKES = {
    "m": ["m", "M", "м", "М", "Μ", "ｍ", "Ｍ"],
    "n": ["n", "N", "Ν", "Н", "Ｎ", "ñ"],
    "i": ["i", "I", "і", "І", "Ι", "1", "l", "ı", "İ", "Ｉ", "í"],
    "s": ["s", "S", "ѕ", "Ѕ", "5", "$", "Ｓ", "ś"],
    "t": ["t", "T", "т", "Т", "Τ", "7", "Ｔ"],
}
BETWEEN = ["", "", "", " ", "-", "_", ".", "\u200b", "\u00a0", "\t"]


@st.composite
def mnist_spellings(draw):
    letters = [draw(st.sampled_from(LOOK_ALIKES[c])) for c in "mnist"]
    core = letters[0] + "".join(draw(st.sampled_from(BETWEEN)) + c for c in letters[1:])
    around = st.sampled_from(["", " ", "  ", "\t", "\n"])
    namespace = draw(st.sampled_from(["", "ylecun/", "someone/", "MNIST/"]))
    return namespace + draw(around) + core + draw(around)


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def test_the_generated_spellings_are_mnist_and_other_names_are_not():
    for name in ("MNIST", "ylecun/mnist", "M N I S T", "МNIST", "ＭＮＩＳＴ", "mn1st", "M\u200bNIST"):
        assert data_mod.certified_name(name) == "MNIST", name
    for name in ("fashion-mnist", "kmnist", "emnist", "mnist/digits", "synthetic-digits", "mint", "list", None, ""):
        assert data_mod.certified_name(name) is None, name


#: Words that make another dataset of MNIST's name.
OTHER_DATASETS = ["fashion", "k", "e", "q", "kuzushiji", "1d", "sign", "language", "not", "c", "colored", "moving",
                  "double", "audio", "3d", "translated", "binarized"]
SMALL_CAPITALS = {"m": "ᴍ", "n": "ɴ", "i": "ɪ", "s": "ꜱ", "t": "ᴛ"}


@st.composite
def mnist_with_words(draw, words):
    """MNIST, in any spelling (small capitals too), with words before and after it, glued or separated."""
    core = draw(st.one_of(mnist_spellings(), st.just("".join(SMALL_CAPITALS[c] for c in "mnist")))).strip()
    core = core.rsplit("/", 1)[-1]
    before = draw(st.lists(st.sampled_from(words), max_size=2))
    after = draw(st.lists(st.sampled_from(words), max_size=2))
    glue = st.sampled_from([" ", "-", "_", ".", ""])
    parts = [*before, core, *after]
    text = parts[0]
    for part in parts[1:]:
        text += draw(glue) + part
    return text, before + after


@settings(max_examples=300, deadline=None)
@given(case=mnist_with_words(sorted(data_mod.common.NON_IDENTIFYING_WORDS) + ["2019", "60000", "784"]))
def test_mnist_with_only_words_that_say_nothing_more_is_mnist(case):
    """"the MNIST database", "MNIST-dataset", "mnist full", "torchvision MNIST", "mnist_784": all MNIST."""
    text, _ = case
    assert data_mod.certified_name(text) == "MNIST", text


@settings(max_examples=300, deadline=None)
@given(case=mnist_with_words(OTHER_DATASETS + sorted(data_mod.common.NON_IDENTIFYING_WORDS)))
def test_a_word_that_makes_another_dataset_keeps_it_another(case):
    """KMNIST, EMNIST, QMNIST, Fashion-MNIST, MNIST-1D and the like stay other datasets, whatever noise is around."""
    text, words = case
    if any(w in OTHER_DATASETS for w in words):
        assert data_mod.certified_name(text) is None, text


# ---- at training ----
@SETTINGS
@given(spelling=mnist_spellings())
def test_training_refuses_every_spelling_on_other_idx_files(spelling):
    files = {role: Path("/data") / f"{stem}.gz" for role, stem in data_mod.IDX_STEMS.items()}
    with pytest.raises(trainer.DataError, match="names MNIST"):
        idx_module._idx_identity(files, {path: "0" * 64 for path in files.values()}, spelling, True, "f" * 64)


@SETTINGS
@given(spelling=mnist_spellings())
def test_a_hub_dataset_named_or_spelled_like_mnist_is_refused_unless_it_is_mnist(spelling):
    meta = {"fingerprint": "f" * 64, "dataset_info": {"dataset_name": spelling, "description": "MNIST digits"}}
    with pytest.raises(trainer.DataError, match="names MNIST"):
        hub_module._hub_identity("someone/shapes", None, False, spelling, meta)  # data.name
    if "/" in spelling.strip() and spelling.strip() != data_mod.MNIST_HUB_ID:
        with pytest.raises(trainer.DataError, match="names MNIST"):
            hub_module._hub_identity(spelling.strip(), None, False, None, meta)  # data.dataset
    folder = hub_module._hub_identity("/data/shapes", None, True, None, meta)  # its own DatasetInfo name
    assert folder.name is None and folder.canonical is None


def test_the_canonical_files_and_the_hub_copy_are_still_mnist():
    meta = {"fingerprint": data_mod.MNIST_FINGERPRINT, "dataset_info": {}}
    assert hub_module._hub_identity("ylecun/MNIST", None, False, "MNIST ", meta).canonical == "mnist"


# ---- at carding and pushing ----
@pytest.fixture(scope="module")
def other_runs(tmp_path_factory):
    """Runs on synthetic digits (not MNIST): one named at training time, one left unidentified."""
    root = tmp_path_factory.mktemp("other")
    folder = make_synthetic_idx(root / "idx", n_train=300, n_test=100)
    runs = {}
    for key, naming in (("named", "data.name=digits"), ("unnamed", "data.name=null")):
        cfg = trainer.load_config([*FAST, "model=gap8k", "training.epochs=1", "data.subset=0", f"data.dir={folder}",
                                   "data.verify=false", naming, f"run.dir={root / key}"])
        runs[key] = trainer.train(cfg)
    return runs


@SETTINGS
@given(spelling=mnist_spellings())
def test_cards_and_pushes_refuse_every_spelling_on_other_data(other_runs, tmp_path_factory, spelling):
    for run, naming in ((other_runs["unnamed"], {"dataset_name": spelling}),
                        (other_runs["unnamed"], {"dataset_id": spelling.strip()}),
                        (other_runs["named"], {"dataset_id": spelling.strip()})):
        with pytest.raises(cards.CardError):
            cards.build_card(run, repo_id="me/tiny", **naming)
        out = tmp_path_factory.mktemp("up") / "upload"
        with pytest.raises(cards.CardError):
            stage_folder(run, out, repo_id="me/tiny", revision="main", **naming)
        assert not out.exists()


def test_the_commands_refuse_the_reported_spellings(other_runs, tmp_path):
    folder = tmp_path / "idx"
    make_synthetic_idx(folder, n_train=300, n_test=100)
    run = other_runs["unnamed"]
    train, by_name, by_id = run_cli_many(
        ["train", *FAST, f"data.dir={folder}", "data.name=MNIST ", f"run.dir={tmp_path / 'r'}"],
        ["push", str(run), "--repo-id", "me/tiny", "--dry-run", str(tmp_path / "a"), "--dataset-name", "MNIST "],
        ["push", str(run), "--repo-id", "me/tiny", "--dry-run", str(tmp_path / "b"), "--dataset-id", "ylecun/MNIST"])
    for r in (train, by_name, by_id):
        assert r.returncode == 1 and r.stderr.startswith("error:") and "names MNIST" in r.stderr, r.stderr[-1500:]
    assert not any((tmp_path / p).exists() for p in ("r", "a", "b"))


def test_a_datasets_own_words_are_quoted_and_attributed(other_runs):
    run = other_runs["named"]
    results = json.loads((run / "results.json").read_text())
    results["data"]["identity"]["description"] = "MNIST handwritten digits, the famous set"
    (run / "results.json").write_text(json.dumps(results))
    text = cards.build_card(run, repo_id="me/tiny").content
    quoted = [line for line in text.splitlines() if line.startswith("> ")]
    assert quoted == ["> MNIST handwritten digits, the famous set"]
    assert "The dataset's own description (its DatasetInfo, not verified by tinyhub) says:" in text
    body = "\n".join(line for line in text.split("---", 2)[2].splitlines() if not line.startswith("> "))
    assert "MNIST" not in body and "handwritten" not in body.lower()
