"""tinyhub export: ONNX and int8 files that onnxruntime runs on raw pixels, checked on the whole test split, their
figures in exports.json, uploaded by push with a Deploy section whose snippet runs where only onnxruntime, numpy
and huggingface_hub are installed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from conftest import FAST, SAFETY_TIMEOUT, hub_client, run_cli
from tinyhub import modeling
from tinyhub.utils.files import sha256_file
from tinyhub.cards import export as export_module
from tinyhub.trainer.data import load_from_config
from tinyhub.trainer.record import EXPORT_EXAMPLES_FILE, EXPORTS_FILE, ExportsRecord


def _train(mnist_dir: Path, folder: Path, model: str) -> Path:
    from tinyhub import trainer

    cfg = trainer.load_config([*FAST, f"model={model}", "training.epochs=1", "data.subset=3000",
                               f"data.dir={mnist_dir}", "seed=0", f"run.dir={folder}"])
    return trainer.train(cfg)


@pytest.fixture(scope="module")
def exported(mnist_dir, tmp_path_factory):
    """A plain (opt6k) and a depthwise (minimobilenet) run, each exported by the CLI: {architecture: run dir}."""
    root = tmp_path_factory.mktemp("exported")
    runs = {"opt6k": _train(mnist_dir, root / "opt6k", "opt6k"),
            "minimobilenet": _train(mnist_dir, root / "minimobilenet", "minimobilenet")}
    for arch, run in list(runs.items()):
        r = run_cli("export", str(run))
        assert r.returncode in (0, 1), r.stderr[-3000:]  # 1: an int8 export over its limit, checked below
        assert "Traceback" not in r.stderr
        runs[arch + "_out"] = r
    return runs


@pytest.mark.parametrize("arch", ["opt6k", "minimobilenet"])
def test_onnx_export_agrees_with_pytorch_on_the_whole_test_split(exported, mnist_dir, arch):
    run = exported[arch]
    record = ExportsRecord.load(run)
    assert record.weights_sha256 == sha256_file(run / "model" / "model.safetensors")
    splits = load_from_config({"source": "local", "dir": str(mnist_dir)})
    images01 = splits.test_images.float() / 255
    model = modeling.from_pretrained(run / "model")
    with torch.no_grad():
        reference = model(model.normalize(splits.test_images)).numpy()
    for fmt in record.formats:
        path = run / fmt.file
        assert sha256_file(path) == fmt.sha256 and path.stat().st_size == fmt.bytes
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        logits = np.concatenate([session.run(["logits"], {"images": images01[i:i + 2500].numpy()})[0]
                                 for i in range(0, len(images01), 2500)])
        # the record's figures are what onnxruntime gives on all 10,000 (or synthetic) test images
        assert fmt.test_total == len(splits.test_labels)
        assert fmt.test_correct == int((logits.argmax(1) == splits.test_labels.numpy()).sum())
        assert fmt.agreement == pytest.approx(100 * float((logits.argmax(1) == reference.argmax(1)).mean()))
        assert fmt.max_logit_difference == pytest.approx(float(np.abs(logits - reference).max()), rel=1e-3,
                                                         abs=1e-6)
        assert fmt.latency_ms > 0 and fmt.images_per_second > 0
    onnx_fmt = next(f for f in record.formats if f.format == "onnx")
    assert onnx_fmt.passed and 100 - onnx_fmt.agreement <= 0.05 and onnx_fmt.max_logit_difference < 1e-3
    int8 = next(f for f in record.formats if f.format == "int8")
    loss = record.pytorch_test_accuracy - int8.test_accuracy
    assert int8.passed == (loss <= 0.3) and (int8.problem is None) == int8.passed
    assert int8.bytes < onnx_fmt.bytes  # the weights are int8
    assert record.pytorch_test_correct == int((reference.argmax(1) == splits.test_labels.numpy()).sum())
    out = exported[arch + "_out"]
    assert out.returncode == (0 if all(f.passed for f in record.formats) else 1)
    assert f"{onnx_fmt.test_accuracy:.2f}%" in out.stdout and str(run / EXPORTS_FILE) in out.stdout


def test_the_graph_takes_raw_pixels_any_batch_and_names_its_classes(exported):
    run = exported["opt6k"]
    graph = onnx.load(str(run / "onnx" / "model.onnx"))
    meta = {p.key: p.value for p in graph.metadata_props}
    model = modeling.from_pretrained(run / "model")
    assert json.loads(meta["id2label"]) == model.id2label and meta["architecture"] == "opt6k"
    assert "[0, 1]" in meta["input"]
    (batch_dim, *shape) = graph.graph.input[0].type.tensor_type.shape.dim
    assert batch_dim.dim_param and [d.dim_value for d in shape] == [1, 28, 28]
    session = ort.InferenceSession(str(run / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    for n in (1, 7):
        pixels = torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8)
        got = session.run(["logits"], {"images": (pixels.float() / 255).numpy()})[0]
        with torch.no_grad():
            want = model(model.normalize(pixels)).numpy()  # the model's own normalisation, inside the graph
        assert got.shape == (n, 10) and np.abs(got - want).max() < 1e-4
    examples = np.load(run / EXPORT_EXAMPLES_FILE)  # numpy alone reads them; no pickles
    from safetensors.torch import load_file

    stored = load_file(str(run / "examples.safetensors"))
    assert np.array_equal(examples["images"], stored["images"].numpy())
    assert np.array_equal(examples["labels"], stored["labels"].numpy())


def test_int8_is_calibrated_on_training_images_only(exported, mnist_dir, monkeypatch, tmp_path):
    splits = load_from_config({"source": "local", "dir": str(mnist_dir)})
    seen = []
    original = export_module._calibration_sample
    monkeypatch.setattr(export_module, "_calibration_sample", lambda images: seen.append(images) or original(images))
    model = modeling.from_pretrained(exported["opt6k"] / "model")
    pixels = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
    with torch.no_grad():
        before = model(model.normalize(pixels))
    export_module.export_model(model, splits, tmp_path, weights_sha256="0" * 64, dataset="MNIST", log=lambda _: None)
    assert len(seen) == 1 and seen[0] is splits.train_images
    # exporting leaves the model as it was: no traced tensor kept in its normalisation, the same outputs
    cached = [t for pair in model.__dict__.get("_normalization", {}).values() for t in pair]
    assert cached and all(type(t) is torch.Tensor for t in cached)
    with torch.no_grad():
        assert torch.equal(model(model.normalize(pixels)), before)
    # the same weights and data give the same int8 bytes: a re-export changes nothing a push would upload
    again = ExportsRecord.load(tmp_path)
    assert {f.format: f.sha256 for f in again.formats} == {f.format: f.sha256
                                                           for f in ExportsRecord.load(exported["opt6k"]).formats}


def test_a_failed_export_is_recorded_and_never_uploaded(exported, mnist_dir, monkeypatch, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(exported["opt6k"], run)
    monkeypatch.setattr(export_module, "MAX_INT8_LOSS", -100.0)  # every int8 export now fails its check
    splits = load_from_config({"source": "local", "dir": str(mnist_dir)})
    record = export_module.export_model(modeling.from_pretrained(run / "model"), splits, run,
                                        weights_sha256=sha256_file(run / "model" / "model.safetensors"),
                                        dataset="MNIST", log=lambda _: None)
    (int8,) = record.failed
    assert int8.format == "int8" and "loses" in int8.problem and "limit -100.0" in int8.problem
    from tinyhub.cards.publish import stage_folder

    staged = stage_folder(run, tmp_path / "upload", repo_id="tester/failed-int8", revision="main")
    files = {p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file()}
    assert {"onnx/model.onnx", EXPORTS_FILE, EXPORT_EXAMPLES_FILE} <= files and "onnx/model_int8.onnx" not in files
    readme = (staged / "README.md").read_text()
    assert "Not published: the int8 export, because it loses" in readme and "model_int8.onnx" not in readme


def test_push_refuses_exports_of_other_weights_or_changed_files(exported, tmp_path):
    from tinyhub.cards.card import CardError
    from tinyhub.cards.publish import stage_folder

    run = tmp_path / "run"
    shutil.copytree(exported["opt6k"], run)
    onnx_file = run / "onnx" / "model.onnx"
    onnx_file.write_bytes(onnx_file.read_bytes() + b"\0")
    with pytest.raises(CardError, match="is not the file exports.json measured: run `tinyhub export"):
        stage_folder(run, tmp_path / "up1", repo_id="tester/x", revision="main")
    shutil.copy(exported["opt6k"] / "onnx" / "model.onnx", onnx_file)
    stage_folder(run, tmp_path / "up2", repo_id="tester/x", revision="main")  # whole again: fine
    model = modeling.from_pretrained(run / "model")
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    model.save_pretrained(run / "model")  # the run's weights changed after the export
    with pytest.raises(CardError, match="made from other weights"):
        stage_folder(run, tmp_path / "up3", repo_id="tester/x", revision="main")


@pytest.mark.e2e
def test_export_errors_name_the_problem(tmp_path, exported):
    r = run_cli("export", str(tmp_path / "nowhere"))
    assert r.returncode == 1 and "error:" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("export", str(exported["opt6k"]), "--threads", "0")
    assert r.returncode == 2 and "--threads must be at least 1" in r.stderr
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    r = run_cli("export", str(exported["opt6k"]), "--output-dir", str(tmp_path / "mine"))
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert {p.name for p in (tmp_path / "mine").iterdir()} == {"notes.txt"}  # a folder of the user's: untouched


# ---------------------------------------------------------------------------------------------------------
# The card's Deploy section, as a stranger with only onnxruntime, numpy and huggingface_hub runs it
# ---------------------------------------------------------------------------------------------------------
def _only_site(packages: tuple[str, ...], dest: Path) -> Path:
    """A site folder holding exactly `packages` and what they require (from their installed metadata), linked."""
    todo, seen = list(packages), set()
    dest.mkdir()
    while todo:
        name = re.split(r"[\s<>=!;\[(~]", todo.pop())[0].lower().replace("_", "-")
        if not name or name in seen:
            continue
        seen.add(name)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # an optional requirement that is not installed here
        todo += [r for r in dist.requires or [] if "extra ==" not in r]
        for f in dist.files or []:
            top = f.parts[0]
            if top.endswith(".pth") or top in ("..", "__pycache__", "bin"):
                continue
            source = Path(dist.locate_file(top))
            if source.exists() and not (dest / top).exists():
                (dest / top).symlink_to(source)
    return dest


@pytest.mark.e2e
def test_deploy_section_and_onnxruntime_snippet_run_as_printed_for_a_stranger(hub, exported, mnist_dir, tmp_path):
    run = exported["opt6k"]
    repo = "tester/export-opt6k"
    r = hub_client(hub, tmp_path, "push", str(run), "--repo-id", repo, "--tag", "v1")
    assert r.returncode == 0, r.stderr[-3000:]
    files = hub.list_files(repo, "v1")
    record = ExportsRecord.load(run)
    assert {EXPORTS_FILE, EXPORT_EXAMPLES_FILE, *(f.file for f in record.passed)} <= set(files)
    assert all(hub.read_file(repo, f.file, "v1") == (run / f.file).read_bytes() for f in record.passed)
    card = hub.read_file(repo, "README.md", "v1").decode()
    deploy = card.split("## Deploy", 1)[1].split("\n## ", 1)[0]
    for f in record.passed:  # one row per verified format, its figures as exports.json has them
        assert re.search(rf"\| [^|]*`{re.escape(f.file)}`\) \| {f.bytes / 1024:,.1f} KiB \| {f.test_accuracy:.2f}% "
                         rf"\| {f.agreement:.2f}% \|", deploy), deploy
    assert f"{record.pytorch_test_accuracy:.2f}%" in deploy and record.hardware.text in deploy
    assert "```bash\npip install onnxruntime numpy huggingface_hub\n```" in deploy
    snippet = re.search(r"```python\n(.*?)```", deploy, re.S).group(1)
    site = _only_site(("onnxruntime", "numpy", "huggingface_hub"), tmp_path / "site")
    assert not (site / "torch").exists() and not (site / "safetensors").exists() and not (site / "tinyhub").exists()
    env = {**hub.client_env(tmp_path / "hf_home", token=None), "PYTHONPATH": str(site)}
    probe = "\nimport sys\nprint(sorted(m for m in ('torch', 'safetensors', 'tinyhub', 'onnx') if m in sys.modules))\n"
    # -S: none of this interpreter's site-packages, only the folder above
    out = subprocess.run([sys.executable, "-S", "-c", snippet + probe], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=SAFETY_TIMEOUT)
    assert out.returncode == 0, out.stderr[-3000:]
    predicted, true, loaded = out.stdout.strip().splitlines()[-3:]
    assert loaded == "[]"
    examples = np.load(run / EXPORT_EXAMPLES_FILE)
    model = modeling.from_pretrained(run / "model")
    with torch.no_grad():
        want = model(model.normalize(torch.from_numpy(examples["images"]))).argmax(1).tolist()
    assert predicted == "predicted: " + str([model.id2label[str(i)] for i in want])
    assert true == "true:      " + str([model.id2label[str(i)] for i in examples["labels"].tolist()])
    # A published model exports by its repo id too, from the weights the Hub serves.
    out = tmp_path / "from-hub"
    r = hub_client(hub, tmp_path, "export", f"{repo}@v1", "--data-dir", str(mnist_dir), "--output-dir", str(out),
                   "--formats", "onnx")
    assert r.returncode == 0, r.stderr[-3000:]
    from_hub = ExportsRecord.load(out)
    assert from_hub.weights_sha256 == record.weights_sha256 and [f.format for f in from_hub.formats] == ["onnx"]
    assert from_hub.formats[0].sha256 == next(f.sha256 for f in record.formats if f.format == "onnx")
