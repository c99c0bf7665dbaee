"""The model zoo: counts, shapes, save/load round trips, strict loading, pickle refusal, wrappers, errors."""

import json
import os

import pytest
import torch
from safetensors.torch import load_file, save_file

from tinyhub import modeling
from tinyhub.modeling.catalog import CATALOG

#: Each architecture's parameter count is declared once, in the catalog (which `tinyhub list-models` prints without
#: torch); every entry is built here and must have exactly that many.
EXPECTED_PARAMS = {name: entry.parameters for name, entry in CATALOG.items()}


def test_registry_lists_the_seed_architectures_and_the_variants():
    assert modeling.list_models() == sorted(EXPECTED_PARAMS)
    assert {"efficient", "net24k", "model4", "opt6k", "minimobilenet"} <= set(EXPECTED_PARAMS)  # the five seeds
    assert EXPECTED_PARAMS["gap2k"] < 2_000 and EXPECTED_PARAMS["gap5k"] <= 5_000  # the frontier rows' budgets


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_parameter_count_and_forward_shape(name):
    model = modeling.create_model(name).eval()
    assert model.num_parameters() == EXPECTED_PARAMS[name]
    out = model(torch.randn(5, 1, 28, 28))
    assert out.shape == (5, 10)
    assert torch.isfinite(out).all()


def test_minimobilenet_width_multiplier_uses_the_budget():
    wide = modeling.create_model("minimobilenet", width=2.0)
    assert wide.num_parameters() == 9_866
    with pytest.raises(modeling.ParameterBudgetError, match="budget of 10,000"):
        modeling.create_model("minimobilenet", width=2.1)


def test_declared_budget_is_enforced():
    with pytest.raises(modeling.ParameterBudgetError, match="7,194 parameters, over its budget of 5,000"):
        modeling.create_model("model4", param_budget=5_000)
    assert modeling.create_model("model4", param_budget=7_194).num_parameters() == 7_194


def test_unknown_name_lists_available_models():
    with pytest.raises(modeling.UnknownModelError) as err:
        modeling.create_model("model5")
    msg = str(err.value)
    assert "model5" in msg and all(name in msg for name in EXPECTED_PARAMS)
    assert "Did you mean 'model4'" in msg


def test_wrong_input_shape_names_the_expected_shape():
    model = modeling.create_model("opt6k")
    with pytest.raises(ValueError, match=r"expects input of shape \(batch, 1, 28, 28\).*got \(2, 3, 28, 28\)"):
        model(torch.zeros(2, 3, 28, 28))
    with pytest.raises(ValueError, match=r"got \(28, 28\)"):
        model(torch.zeros(28, 28))


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_save_then_load_gives_bit_identical_outputs(name, tmp_path):
    torch.manual_seed(0)
    model = modeling.create_model(name).eval()
    # Give BatchNorm non-trivial statistics so that buffers matter in the comparison.
    model.train()
    model(torch.randn(16, 1, 28, 28))
    model.eval()
    model.save_pretrained(tmp_path)
    assert {"config.json", "model.safetensors"} <= {p.name for p in tmp_path.iterdir()}
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["architecture"] == name
    assert config["num_classes"] == 10 and config["input_size"] == 28 and config["in_chans"] == 1
    assert config["mean"] == [0.1307] and config["std"] == [0.3081]
    assert config["id2label"] == {str(i): str(i) for i in range(10)}
    assert config["num_parameters"] == EXPECTED_PARAMS[name]

    x = torch.randn(7, 1, 28, 28)
    by_class = type(model).from_pretrained(tmp_path)
    generic = modeling.from_pretrained(tmp_path)
    assert type(generic) is type(model)
    assert torch.equal(by_class(x), model(x))
    assert torch.equal(generic(x), model(x))


def test_constructor_arguments_round_trip_through_config(tmp_path):
    model = modeling.create_model("minimobilenet", width=2.0, dropout=0.1, num_classes=4,
                                  id2label={"0": "a", "1": "b", "2": "c", "3": "d"})
    model.save_pretrained(tmp_path)
    loaded = modeling.from_pretrained(tmp_path)
    assert loaded.num_parameters() == model.num_parameters()
    assert loaded.id2label == {"0": "a", "1": "b", "2": "c", "3": "d"}
    assert loaded.head[1].p == 0.1 and loaded.num_classes == 4


def _saved_model4(tmp_path):
    modeling.create_model("model4").save_pretrained(tmp_path)
    return tmp_path / "model.safetensors"


def test_strict_load_names_missing_keys(tmp_path):
    weights = _saved_model4(tmp_path)
    state = load_file(weights)
    del state["classifier.weight"]
    save_file(state, weights)
    with pytest.raises(modeling.WeightsMismatchError, match=r"missing keys: classifier.weight"):
        modeling.from_pretrained(tmp_path)


def test_strict_load_names_unexpected_keys(tmp_path):
    weights = _saved_model4(tmp_path)
    state = load_file(weights)
    state["extra.bias"] = torch.zeros(3)
    save_file(state, weights)
    with pytest.raises(modeling.WeightsMismatchError, match=r"unexpected keys: extra.bias"):
        modeling.get_model_class("model4").from_pretrained(tmp_path)


def test_strict_load_names_shape_mismatches(tmp_path):
    weights = _saved_model4(tmp_path)
    state = load_file(weights)
    state["classifier.weight"] = torch.zeros(10, 12, 1, 1)
    save_file(state, weights)
    with pytest.raises(modeling.WeightsMismatchError, match=r"classifier.weight: file \(10, 12, 1, 1\)"):
        modeling.from_pretrained(tmp_path)


@pytest.mark.parametrize("pickle_name", ["pytorch_model.bin", "model.pt", "weights.pth"])
def test_pickle_only_folder_is_refused_without_unpickling(tmp_path, monkeypatch, pickle_name):
    model = modeling.create_model("opt6k")
    model.save_pretrained(tmp_path)
    os.remove(tmp_path / "model.safetensors")
    torch.save(model.state_dict(), tmp_path / pickle_name)

    def no_unpickling(*args, **kwargs):
        raise AssertionError("torch.load must never be called")

    monkeypatch.setattr(torch, "load", no_unpickling)
    with pytest.raises(modeling.PickleRefusedError, match=f"only pickled weights.*{pickle_name}.*never loads pickles"):
        modeling.from_pretrained(tmp_path)


def _keys_are_clean(folder):
    keys = load_file(folder / "model.safetensors").keys()
    assert not [k for k in keys if "module." in k or "_orig_mod" in k]
    return set(keys)


def test_saved_keys_have_no_torch_compile_prefix(tmp_path):
    model = modeling.create_model("model4")
    plain_keys = set(model.state_dict())
    compiled = torch.compile(model)
    assert any(k.startswith("_orig_mod.") for k in compiled.state_dict())
    compiled.save_pretrained(tmp_path / "whole")
    assert _keys_are_clean(tmp_path / "whole") == plain_keys
    # A compiled submodule puts `_orig_mod.` in the middle of keys.
    model.features = torch.compile(model.features)
    assert any("._orig_mod." in k for k in model.state_dict())
    model.save_pretrained(tmp_path / "inner")
    assert _keys_are_clean(tmp_path / "inner") == plain_keys
    assert type(modeling.from_pretrained(tmp_path / "inner")).__name__ == "Model4"


def test_saved_keys_have_no_ddp_prefix(tmp_path, monkeypatch):
    import torch.distributed as dist

    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29531")
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        model = modeling.create_model("opt6k")
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        assert all(k.startswith("module.") for k in ddp.state_dict())
        assert modeling.unwrap_model(ddp) is model
        assert set(modeling.clean_state_dict(ddp.state_dict())) == set(model.state_dict())
        modeling.unwrap_model(torch.compile(ddp)).save_pretrained(tmp_path)
        assert _keys_are_clean(tmp_path) == set(model.state_dict())
    finally:
        dist.destroy_process_group()


def test_config_without_architecture_is_explained(tmp_path):
    modeling.create_model("model4").save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    del config["architecture"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="no 'architecture' field"):
        modeling.from_pretrained(tmp_path)


def test_summary_table_counts_params_and_macs():
    model = modeling.create_model("model4")
    s = modeling.summary(model)
    assert s.total_params == 7_194 == sum(r.params for r in s.rows)
    first = s.rows[0]
    assert (first.kind, first.output_shape, first.params) == ("Conv2d", (6, 28, 28), 54)
    assert first.macs == 28 * 28 * 6 * 9
    assert s.macs == 1_619_452
    text = str(s)
    assert "Total params: 7,194" in text and "MACs per image: 1,619,452" in text
    assert "| **total** | | | **7,194** |" in s.to_markdown()
    net = modeling.summary(modeling.create_model("net24k"))
    assert net.rows[-1].output_shape == (10,) and any(r.output_shape == (56, 4, 4) for r in net.rows)


def _with_torch_pooling(model):
    """The same model with every tinyhub MaxPool2d replaced by torch's own nn.MaxPool2d."""
    from torch import nn

    from tinyhub.modeling._blocks import MaxPool2d

    for name, child in model.named_children():
        if isinstance(child, MaxPool2d):
            setattr(model, name, nn.MaxPool2d(child.kernel_size, child.stride, child.padding, child.dilation,
                                              ceil_mode=child.ceil_mode))
        else:
            _with_torch_pooling(child)
    return model


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("size,ceil_mode", [(28, False), (5, False), (7, True)])
def test_channels_last_max_pool_is_bit_identical_to_torch(dtype, size, ceil_mode):
    from torch import nn

    from tinyhub.modeling._blocks import MaxPool2d

    torch.manual_seed(0)
    # Rounded ReLU outputs: many windows hold ties, where both must pick the same (first) maximum.
    x = torch.relu(torch.randn(6, 5, size, size)).mul(4).round().div(4).to(dtype)
    ours, theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    y_ours, y_theirs = MaxPool2d(2, ceil_mode=ceil_mode)(ours), nn.MaxPool2d(2, ceil_mode=ceil_mode)(theirs)
    grad = torch.randn(y_theirs.shape).to(dtype)
    y_ours.backward(grad)
    y_theirs.backward(grad)
    assert y_ours.is_contiguous() and ours.grad.is_contiguous()  # NCHW in, NCHW out
    assert torch.equal(y_ours, y_theirs)
    assert torch.equal(ours.grad, theirs.grad)
    with torch.no_grad():
        assert torch.equal(MaxPool2d(2, ceil_mode=ceil_mode)(x), y_theirs)


@pytest.mark.parametrize("name", ["model4", "opt6k", "net24k", "efficient", "gap8k"])
def test_models_train_exactly_as_with_torch_pooling(name):
    """The faster pooling changes no run: a training step's loss and every gradient are the same bits."""
    import copy

    torch.manual_seed(0)
    ours = modeling.create_model(name)
    theirs = _with_torch_pooling(copy.deepcopy(ours))
    assert any(isinstance(m, torch.nn.MaxPool2d) for m in ours.modules())
    x, y = torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))
    losses = []
    for model in (ours, theirs):
        torch.manual_seed(1)  # the same dropout masks
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        losses.append(loss)
    assert torch.equal(losses[0], losses[1])
    for (n, p), q in zip(ours.named_parameters(), theirs.parameters()):
        assert torch.equal(p.grad, q.grad), n


def test_the_torch_free_catalogue_says_what_the_models_are():
    """`tinyhub list-models` prints modeling/catalog.py without importing torch: every entry must be the model
    create_model builds, and every packaged model must be in it."""
    from tinyhub.modeling.catalog import CATALOG

    assert sorted(CATALOG) == modeling.list_models()
    for name, entry in CATALOG.items():
        model = modeling.create_model(name)
        assert model.num_parameters() == entry.parameters, name
        assert modeling.model_info(name)["param_budget"] == entry.param_budget
        assert type(model).__module__ == f"tinyhub.modeling.{entry.module}"


def test_torch_export_of_a_fresh_model_keeps_no_traced_tensor_in_it():
    # torch.export (under tinyhub export and torch.onnx.export) runs the forward on fake tensors; the normalisation
    # constants it builds must not stay in the model, which would then compute with them afterwards. A graph that
    # calls normalize01 itself (tinyhub export's raw-pixels graph does) is where they stayed.
    model = modeling.create_model("opt6k").eval()

    class RawPixels(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, images01):
            return self.model.forward_features(self.model.normalize01(images01))

    torch.export.export(RawPixels().eval(), (torch.rand(2, 1, 28, 28),), strict=False)
    assert all(type(t) is torch.Tensor for pair in model.__dict__.get("_normalization", {}).values() for t in pair)
    twin = modeling.create_model("opt6k").eval()
    twin.load_state_dict(model.state_dict())
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model(x), twin(x))
