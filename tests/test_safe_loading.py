"""Loading what strangers publish: config.json supplies only the architecture's own arguments, of the right types
and within its budget, and the weights must match the architecture in names, shapes and dtypes."""

import json
import struct

import pytest
import torch
from safetensors.torch import save_file

from tinyhub import modeling
from conftest import SAFETY_TIMEOUT


def _saved(tmp_path, name="model4", **kwargs):
    folder = tmp_path / name
    modeling.create_model(name, **kwargs).save_pretrained(folder)
    return folder


def _edit_config(folder, **changes):
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize("key, value", [("strict", False), ("map_location", "meta"), ("device", "cuda")])
def test_config_cannot_pass_anything_but_constructor_arguments(tmp_path, key, value):
    folder = _saved(tmp_path)
    # unrelated weights of another model of the same shape would load silently if `strict: false` got through
    save_file({"junk": torch.zeros(3)}, str(folder / "model.safetensors"))
    _edit_config(folder, **{key: value})
    for load in (modeling.from_pretrained, modeling.get_model_class("model4").from_pretrained):
        with pytest.raises(modeling.ModelConfigError, match=rf"the key '{key}', which is not an argument of model4"):
            load(folder)


def test_weights_with_another_dtype_are_refused(tmp_path):
    folder = _saved(tmp_path)
    path = folder / "model.safetensors"
    raw = bytearray(path.read_bytes())
    (n,) = struct.unpack("<Q", raw[:8])
    header = raw[8:8 + n].decode()
    assert '"F32"' in header
    raw[8:8 + n] = header.replace('"F32"', '"I32"', 1).encode()  # same byte size, another dtype
    path.write_bytes(bytes(raw))
    with pytest.raises(modeling.WeightsMismatchError, match=r"dtype mismatches: .*file I32 vs model F32"):
        modeling.from_pretrained(folder)


def test_a_config_over_the_budget_is_refused_before_allocating(tmp_path):
    folder = _saved(tmp_path, "minimobilenet")
    # Hundreds of billions of parameters: building it for real would exhaust memory; it must be refused first.
    _edit_config(folder, width=20000.0)
    with pytest.raises(modeling.ModelConfigError, match=r"over 4x the family's budget of 10,000"):
        modeling.from_pretrained(folder)


@pytest.mark.parametrize("changes, message", [
    ({"id2label": ["a", "b"]}, r"'id2label' must be an object of strings"),
    ({"dropout": "0.1"}, r"'dropout' must be a number"),
    ({"num_classes": 0}, r"'num_classes' must be at least 1"),
    ({"num_classes": 2.5}, r"'num_classes' must be an integer"),
    ({"mean": "0.5"}, r"'mean' must be a list of numbers"),
    ({"architecture": "opt6k"}, r"do not match Opt6k|not an argument of opt6k|describes no valid"),
])
def test_wrong_types_give_one_clear_error_naming_the_key(tmp_path, changes, message):
    folder = _saved(tmp_path)
    _edit_config(folder, **changes)
    with pytest.raises((modeling.ModelConfigError, modeling.WeightsMismatchError), match=message):
        modeling.from_pretrained(folder)


def test_a_config_that_is_not_an_object_is_refused(tmp_path):
    folder = _saved(tmp_path)
    (folder / "config.json").write_text("[1, 2, 3]")
    with pytest.raises(modeling.ModelConfigError, match="must be a JSON object"):
        modeling.from_pretrained(folder)
    with pytest.raises(modeling.ModelConfigError, match="must be a JSON object"):
        modeling.get_model_class("model4").from_pretrained(folder)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(modeling.ModelConfigError, match="not valid JSON"):
        modeling.from_pretrained(folder)


def test_every_family_declares_checkable_arguments():
    for name in modeling.list_models():
        from tinyhub.modeling._base import _ARGUMENT_TYPES, declared_arguments

        for arg, annotation in declared_arguments(modeling.get_model_class(name)).items():
            assert annotation in _ARGUMENT_TYPES, f"{name}.{arg}: annotation {annotation!r} cannot be checked"


def test_an_honest_model_still_loads_identically(tmp_path):
    model = modeling.create_model("gap8k", dropout=0.1)
    model.save_pretrained(tmp_path / "m")
    loaded = modeling.from_pretrained(tmp_path / "m")
    x = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(model.normalize(x)), loaded(loaded.normalize(x)))


@pytest.mark.e2e
def test_identical_weights_give_identical_bytes_across_processes(tmp_path):
    import subprocess
    import sys

    code = ("import sys, torch; from tinyhub import modeling; torch.manual_seed(0); "
            "modeling.create_model('model4').save_pretrained(sys.argv[1])")
    for out in ("a", "b", "c"):
        r = subprocess.run([sys.executable, "-c", code, str(tmp_path / out)], capture_output=True, text=True,
                           timeout=SAFETY_TIMEOUT)
        assert r.returncode == 0, r.stderr[-2000:]
    a = (tmp_path / "a" / "model.safetensors").read_bytes()
    b, c = ((tmp_path / out / "model.safetensors").read_bytes() for out in ("b", "c"))
    assert a == b == c


@pytest.mark.parametrize("architecture, changes", [
    ("model4", {"num_classes": 300_000_000}),       # 300 bytes of JSON; a label table of it would be gigabytes
    ("opt6k", {"in_chans": 2**40}),
    ("gap8k", {"num_classes": 10, "input_size": 10**9}),
])
def test_sizes_in_a_config_are_refused_before_anything_proportional_is_allocated(tmp_path, architecture, changes):
    import tracemalloc

    folder = _saved(tmp_path, architecture)
    _edit_config(folder, **changes)
    tracemalloc.start()
    try:
        with pytest.raises(modeling.ModelConfigError, match=r"cannot fit a .* within .* parameters"):
            modeling.from_pretrained(folder)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20, f"{peak / 2**20:.0f} MiB allocated before the refusal"


def test_a_float_width_far_over_the_budget_is_refused_unbuilt(tmp_path):
    folder = _saved(tmp_path, "minimobilenet")
    _edit_config(folder, width=1e12)
    with pytest.raises(modeling.ModelConfigError):
        modeling.from_pretrained(folder)
