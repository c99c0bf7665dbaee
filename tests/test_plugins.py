"""Extension points from outside the package: a plugin distribution, built and installed here, adds a data source
and an export format through tinyhub's entry-point groups, and the ordinary commands use them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli

pytestmark = pytest.mark.e2e

PLUGIN_SETUP = """\
[metadata]
name = tinyhub-blobs-plugin
version = 0.1

[options]
py_modules = tinyhub_blobs

[options.entry_points]
tinyhub.data_sources =
    blobs = tinyhub_blobs:read_blobs
tinyhub.export_formats =
    pt2 = tinyhub_blobs:PT2
"""

PLUGIN_MODULE = '''\
"""A third party's source and format, written only against tinyhub's documented contracts."""
from pathlib import Path

import numpy as np
import torch

from tinyhub.trainer.data import SourceData
from tinyhub.cards.export import ExportFormat


def read_blobs(data, cache_root):
    """Arrays in one .npz (x_train, y_train, x_test, y_test) in data.dir."""
    arrays = np.load(Path(data.dir) / "blobs.npz")
    return SourceData({"train_images": arrays["x_train"], "train_labels": arrays["y_train"],
                       "test_images": arrays["x_test"], "test_labels": arrays["y_test"]},
                      label_names=["left", "right"], names_from="the plugin's own names",
                      info={"file": str(Path(data.dir) / "blobs.npz")})


class _RawPixels(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, images):
        return self.model.forward_features(self.model.normalize01(images))


def _build(model, splits, work, built):
    path = work / "model.pt2"
    program = torch.export.export(_RawPixels(model).eval(), (torch.rand(2, *model.expected_input_shape),),
                                  dynamic_shapes={"images": {0: torch.export.Dim("batch")}})
    torch.export.save(program, str(path))
    return path, None


def _open(path, threads):
    module = torch.export.load(str(path)).module()
    return lambda images01: module(torch.from_numpy(images01)).detach().numpy()


PT2 = ExportFormat("pt2/model.pt2", _build, _open, "torch.export program (.pt2)")
'''


def _blobs(folder: Path, n_train: int = 600, n_test: int = 200) -> Path:
    """Two classes: a bright square on the left or on the right of a 12x12 image, with noise."""
    rng = np.random.default_rng(0)

    def split(n):
        y = rng.integers(0, 2, n)
        x = rng.integers(0, 60, (n, 12, 12)).astype(np.uint8)
        for i, label in enumerate(y):
            c = 1 if label == 0 else 7
            x[i, 4:8, c:c + 4] = rng.integers(180, 256)
        return x, y

    (x_train, y_train), (x_test, y_test) = split(n_train), split(n_test)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "blobs.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return folder


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory) -> Path:
    """The plugin built from its sources and installed into a folder of its own (not into the test environment):
    processes started with it on PYTHONPATH see its entry points."""
    root = tmp_path_factory.mktemp("plugin")
    src = root / "src"
    src.mkdir()
    (src / "setup.cfg").write_text(PLUGIN_SETUP)
    (src / "pyproject.toml").write_text('[build-system]\nrequires = ["setuptools"]\n'
                                        'build-backend = "setuptools.build_meta"\n')
    (src / "tinyhub_blobs.py").write_text(PLUGIN_MODULE)
    target = root / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                           "--no-index", "--target", str(target), str(src)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert list(target.glob("tinyhub_blobs_plugin-*.dist-info"))
    return target


def _with_plugin(plugin_path: Path) -> dict:
    return {"PYTHONPATH": os.pathsep.join([str(plugin_path), os.environ.get("PYTHONPATH", "")])}


def test_a_plugin_source_and_format_are_used_by_train_and_export(plugin_path, tmp_path):
    data = _blobs(tmp_path / "blobs")
    env = _with_plugin(plugin_path)
    run_dir = tmp_path / "run"
    trained = run_cli("train", "model=gap2k", "data.source=blobs", f"data.dir={data}", "data.name=blobs",
                      "training.epochs=2", "data.batch_size=32", "progress=false", "report_to=none",
                      "training.optimizer.name=adam", "training.optimizer.lr=0.01", "training.scheduler.name=none",
                      f"run.dir={run_dir}", env_extra=env)
    assert trained.returncode == 0, trained.stderr[-3000:]
    results = json.loads((run_dir / "results.json").read_text())
    identity = results["data"]["identity"]
    assert identity["source"] == "blobs" and identity["name"] == "blobs"
    assert results["data"]["kind"] == "blobs" and results["data"]["image_shape"] == [1, 12, 12]
    assert results["label_names"] == ["left", "right"]
    assert results["final"]["test_accuracy"] > 90  # the two classes are easy: the source's data was learned

    exported = run_cli("export", str(run_dir), "--formats", "pt2", "--threads", "1", env_extra=env)
    assert exported.returncode == 0, exported.stderr[-3000:] + exported.stdout[-2000:]
    record = json.loads((run_dir / "exports.json").read_text())
    pt2 = next(f for f in record["formats"] if f["format"] == "pt2")
    assert pt2["passed"] and pt2["agreement"] == 100.0 and (run_dir / "pt2" / "model.pt2").is_file()
    assert pt2["opset"] is None and pt2["test_total"] == 200


def test_without_the_plugin_its_names_are_refused_with_the_known_ones(tmp_path):
    refused = run_cli("train", "model=gap2k", "data.source=blobs", f"data.dir={tmp_path}", "report_to=none")
    assert refused.returncode == 2
    assert "data.source='blobs': choose auto, local, hub, folder, csv or npz" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_the_plugin_names_reach_the_help_and_the_choices(plugin_path):
    code = textwrap.dedent("""
        from tinyhub.registry import DATA_SOURCES, EXPORT_FORMATS
        from tinyhub.trainer.schema import DataConfig, declared, described_choices
        source = next(d for d in declared(DataConfig) if d.key == "source")
        print(described_choices(source.facts))
        print(EXPORT_FORMATS.names(), EXPORT_FORMATS.help("pt2"))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, **_with_plugin(plugin_path)})
    assert out.returncode == 0, out.stderr
    assert "blobs (Arrays in one .npz (x_train, y_train, x_test, y_test) in data.dir.)" in out.stdout
    assert "('onnx', 'int8', 'pt2') torch.export program (.pt2)" in out.stdout


def test_a_plugin_source_that_fails_is_one_error_line(plugin_path, tmp_path):
    """The blobs source reads data.dir/blobs.npz: a folder without it is the source's failure, named, no traceback."""
    r = run_cli("train", "model=gap2k", "data.source=blobs", f"data.dir={tmp_path}", "report_to=none",
                "progress=false", f"run.dir={tmp_path / 'run'}", env_extra=_with_plugin(plugin_path))
    assert r.returncode == 1, r.stderr[-2000:]
    assert "error: the blobs data source could not read the data (FileNotFoundError:" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "run" / "results.json").exists()
