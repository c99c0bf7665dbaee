"""Several seeds in one pass (`seeds=[...]`, trainer/stack.py): each model of a stack computes, draws and saves
exactly what it would alone."""

import json
import re
import shutil

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from tinyhub import modeling
from tinyhub import trainer
from tinyhub.trainer import checkpoint as ckpt
from tinyhub.trainer.schema import ConfigError
from tinyhub.trainer.stack import ModelStack, StackError
from conftest import FAST, SAFETY_TIMEOUT, run_cli

STACKABLE = [m for m in modeling.list_models() if m != "net24k"]


def _members(name: str, seeds=(0, 1, 2), **kwargs):
    models = []
    for s in seeds:
        torch.manual_seed(s)
        models.append(modeling.create_model(name, **kwargs))
    return models


def _member_grads(stack: ModelStack, k: int) -> dict[str, torch.Tensor]:
    """Member k's gradients, keyed like the architecture's own parameters."""
    grads = {}
    for prefix, module in stack.net.named_modules():
        for pname, p in module.named_parameters(recurse=False):
            grads[f"{prefix}.{pname}" if prefix else pname] = p.grad.unflatten(0, (stack.members, -1))[k]
    return grads


def _stack_versus_alone(name: str, dtype, fmt, batch_seed: int) -> tuple[float, float]:
    """(forward, gradient) relative error of a 3-model stack against each model alone on one batch, the worst of
    the three; BatchNorm runs on batch statistics and its running statistics are checked to stay per model."""
    members = [m.to(dtype).to(memory_format=fmt) for m in _members(name, dropout=0.0)]
    stack = ModelStack(members).to(memory_format=fmt)
    torch.manual_seed(batch_seed)
    xs = [torch.rand(16, 1, 28, 28, dtype=dtype).contiguous(memory_format=fmt) for _ in members]
    ys = [torch.randint(0, 10, (16,)) for _ in members]
    out = stack(torch.cat(xs, 1).contiguous(memory_format=fmt))
    assert out.shape == (16, 3, 10)
    sum(F.cross_entropy(out[:, k], ys[k]) for k in range(3)).backward()
    forward_error = gradient_error = 0.0
    for k, model in enumerate(members):
        alone = model.train()(xs[k])
        forward_error = max(forward_error, float((out[:, k] - alone).detach().norm() / alone.detach().norm()))
        F.cross_entropy(alone, ys[k]).backward()
        ours, theirs = _member_grads(stack, k), {n: p.grad for n, p in model.named_parameters()}
        assert ours.keys() == theirs.keys()
        difference = sum(float((ours[n].reshape(g.shape) - g).pow(2).sum()) for n, g in theirs.items())
        gradient_error = max(gradient_error, (difference / sum(float(g.pow(2).sum()) for g in theirs.values())) ** .5)
        state = stack.member_state_dict(k)
        for key, value in model.state_dict().items():
            assert torch.allclose(state[key].double(), value.double(), rtol=1e-5, atol=1e-7), key
    return forward_error, gradient_error


@pytest.mark.parametrize("name", STACKABLE)
def test_each_member_computes_the_forward_and_gradient_of_the_model_alone(name):
    """In float64 a stack's model equals the model alone to 1e-12: the same arithmetic. In float32 the grouped
    kernels sum in another order: the forward agrees to 1e-5 with the model alone in the same memory format, and
    so does the gradient, except on batches where that rounding tips a ReLU or max-pool near-tie the other way
    for an element (as a batch size or a machine can for a model alone), which moves that element's gradient:
    at least one of three batches agrees to 1e-5, every batch to 5e-2 (a model mixed up with another is off by
    order 1)."""
    forward, gradient = _stack_versus_alone(name, torch.float64, torch.contiguous_format, 0)
    assert forward < 1e-12 and gradient < 1e-12
    for fmt in (torch.contiguous_format, torch.channels_last):
        errors = [_stack_versus_alone(name, torch.float32, fmt, seed) for seed in (1, 2, 3)]
        assert max(e[0] for e in errors) < 1e-5, errors
        assert min(e[1] for e in errors) < 1e-5 and max(e[1] for e in errors) < 5e-2, errors


def test_dropout_masks_are_the_ones_each_model_draws_alone():
    members = _members("model4", dropout=0.2)
    stack = ModelStack(members).to(memory_format=torch.channels_last)
    xs = [torch.rand(8, 1, 28, 28) for _ in members]
    for fmt in (torch.contiguous_format, torch.channels_last):  # the format each model's own run computes in
        stack.seed_dropout([torch.Generator().manual_seed(100 + k) for k in range(3)],
                           channels_last=fmt == torch.channels_last)
        out = stack(torch.cat(xs, 1).contiguous(memory_format=torch.channels_last))
        for k, model in enumerate(members):
            model.to(memory_format=fmt).train()
            torch.manual_seed(100 + k)  # what seeding.seed_epoch does for a model trained alone
            alone = model(xs[k].contiguous(memory_format=fmt))
            assert (out[:, k] - alone).norm() <= 1e-5 * alone.norm()
    other = ModelStack(_members("model4", dropout=0.2))
    with pytest.raises(RuntimeError, match="seed_dropout"):
        other(torch.rand(2, 3, 28, 28))


def test_rgb_inputs_are_normalised_and_shared_per_model():
    members = _members("gap5k", (0, 1), in_chans=3, mean=(0.1, 0.2, 0.3), std=(0.5, 0.6, 0.7))
    stack = ModelStack(members).eval()
    x = torch.rand(4, 6, 28, 28)  # model 0's images in channels 0-2, model 1's in 3-5
    assert torch.equal(stack.normalize01(x), torch.cat([m.normalize01(x[:, 3 * k:3 * k + 3])
                                                        for k, m in enumerate(members)], 1))
    shared = stack(stack.normalize01(x[:, :3]))  # evaluation: one batch for every model
    for k, m in enumerate(members):
        assert torch.allclose(shared[:, k], m.eval()(m.normalize01(x[:, :3])), rtol=1e-5, atol=1e-6)


def test_gradients_are_clipped_member_by_member_as_each_model_alone():
    members = _members("opt6k")
    stack = ModelStack(members)
    stack.seed_dropout([torch.Generator().manual_seed(k) for k in range(3)])
    x = torch.rand(8, 3, 28, 28)
    (stack(x) * torch.tensor([1.0, 50.0, 0.01]).view(1, 3, 1)).pow(2).sum().backward()
    expected = []
    for k, model in enumerate(members):
        grads = _member_grads(stack, k)
        for n, p in model.named_parameters():
            p.grad = grads[n].reshape(p.shape).clone()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        expected.append({n: p.grad for n, p in model.named_parameters()})
    norms = stack.clip_grad_norm_(1.0)
    assert norms[1] > 1.0 > norms[2]  # one member clipped, another untouched
    for k in range(3):
        clipped = _member_grads(stack, k)
        for n, g in expected[k].items():
            assert torch.allclose(clipped[n].reshape(g.shape), g, rtol=1e-5, atol=1e-8), (k, n)


def test_an_architecture_whose_forward_mixes_the_models_is_refused():
    with pytest.raises(StackError, match="net24k.*one at a time"):
        ModelStack(_members("net24k"))
    with pytest.raises(StackError, match="one architecture"):
        ModelStack([*_members("gap2k", (0,)), *_members("gap5k", (1,))])


def _weights(model_dir):
    return load_file(model_dir / "model" / "model.safetensors")


def _relative_difference(a: dict, b: dict) -> float:
    return max(float((a[k].float() - b[k].float()).norm() / b[k].float().norm().clamp_min(1e-12))
               for k in a if b[k].is_floating_point() and b[k].norm() > 1e-3)


# SGD: a step moves each weight by its gradient (Adam's first step moves it by the gradient's sign, which rounding
# can flip for a gradient that is zero but for rounding). channels_last: the format a stack computes in.
ONE_STEP = [*FAST, "model=model4", "model.dropout=0.1", "data.subset=128", "data.batch_size=128",
            "training.epochs=1", "training.threads=1", "training.grad_clip=0.5", "training.optimizer.name=sgd",
            "training.optimizer.lr=0.05", "training.channels_last=true"]


def test_a_stack_trains_each_seed_as_its_own_run_would(mnist_dir, tmp_path):
    """Initialisation, sample order, augmentation draws, dropout masks and clipping of each model: after a step,
    a stack's model has the weights of the same seed trained alone, and ends as an ordinary run directory."""
    common = [*ONE_STEP, f"data.dir={mnist_dir}"]
    group = trainer.train(trainer.load_config([*common, "seeds=[3,7]", f"run.dir={tmp_path / 'stack'}"]))
    alone = trainer.train(trainer.load_config([*common, "seed=7", f"run.dir={tmp_path / 'alone'}"]))
    assert sorted(p.name for p in group.iterdir() if p.is_dir()) == ["checkpoints", "seed_3", "seed_7"]
    member = group / "seed_7"
    assert sorted(p.name for p in member.iterdir()) == sorted(
        p.name for p in alone.iterdir() if p.name not in ("checkpoints", "train.log", "logs", ckpt.LOCK_FILE))
    assert _relative_difference(_weights(member), _weights(alone)) < 1e-4
    assert _relative_difference(_weights(group / "seed_3"), _weights(alone)) > 0.1  # another seed, another model
    record = trainer.load_run(member)
    assert record.seed == 7 and record.recipe.seed == 7 and record.recipe.seeds == [3, 7]
    assert record.final.test_total == 10000 and len(record.epochs) == 1
    loaded = modeling.from_pretrained(member / "model")
    splits = trainer.load_dataset_splits(dir=str(mnist_dir))
    with torch.no_grad():
        pred = torch.cat([loaded(loaded.normalize(x)).argmax(1) for x in splits.test_images.split(2000)])
    assert int((pred == splits.test_labels).sum()) == record.final.test_correct


@pytest.mark.e2e
def test_a_stack_resumes_exactly_and_refuses_what_it_cannot_do(mnist_dir, tmp_path):
    args = [*FAST, "model=gap2k", f"data.dir={mnist_dir}", "data.subset=512", "training.epochs=2", "seeds=[0,1]",
            "training.deterministic=true", "training.threads=1", "training.keep_checkpoints=5"]
    full = trainer.train(trainer.load_config([*args, f"run.dir={tmp_path / 'full'}"]))
    cut = tmp_path / "cut"  # what a run killed during epoch 2 leaves: its epoch-1 checkpoint
    shutil.copytree(full, cut, ignore=shutil.ignore_patterns("seed_*", "epoch_2", ckpt.LOCK_FILE))
    resumed = run_cli("train", *args, f"run.dir={cut}", "training.resume=auto")
    assert resumed.returncode == 0 and "Resuming from" in resumed.stdout, resumed.stderr[-2000:]
    for s in ("seed_0", "seed_1"):
        a, b = _weights(full / s), _weights(cut / s)
        assert all(torch.equal(a[k], b[k]) for k in a)
        ha, hb = trainer.load_run(full / s).epochs, trainer.load_run(cut / s).epochs
        assert [e.test_correct for e in ha] == [e.test_correct for e in hb] and len(hb) == 2

    with pytest.raises(ConfigError, match="already holds a finished run"):
        trainer.train(trainer.load_config([*args, f"run.dir={cut}"]))
    for override, error, message in (("seeds=[1,1]", ConfigError, "distinct seeds"),
                                     ("training.scheduler.name=plateau", ConfigError, "share one schedule"),
                                     ("model=net24k", StackError, "one at a time")):
        with pytest.raises(error, match=message):
            trainer.train(trainer.load_config([*args, override, f"run.dir={tmp_path / 'refused'}"]))
        assert not (tmp_path / "refused").exists()


@pytest.mark.e2e
def test_reproduce_trains_the_seeds_of_a_recipe_together(mnist_dir, tmp_path):
    out = tmp_path / "results"
    common = ["reproduce", "--models", "gap2k", "--seeds", "0", "1", "--runs-dir", str(tmp_path / "runs"),
              "--out", str(out), "--results-md", str(tmp_path / "RESULTS.md"), "--readme", str(tmp_path / "README.md")]
    r = run_cli(*common, *FAST, "data.subset=256", "training.epochs=1", f"data.dir={mnist_dir}", timeout=SAFETY_TIMEOUT)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "[gap2k seeds [0, 1] together] training" in r.stdout
    for s in (0, 1):
        seed_record = json.loads((out / "gap2k" / f"seed_{s}.json").read_text())
        run = trainer.load_run(tmp_path / "runs" / "gap2k-s0-1" / f"seed_{s}")
        assert seed_record["seed"] == s and seed_record["test_correct"] == run.final.test_correct
        assert len(seed_record["history"]) == 1
    # the time of a stack is the time of all its models, and the table says so
    assert re.search(r"\| \d+ s for 2 together \|", (tmp_path / "RESULTS.md").read_text())
    again = run_cli(*common)
    assert again.returncode == 0 and again.stdout.count("already finished") == 2


@pytest.mark.e2e
def test_reproduce_trains_several_recipes_side_by_side(mnist_dir, tmp_path):
    """--jobs 2: both recipes' processes start before either is waited for, each writes its own output file, and
    the records are those of the same runs trained one after the other (one torch thread each: the same sums)."""
    records = {}
    for jobs in (1, 2):
        out, runs = tmp_path / f"results{jobs}", tmp_path / f"runs{jobs}"
        r = run_cli("reproduce", "--models", "gap2k", "opt6k", "--seeds", "0", "--jobs", str(jobs),
                    "--runs-dir", str(runs), "--out", str(out), "--results-md", str(tmp_path / f"RESULTS{jobs}.md"),
                    "--readme", str(tmp_path / "README.md"), *FAST, "data.subset=256", "training.epochs=1",
                    "training.threads=1", f"data.dir={mnist_dir}", timeout=SAFETY_TIMEOUT)
        assert r.returncode == 0, r.stderr[-3000:]
        lines = r.stdout.splitlines()
        starts = [i for i, line in enumerate(lines) if "] training: " in line]
        finishes = [i for i, line in enumerate(lines) if re.search(r"\] done in \d+s$", line)]
        assert len(starts) == len(finishes) == 2
        assert (max(starts) < min(finishes)) == (jobs == 2)  # side by side, or one after the other
        assert all((runs / f"{m}-s0.out").is_file() == (jobs == 2) for m in ("gap2k", "opt6k"))
        records[jobs] = {m: json.loads((out / m / "seed_0.json").read_text()) for m in ("gap2k", "opt6k")}
        assert "gap2k" in (tmp_path / f"RESULTS{jobs}.md").read_text()
    for m in ("gap2k", "opt6k"):
        assert records[2][m]["test_correct"] == records[1][m]["test_correct"]


@pytest.mark.e2e
def test_reproduce_names_a_failed_job_and_keeps_the_others(mnist_dir, tmp_path):
    """A budget opt6k (6,132 parameters) exceeds: its process fails, gap2k's beside it is trained and recorded, and
    the command exits naming the failed one with the end of its output."""
    r = run_cli("reproduce", "--models", "opt6k", "gap2k", "--seeds", "0", "--jobs", "2", "--runs-dir",
                str(tmp_path / "runs"), "--out", str(tmp_path / "results"), "--results-md", str(tmp_path / "R.md"),
                "--readme", str(tmp_path / "README.md"), *FAST, "data.subset=256", "training.epochs=1",
                "model.param_budget=3000", f"data.dir={mnist_dir}", timeout=SAFETY_TIMEOUT)
    assert r.returncode != 0
    assert "error: [opt6k seed 0] training failed (exit 2)" in r.stdout
    assert re.search(r"\n  \| .*6,132", r.stdout), r.stdout[-2000:]  # the reason, from its output file
    assert "error: training failed for opt6k seed 0; fix it and re-run" in r.stderr
    assert (tmp_path / "results" / "gap2k" / "seed_0.json").is_file()
    assert not (tmp_path / "results" / "opt6k").exists()
