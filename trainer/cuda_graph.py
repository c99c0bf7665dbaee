"""The training step's forward and backward, captured once in a CUDA graph and replayed for every full batch.

A tiny model's step is a hundred or so kernels of a few microseconds each: on a GPU the device mostly waits for the
host to launch them. Replaying one captured graph launches them all at once. What is captured is exactly the eager
step's forward, loss and backward (`TrainStep.forward_backward`) on static input buffers; the update stays eager
(`TrainStep.update`): with `training.optimizer.implementation=auto` it is one fused kernel on a GPU, and it reads the
schedule's learning rate and momentum (OneCycle changes both every step) as host numbers, so nothing of the schedule
has to live inside the graph, and gradient clipping and the EMA run as in every other run.

The first WARMUP_STEPS steps of a run are eager, on a side stream (CUDA graphs need the lazy initialisations done,
and autograd's streams settled, before a capture); they are real steps of the run. A batch of another size (an
epoch's last, smaller one) is stepped eagerly into the same gradient buffers. When the recipe cannot be captured
(`capture_blockers`), or the capture itself fails, the run says why and trains eagerly.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from .stack import StackedDropout

logger = logging.getLogger(__name__)
WARMUP_STEPS = 3


def setting(value) -> str:
    """training.cuda_graphs as auto | true | false (Hydra hands booleans over as bool; check_values has refused
    anything else)."""
    return str(value).lower()


def accelerator_kwargs(value, on_cuda: bool) -> list:
    """The Accelerator's kwargs_handlers for a run with this training.cuda_graphs: a step that may be captured must
    not keep autocast's cast weights from one replay to the next. Nothing changes on the CPU."""
    from accelerate.utils import AutocastKwargs

    return [AutocastKwargs(cache_enabled=False)] if on_cuda and setting(value) != "false" else []


def draws_random_numbers(model: nn.Module) -> bool:
    """Whether the model's training forward draws from a random generator (dropout)."""
    return any(m.p > 0 for m in model.modules() if isinstance(m, (nn.modules.dropout._DropoutNd, StackedDropout)))


def capture_blockers(*, device: torch.device, processes: int, mixed_precision: str, compiled: bool,
                     distilled: bool, deterministic: bool, n_models: int, model: nn.Module) -> list[str]:
    """Why this run's step cannot be replayed from a CUDA graph; empty when it can. Each reason names the setting."""
    reasons = []
    if device.type != "cuda":
        reasons.append(f"CUDA graphs need a CUDA device, and this run trains on the {device.type}")
    if processes > 1:
        reasons.append(f"{processes} processes: the gradients' all-reduce between processes is not captured")
    if mixed_precision == "fp16":
        reasons.append("training.mixed_precision=fp16: loss scaling checks every step's gradients on the host "
                       "(bf16 needs no scaling and is captured)")
    if compiled:
        reasons.append("training.compile=true: torch.compile makes its own graphs")
    if distilled:
        reasons.append("training.distill: the teachers' forward is not captured")
    random = draws_random_numbers(model)
    if random and n_models > 1:
        reasons.append("seeds=[...] with dropout: each seed's masks come from its own generator, which a graph "
                       "does not replay")
    if random and deterministic and n_models == 1:
        reasons.append("training.deterministic=true with dropout: a replayed step draws its masks in another "
                       "order than the eager steps before the capture, so a resumed run would not repeat the run "
                       "bit for bit")
    return reasons


class GraphedStep:
    """A TrainStep whose forward and backward are replayed from a CUDA graph after WARMUP_STEPS eager steps. Called
    like the TrainStep; `captured` says whether the graph is in use."""

    def __init__(self, step):
        self.step = step
        self.graph: torch.cuda.CUDAGraph | None = None
        self.failed: str | None = None  # why the capture failed: the run then stays eager
        self._eager_steps = 0
        self._static: dict[str, torch.Tensor] = {}
        self._side = torch.cuda.Stream()

    @property
    def captured(self) -> bool:
        return self.graph is not None

    def __call__(self, x: torch.Tensor, y: torch.Tensor, x01: torch.Tensor):
        if self.graph is None and self.failed is None and self._eager_steps >= WARMUP_STEPS:
            self._capture(x, y, x01)
        if self.graph is not None and x.shape == self._static["x"].shape:
            self._static["x"].copy_(x)
            self._static["y"].copy_(y)
            self.graph.replay()
            self.step.update()
            return self._static["losses"], self._static["logits"]
        return self._eager(x, y, x01)

    def _eager(self, x, y, x01):
        if self.graph is not None:  # the gradients are the graph's buffers now: zero them, never drop them
            losses, logits = self.step.forward_backward(x, y, x01, keep_gradient_buffers=True)
            self.step.update()
            return losses, logits
        self._side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self._side):
            out = self.step(x, y, x01)
        torch.cuda.current_stream().wait_stream(self._side)
        self._eager_steps += 1
        return out

    def _capture(self, x, y, x01) -> None:
        self._static = {"x": x.clone(memory_format=torch.preserve_format), "y": y.clone(), "x01": x01}
        graph = torch.cuda.CUDAGraph()
        self.step.optimizer.zero_grad(set_to_none=True)  # the captured backward allocates the gradient buffers
        try:
            with torch.cuda.graph(graph):
                self._captured_body()
        except Exception as e:  # noqa: BLE001 - any capture error means: train eagerly, and say so
            self.failed = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            self._static = {}
            self.step.optimizer.zero_grad(set_to_none=True)
            logger.warning(f"training.cuda_graphs: capturing the step failed ({self.failed}); the run goes on with "
                           "eager steps (set training.cuda_graphs=false to skip the attempt).")
            return
        self.graph = graph

    def _captured_body(self) -> None:
        """What the graph holds: the step's forward and backward on the static buffers (x01 only feeds teachers,
        and a distilled run is not captured)."""
        s = self._static
        s["losses"], s["logits"] = self.step.forward_backward(s["x"], s["y"], s["x01"])
