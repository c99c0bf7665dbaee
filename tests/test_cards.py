"""Model cards: built from results.json alone, validated like the Hub would, hand edits preserved."""

import json
import re
import shutil

import pytest
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results

from tinyhub import cards
from tinyhub.cards.card import BEGIN, END
from conftest import is_real_mnist, run_cli
from tinyhub.cards.publish import UPLOADED, staged_files
from tinyhub.utils.files import OUTPUT_MARKER


def test_card_numbers_come_from_results(tiny_runs, mnist_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_runs[0], run, ignore=shutil.ignore_patterns("eval"))  # no evaluation by other tests
    results = json.loads((run / "results.json").read_text())
    card = cards.build_card(run, repo_id="me/opt6k-mnist", revision="v1")
    parsed = ModelCard(card.content)
    data = parsed.data.to_dict()
    assert data["library_name"] == "tinyhub" and data["license"] == "mit"
    assert data["pipeline_tag"] == "image-classification"
    dataset = "ylecun/mnist" if is_real_mnist(mnist_dir) else "synthetic-digits"
    assert {"image-classification", "tinyhub", "opt6k", "6k-params"} <= set(data["tags"])
    assert ("mnist" in data["tags"]) == (dataset == "ylecun/mnist")  # MNIST's tag only for MNIST
    assert data.get("datasets") == ([dataset] if dataset == "ylecun/mnist" else None)  # Hub datasets only
    _, evals = model_index_to_eval_results(data["model-index"])
    assert evals[0].metric_value == round(results["final"]["test_accuracy"], 4)
    assert (evals[0].task_type, evals[0].dataset_type, evals[0].dataset_split) == \
        ("image-classification", dataset, "test")
    text = parsed.text
    assert f"{results['final']['test_accuracy']:.2f}%" in text
    assert "| Parameters | 6,132 |" in text
    assert "pip install tinyhub\n" in text and "import tinyhub\n" in text
    assert 'tinyhub.from_pretrained("me/opt6k-mnist", revision="v1")' in text
    assert "import modeling" not in text and "github.com" not in text  # no address nobody confirmed
    assert len(re.findall(r"\n\| 1 \| \d\.\d\de[-+]\d\d \|", text)) == 1 and "\n| 2 | " in text  # a row per epoch
    assert "| **total** | | | **6,132** |" in text  # architecture table from modeling.summary
    assert "| rotation (degrees, ±) | 8.0 |" in text  # the recipe's exact augmentation
    assert results["git"]["commit"] is None or results["git"]["commit"][:7] in text
    assert ("LeCun" in text or dataset != "ylecun/mnist") and "seed 004" in text  # credits: data and design
    if dataset == "ylecun/mnist":  # trained from the local IDX files: credited to them, not to the Hub copy
        assert "from the original IDX files" in text and "Hugging Face dataset" not in text
    # the reproduce command: the installed CLI, the run's overrides, no path of the machine that trained
    command = text.split("### Reproduce\n\n```bash\n")[1].split("\n```")[0]
    assert command.startswith("tinyhub train ") and "model=opt6k" in command and "seed=0" in command
    assert "run.dir=" not in command and "data.dir" not in command and "/" not in command
    assert "| | |\n|---|---|" not in text and "| property | value |" in text  # no empty header row


def test_multi_seed_card_reports_mean_std_n(tiny_runs):
    values = [json.loads((r / "results.json").read_text())["final"]["test_accuracy"] for r in tiny_runs]
    mean = sum(values) / 2
    std = abs(values[0] - values[1]) / 2 ** 0.5
    card = cards.build_card(tiny_runs[0], repo_id="me/opt6k-mnist", seed_runs=[tiny_runs[1]])
    data = card.data.to_dict()
    _, evals = model_index_to_eval_results(data["model-index"])
    assert evals[0].metric_value == pytest.approx(round(mean, 4))
    assert f"{mean:.2f}% ± {std:.2f} (mean ± std, n=2)" in card.text


def test_validation_rejects_broken_cards(tiny_runs):
    good = cards.build_card(tiny_runs[0], repo_id="me/x").content
    cards.validate_card(good)
    no_license = good.replace("license: mit\n", "")
    with pytest.raises(cards.CardError, match="license"):
        cards.validate_card(no_license)
    with pytest.raises(cards.CardError, match="model-index accuracy"):
        cards.validate_card(good, expected_accuracy=12.34)
    with pytest.raises(cards.CardError, match="markers"):
        cards.validate_card(good.replace(END, ""))


def test_hand_edits_outside_markers_survive(tiny_runs):
    first = cards.build_card(tiny_runs[0], repo_id="me/x", revision="v1").content
    edited = first.replace(BEGIN, "## A note from the author\n\nKeep this.\n\n" + BEGIN)
    edited = edited.replace(END, END + "\n\nThanks to my lab.\n")
    edited = edited.replace("license: mit", "license: mit\nlanguage: en")  # metadata a person added
    second = cards.build_card(tiny_runs[1], repo_id="me/x", revision="v2").content
    merged = cards.merge_with_existing(second, edited)
    assert "Keep this." in merged and "Thanks to my lab." in merged
    assert 'revision="v2"' in merged and 'revision="v1"' not in merged
    assert ModelCard(merged).data.to_dict()["language"] == "en"
    cards.validate_card(merged)


def test_unfinished_run_is_refused(tiny_runs, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_runs[0], broken)
    results = json.loads((broken / "results.json").read_text())
    del results["final"]
    (broken / "results.json").write_text(json.dumps(results))
    with pytest.raises(cards.CardError, match="no final evaluation"):
        cards.build_card(broken, repo_id="me/x")
    (broken / "results.json").unlink()
    with pytest.raises(cards.CardError, match="not a finished run"):
        cards.build_card(broken, repo_id="me/x")


@pytest.mark.e2e
def test_dry_run_writes_exactly_the_upload_folder(tiny_runs, tmp_path):
    out = tmp_path / "upload"
    r = run_cli("push", str(tiny_runs[0]), "--repo-id", "me/opt6k", "--dry-run", str(out),
                   env_extra={"HF_ENDPOINT": "http://127.0.0.1:9", "HF_TOKEN": ""})
    assert r.returncode == 0, r.stderr
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == sorted([*UPLOADED, OUTPUT_MARKER])  # the marker says tinyhub may replace it; it stays local
    assert sorted(p.relative_to(out).as_posix() for p in staged_files(out)) == sorted(UPLOADED)
    files.remove(OUTPUT_MARKER)
    assert (out / "model.safetensors").read_bytes() == (tiny_runs[0] / "model" / "model.safetensors").read_bytes()
    cards.validate_card((out / "README.md").read_text())
    # Same run, same bytes: images carry no timestamps, so an unchanged run uploads nothing new.
    r2 = run_cli("push", str(tiny_runs[0]), "--repo-id", "me/opt6k", "--dry-run", str(tmp_path / "again"))
    assert r2.returncode == 0
    for f in files:
        assert (out / f).read_bytes() == (tmp_path / "again" / f).read_bytes(), f


@pytest.mark.e2e
@pytest.mark.parametrize("repo_id", ["no-namespace", "me/bad name", "a/b/c", "me/--x"])
def test_invalid_repo_id_is_refused_before_anything(tiny_runs, repo_id):
    r = run_cli("push", str(tiny_runs[0]), "--repo-id", repo_id, env_extra={"HF_TOKEN": "x"})
    assert r.returncode == 2 and "repo-id" in r.stderr


@pytest.mark.e2e
def test_missing_token_is_refused_before_any_upload(tiny_runs, tmp_path):
    r = run_cli("push", str(tiny_runs[0]), "--repo-id", "me/opt6k",
                env_extra={"HF_TOKEN": "", "HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": "http://127.0.0.1:9"})
    assert r.returncode == 1 and "No Hugging Face token" in r.stderr and "Traceback" not in r.stderr


def test_card_gives_each_class_its_images_and_accuracy_and_names_weak_ones(tiny_runs, tmp_path):
    """The per-class table comes from the run's own record (the final confusion matrix and the class counts),
    and a class far below the others, or rare, is named among the limitations."""
    run = tmp_path / "run"
    shutil.copytree(tiny_runs[0], run, ignore=shutil.ignore_patterns("eval"))
    results = json.loads((run / "results.json").read_text())
    matrix, counts = results["final"]["confusion_matrix"], results["data"]["class_counts"]
    text = cards.build_card(run, repo_id="me/x").text
    row = matrix[0]
    assert (f"| 0 | {counts['train'][0]:,} | {sum(row):,} | {100 * row[0] / sum(row):.2f} |") in text
    weak = "Classes to check before relying on the model" in text
    accuracies = [100 * r[i] / sum(r) for i, r in enumerate(matrix) if sum(r)]
    assert weak == (min(accuracies) < sum(accuracies) / len(accuracies) - 10)
    # made weak on purpose: class 3 answered wrong every time
    results["final"]["confusion_matrix"][3] = [0, 0, 0, 0, sum(matrix[3]), 0, 0, 0, 0, 0][:len(matrix)]
    (run / "results.json").write_text(json.dumps(results))
    from tinyhub.trainer.record import load_run

    flagged = {c.label: c.flagged for c in load_run(run).per_class() if c.flagged}
    assert "0.00% test accuracy against a mean of" in flagged["3"]


@pytest.mark.e2e
@pytest.mark.parametrize("damage", ["metrics", "weights"])
def test_a_run_with_non_finite_numbers_is_never_published(tiny_runs, tmp_path, damage):
    run = tmp_path / "run"
    shutil.copytree(tiny_runs[0], run, ignore=shutil.ignore_patterns("eval"))
    if damage == "metrics":
        results = json.loads((run / "results.json").read_text())
        results["final"]["test_loss"] = float("nan")
        (run / "results.json").write_text(json.dumps(results))  # Python writes NaN, which is not JSON
    else:
        from safetensors.torch import load_file, save_file

        state = load_file(run / "model" / "model.safetensors")
        key = next(k for k, v in state.items() if v.is_floating_point())
        state[key][0] = float("nan")
        save_file(state, str(run / "model" / "model.safetensors"))
    r = run_cli("push", str(run), "--repo-id", "me/opt6k", "--dry-run", str(tmp_path / "up"))
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert ("not valid JSON" in r.stderr) if damage == "metrics" else ("non-finite values" in r.stderr)
    assert not (tmp_path / "up").exists()


@pytest.mark.parametrize("recipe", ["fast99", "fast994"])
def test_a_speed_recipe_trains_and_its_card_says_what_it_is_for(recipe, mnist_dir, tmp_path):
    # The packaged speed recipes in a short smoke run: they train as recipes do (one evaluation, after the last
    # epoch; no checkpoints, no tracker), and the card says the recipe is built for time, with the whole run's
    # time and the machine.
    from tinyhub import trainer

    run = trainer.train(trainer.load_config([f"model={recipe}", f"data.dir={mnist_dir}", "data.subset=512",
                                             "progress=false", f"run.dir={tmp_path / recipe}"]))
    record = trainer.load_run(run)
    assert record.model == "fast24k" and record.recipe.recipe.purpose == "speed"
    assert [e.evaluated for e in record.epochs] == [False] * (len(record.epochs) - 1) + [True]
    assert not (run / "checkpoints").exists() and not (run / "logs").exists()
    card = cards.build_card(run, repo_id=f"me/{recipe}")
    data = ModelCard(card.content).data.to_dict()
    assert data["tinyhub"]["purpose"] == "speed" and data["tinyhub"]["process_seconds"] == record.process_seconds
    row = next(line for line in card.content.splitlines() if line.startswith("| Speed recipe |"))
    assert f"built to reach {record.target_accuracy}% soonest" in row
    assert f"{record.process_seconds:.1f} s from process start to saved model" in row and record.hardware_text in row
    assert ("| – |" in card.content) == (len(record.epochs) > 1)  # epochs before the last: not evaluated, shown so


def _zero_one_tensor(run) -> None:
    from safetensors.torch import load_file, save_file

    state = load_file(run / "model" / "model.safetensors")
    key = next(k for k, v in state.items() if v.is_floating_point() and v.ndim > 1)
    state[key].zero_()
    save_file(state, str(run / "model" / "model.safetensors"))


def test_tampered_weights_never_get_the_recorded_card(tiny_runs, tmp_path, capsys):
    """Zero one weight tensor of a finished run: results.json's hash of the weights no longer matches, so no card,
    no staged upload and no export; one error line each."""
    from tinyhub.commands import export as export_command
    from tinyhub.commands import push as push_command
    from tinyhub.utils.files import sha256_file

    run = tmp_path / "run"
    shutil.copytree(tiny_runs[0], run, ignore=shutil.ignore_patterns("eval", "onnx", "exports.json"))
    results = json.loads((run / "results.json").read_text())
    assert results["weights_sha256"] == sha256_file(run / "model" / "model.safetensors")
    _zero_one_tensor(run)
    with pytest.raises(cards.CardError, match="not the model whose accuracy results.json records"):
        cards.build_card(run, repo_id="me/x")
    capsys.readouterr()
    assert push_command.main([str(run), "--repo-id", "me/x", "--dry-run", str(tmp_path / "up")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the weights changed after training" in err[0] and not (tmp_path / "up").exists()
    assert export_command.main([str(run)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nothing was exported" in err[0] and not (run / "onnx").exists()


def test_a_record_older_than_the_hash_is_measured_again_at_push(tiny_runs, tmp_path, capsys):
    """A results.json written before the weights' hash was kept: push measures the weights on the recorded test
    split. The run's own weights score what it records, and the hash is added; tampered ones are refused."""
    from tinyhub.commands import push as push_command
    from tinyhub.utils.files import sha256_file

    for tampered in (False, True):
        run = tmp_path / f"run-{tampered}"
        shutil.copytree(tiny_runs[0], run, ignore=shutil.ignore_patterns("eval", "onnx", "exports.json"))
        results = json.loads((run / "results.json").read_text())
        del results["weights_sha256"]
        (run / "results.json").write_text(json.dumps(results))
        if tampered:
            _zero_one_tensor(run)
        code = push_command.main([str(run), "--repo-id", "me/x", "--dry-run", str(tmp_path / f"up-{tampered}")])
        err = capsys.readouterr().err
        if tampered:
            assert code == 1 and "these are not the weights it measured" in err and len(err.strip().splitlines()) == 1
            assert not (tmp_path / f"up-{tampered}").exists()
        else:
            assert code == 0, err
            assert json.loads((run / "results.json").read_text())["weights_sha256"] == \
                sha256_file(run / "model" / "model.safetensors")
