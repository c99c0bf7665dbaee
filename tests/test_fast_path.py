"""The GPU fast path, rehearsed on the CPU: the optimizer's kernels, the step split where a CUDA graph cuts it,
the graph's bookkeeping (warm-up, static buffers, an epoch's smaller last batch, a failed capture), and when a recipe
cannot be captured. Each against torch's own training loop, bit for bit. The same on a GPU: tests/test_gpu.py."""

import contextlib
import logging

import pytest
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.state import AcceleratorState

from tinyhub import modeling, trainer
from tinyhub.trainer import cuda_graph
from tinyhub.trainer.schema import typed_config
from tinyhub.trainer.step import TrainStep, assemble_step, optimizer_implementation

BATCH, STEPS = 32, 6


def _batches(n_full: int, last: int | None = None, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    sizes = [BATCH] * n_full + ([last] if last else [])
    return [(torch.rand(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)) for n in sizes]


def _recipe(*overrides, model="model4"):
    return typed_config(trainer.load_config([f"model={model}", "progress=false", "report_to=none", *overrides]))


def _model(name="model4", **kwargs):
    """As its recipe builds it (model4's: no dropout, so nothing draws from the global RNG while training)."""
    torch.manual_seed(0)
    return modeling.create_model(name, **{**_recipe(model=name).model_arguments, **kwargs})


def _assembled(model, cfg, steps_per_epoch=STEPS):
    AcceleratorState._reset_state(reset_partial_state=True)
    return assemble_step(model, cfg.training, Accelerator(cpu=True), epochs=2, steps_per_epoch=steps_per_epoch)


def _run(step, model, batches):
    """Each batch through `step` as the engine calls it; the losses it returned, and the weights after."""
    model.train()
    losses = [step(model.normalize01(x), y.unsqueeze(1), x)[0].clone() for x, y in batches]
    return losses, {k: v.clone() for k, v in model.state_dict().items()}


def _assert_same_bits(a: dict, b: dict):
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"not bit-identical: {different}"


def test_the_cpu_step_is_torch_own_training_loop_bit_for_bit():
    """model4's recipe (SGD Nesterov with weight decay, OneCycle moving the rate and the momentum every step): the
    engine's step on the CPU, with implementation=auto, is exactly torch's textbook loop with torch's default
    optimizer, so every CPU record stays what it was."""
    cfg = _recipe()
    ours, theirs = _model(), _model()
    assert optimizer_implementation("auto", "cpu") == "forloop"
    assembled = _assembled(ours, cfg)
    assert isinstance(assembled.step, TrainStep) and not assembled.cuda_graphs
    assert assembled.optimizer_implementation == "forloop"
    opt, sch = cfg.training.optimizer, cfg.training.scheduler
    optimizer = torch.optim.SGD(theirs.parameters(), lr=opt.lr, momentum=opt.momentum, nesterov=opt.nesterov,
                                weight_decay=opt.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=sch.max_lr, total_steps=2 * STEPS,
                                                   pct_start=sch.pct_start)
    batches = _batches(STEPS)
    _, our_weights = _run(assembled.step, ours, batches)
    theirs.train()
    for x, y in batches:
        loss = F.cross_entropy(theirs(theirs.normalize01(x)), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    _assert_same_bits(our_weights, theirs.state_dict())


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_foreach_and_fused_kernels_train_the_same_model_to_rounding(name):
    """The GPU's default (fused) and foreach run the same update as the for-loop, rounded in another order."""
    overrides = [f"training.optimizer.name={name}"] + (
        ["training.optimizer.weight_decay=0.01", "training.scheduler.max_lr=0.01"] if name == "adamw" else [])
    weights = {}
    for implementation in ("forloop", "foreach", "fused"):
        model = _model()
        assembled = _assembled(model, _recipe(*overrides, f"training.optimizer.implementation={implementation}"))
        assert assembled.optimizer_implementation == implementation
        group = assembled.optimizer.param_groups[0]
        assert bool(group["fused"]) == (implementation == "fused")
        assert bool(group["foreach"]) == (implementation == "foreach")
        weights[implementation] = _run(assembled.step, model, _batches(STEPS))[1]
    for implementation in ("foreach", "fused"):
        for key, value in weights["forloop"].items():
            torch.testing.assert_close(weights[implementation][key], value, rtol=1e-4, atol=1e-5)


def test_eager_steps_into_the_graph_gradient_buffers_are_the_same_steps():
    """After a capture the gradients are the graph's buffers: an eager step zeroes them instead of dropping them,
    and computes exactly what the ordinary step does."""
    cfg, batches = _recipe(), _batches(STEPS, last=7)
    plain, kept = _model(), _model()
    plain_weights = _run(_assembled(plain, cfg).step, plain, batches)[1]
    step = _assembled(kept, cfg).step
    kept.train()
    buffers = None
    for x, y in batches:
        step.forward_backward(kept.normalize01(x), y.unsqueeze(1), x, keep_gradient_buffers=True)
        if buffers is None:
            buffers = [p.grad for p in kept.parameters()]
        assert all(p.grad is b for p, b in zip(kept.parameters(), buffers)), "a gradient buffer was replaced"
        step.update()
    _assert_same_bits(plain_weights, kept.state_dict())


class _RehearsalGraph:
    """torch.cuda.CUDAGraph on the CPU, as a real one behaves: `capture` records the step without running it (the
    forward's BatchNorm statistics are put back) and keeps the gradient buffers it allocated; each replay runs the
    step and writes the gradients into those buffers, whatever the parameters' .grad say by then."""

    def __init__(self, model, fail: bool = False):
        self.model, self.fail, self.replays, self.body, self.buffers = model, fail, 0, None, []

    def replay(self):
        self.replays += 1
        params = list(self.model.parameters())
        before = [p.grad for p in params]
        self.body()
        for p, buffer, was in zip(params, self.buffers, before):
            buffer.copy_(p.grad)
            p.grad = was

    @contextlib.contextmanager
    def capture(self, graph, **_):
        if self.fail:
            raise RuntimeError("operation not permitted when stream is capturing")
        saved = {k: v.clone() for k, v in self.model.state_dict().items()}
        yield
        self.buffers = [p.grad for p in self.model.parameters()]
        with torch.no_grad():
            for k, v in self.model.state_dict().items():
                v.copy_(saved[k])


def _rehearse_on_cpu(monkeypatch, model, fail=False):
    """What trainer/cuda_graph.py asks of torch.cuda, done on the CPU."""
    rehearsal = _RehearsalGraph(model, fail)

    class Stream:
        def wait_stream(self, other):
            pass

    monkeypatch.setattr(torch.cuda, "Stream", Stream)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda: Stream())
    monkeypatch.setattr(torch.cuda, "stream", lambda s: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "CUDAGraph", lambda: rehearsal)
    monkeypatch.setattr(torch.cuda, "graph", rehearsal.capture)
    return rehearsal


@pytest.mark.parametrize("fail", [False, True], ids=["captured", "capture-fails"])
def test_a_graphed_step_trains_exactly_as_the_eager_step(monkeypatch, caplog, fail):
    """Warm-up steps, the capture, replays from the static buffers, each epoch's smaller last batch stepped eagerly
    into the graph's gradient buffers — or, when the capture fails, a warning and eager steps: the same weights and
    losses as the eager step, bit for bit."""
    cfg = _recipe()
    epoch = _batches(STEPS, last=7)
    batches = epoch + _batches(STEPS, last=7, seed=1)
    eager = _model()
    eager_losses, eager_weights = _run(_assembled(eager, cfg, STEPS + 1).step, eager, batches)
    graphed = _model()
    rehearsal = _rehearse_on_cpu(monkeypatch, graphed, fail)
    step = cuda_graph.GraphedStep(_assembled(graphed, cfg, STEPS + 1).step)
    rehearsal.body = step._captured_body
    with caplog.at_level(logging.WARNING, logger="tinyhub"):
        losses, weights = _run(step, graphed, batches)
    _assert_same_bits(eager_weights, weights)
    assert all(torch.equal(a, b) for a, b in zip(eager_losses, losses))
    if fail:
        assert not step.captured and rehearsal.replays == 0
        assert "capturing the step failed (RuntimeError: operation not permitted" in caplog.text
        assert "training.cuda_graphs=false" in caplog.text
    else:
        full_batches = sum(len(y) == BATCH for _, y in batches)
        assert step.captured and rehearsal.replays == full_batches - cuda_graph.WARMUP_STEPS
        assert not caplog.text


def test_what_cannot_be_captured_is_named_with_its_setting():
    cuda, plain, dropout = torch.device("cuda"), _model("gap8k"), _model("opt6k", dropout=0.1)
    blockers = dict(device=cuda, processes=1, mixed_precision="no", compiled=False, distilled=False,
                    deterministic=False, n_models=1, model=plain)
    assert cuda_graph.capture_blockers(**blockers) == []
    assert cuda_graph.capture_blockers(**{**blockers, "mixed_precision": "bf16"}) == []
    assert cuda_graph.capture_blockers(**{**blockers, "deterministic": True}) == []  # no random draws to replay
    assert cuda_graph.capture_blockers(**{**blockers, "model": dropout}) == []
    for change, named in [({"device": torch.device("cpu")}, "on the cpu"), ({"processes": 2}, "2 processes"),
                          ({"mixed_precision": "fp16"}, "training.mixed_precision=fp16"),
                          ({"compiled": True}, "training.compile=true"), ({"distilled": True}, "training.distill"),
                          ({"model": dropout, "deterministic": True}, "training.deterministic=true with dropout"),
                          ({"model": dropout, "n_models": 3}, "seeds=[...] with dropout")]:
        reasons = cuda_graph.capture_blockers(**{**blockers, **change})
        assert len(reasons) == 1 and named in reasons[0], (change, reasons)


def test_a_cpu_run_asked_for_cuda_graphs_says_why_not_and_trains(mnist_dir, tmp_path, caplog):
    from conftest import FAST

    cfg = trainer.load_config([*FAST, "model=gap2k", "data.subset=256", "training.epochs=1", f"data.dir={mnist_dir}",
                               f"run.dir={tmp_path / 'run'}", "training.cuda_graphs=true"])
    with caplog.at_level(logging.INFO, logger="tinyhub"):
        run_dir = trainer.train(cfg)
    assert ("warning: training.cuda_graphs=true: the step is not captured (CUDA graphs need a CUDA device, and this "
            "run trains on the cpu); it runs eagerly.") in caplog.text
    record = trainer.load_run(run_dir)
    assert record.cuda_graphs is False and record.recipe.training.cuda_graphs is True
    assert "warning: training.cuda_graphs" in (run_dir / "train.log").read_text()
