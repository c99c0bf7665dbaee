"""The training step and what it is made of: optimizer, schedule, EMA, loss, and their assembly from the recipe.
The engine and `tinyhub bench` build the step with the one `assemble_step`, so the bench times exactly what trains.
"""

from __future__ import annotations

import dataclasses

import torch
from accelerate import Accelerator

from tinyhub.registry import OPTIMIZERS, SCHEDULERS

from . import cuda_graph
from .cuda_graph import GraphedStep
from .distill import distillation_loss, soft_targets
from .schema import OptimizerConfig, SchedulerConfig, TrainingConfig


def optimizer_implementation(setting: str, device: torch.device | str) -> str:
    """The optimizer kernels a run uses. auto: fused on a GPU (the whole update of every tensor in one launch: a
    tiny model's step is otherwise mostly launches), torch's own for-loop on the CPU (what every CPU record ran).
    check_values has refused any other name."""
    setting = str(setting).lower()
    if setting != "auto":
        return setting
    return "fused" if torch.device(device).type == "cuda" else "forloop"


# ---- the optimizers and schedules of tinyhub.registry: each name's builder ----
def sgd(params, opt: OptimizerConfig, kernels: dict) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=opt.lr, momentum=opt.momentum, nesterov=opt.nesterov,
                           weight_decay=opt.weight_decay, **kernels)


def adam(params, opt: OptimizerConfig, kernels: dict) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=opt.lr, betas=tuple(opt.betas), weight_decay=opt.weight_decay, **kernels)


def adamw(params, opt: OptimizerConfig, kernels: dict) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=opt.lr, betas=tuple(opt.betas), weight_decay=opt.weight_decay, **kernels)


def constant(optimizer, sch: SchedulerConfig, epochs: int, steps_per_epoch: int):
    return None, None


def step_decay(optimizer, sch: SchedulerConfig, epochs: int, steps_per_epoch: int):
    return torch.optim.lr_scheduler.StepLR(optimizer, sch.step_size, sch.gamma), "epoch"


def one_cycle(optimizer, sch: SchedulerConfig, epochs: int, steps_per_epoch: int):
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=sch.max_lr, total_steps=epochs * steps_per_epoch, pct_start=sch.pct_start), "step"


def cosine(optimizer, sch: SchedulerConfig, epochs: int, steps_per_epoch: int):
    return torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=epochs * steps_per_epoch, eta_min=sch.min_lr), "step"


def plateau(optimizer, sch: SchedulerConfig, epochs: int, steps_per_epoch: int):
    return torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="max", factor=sch.gamma, patience=sch.patience, min_lr=sch.min_lr), "plateau"


def build_optimizer(params, opt: OptimizerConfig, implementation: str = "forloop") -> torch.optim.Optimizer:
    """The recipe's optimizer (tinyhub.registry.OPTIMIZERS), running `implementation`'s kernels
    (optimizer_implementation resolves auto). A builder takes (params, the optimizer section, the kernels' kwargs)."""
    kernels = {"foreach": implementation == "foreach", "fused": implementation == "fused" or None}
    return OPTIMIZERS.get(opt.name.lower())(params, opt, kernels)


def build_scheduler(optimizer, sch: SchedulerConfig, epochs: int, steps_per_epoch: int):
    """Returns (scheduler or None, when it steps: 'step' | 'epoch' | 'plateau' | None), from the schedule's
    builder in tinyhub.registry.SCHEDULERS."""
    return SCHEDULERS.get(sch.name.lower())(optimizer, sch, epochs, steps_per_epoch)


@dataclasses.dataclass
class TrainStep:
    """One optimisation step of the recipe, for one model or a stack of K: the forward, each model's loss
    (cross-entropy, blended with the teachers' soft targets when distilling), backward, gradient clipping (each
    model by its own norm), the optimizer, a per-batch schedule and the EMA of weights. The training loop runs it;
    `tinyhub bench --profile` times this very function."""

    model: torch.nn.Module  # the bare model or ModelStack: clipping and the EMA read it
    train_model: torch.nn.Module  # what runs the forward: the model as Accelerate prepared (and maybe compiled) it
    optimizer: torch.optim.Optimizer
    accelerator: Accelerator
    criterion: torch.nn.Module
    n_models: int = 1
    grad_clip: float = 0.0
    scheduler: object = None  # stepped after every batch (None when it steps per epoch, or there is none)
    ema: object = None
    teachers: list = dataclasses.field(default_factory=list)
    temperature: float = 4.0
    distill_weight: float = 0.0

    def __call__(self, x: torch.Tensor, y: torch.Tensor, x01: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: the models' normalised input (model k's images in channels k*C..); y: (N, K) labels; x01: the same
        augmented images in [0, 1], for the teachers. Returns (each model's loss (K,), logits (N, K, classes))."""
        losses, logits = self.forward_backward(x, y, x01)
        self.update()
        return losses, logits

    def forward_backward(self, x: torch.Tensor, y: torch.Tensor, x01: torch.Tensor, *,
                         keep_gradient_buffers: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """The forward, each model's loss and the backward: the part of the step a CUDA graph replays
        (trainer/cuda_graph.py, which keeps the gradient buffers it captured: zeroed, not dropped)."""
        n, k_models = len(y), self.n_models
        self.optimizer.zero_grad(set_to_none=not keep_gradient_buffers)
        logits = self.train_model(x).view(n, k_models, -1)
        losses = torch.stack([self.criterion(logits[:, k].float(), y[:, k]) for k in range(k_models)])
        if self.teachers:  # the same augmented images, each teacher with its own normalisation, in the run's precision
            with self.accelerator.autocast():  # every model's images as one batch: (K*N, C, H, W)
                images = x01.unflatten(1, (k_models, -1)).transpose(0, 1).flatten(0, 1)
                targets = soft_targets(self.teachers, images, self.temperature).view(k_models, n, -1)
            soft = torch.stack([distillation_loss(logits[:, k], targets[k], self.temperature)
                                for k in range(k_models)])
            losses = (1 - self.distill_weight) * losses + self.distill_weight * soft
        self.accelerator.backward(losses.sum())  # model k's weights get exactly the gradient of its own loss
        return losses.detach(), logits

    def update(self) -> None:
        """Clipping, the optimizer, the per-batch schedule and the EMA, from the gradients forward_backward left."""
        if self.grad_clip:
            if self.n_models == 1:
                self.accelerator.clip_grad_norm_(self.train_model.parameters(), self.grad_clip)
            else:
                self.accelerator.unscale_gradients()
                self.model.clip_grad_norm_(self.grad_clip)
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)


@dataclasses.dataclass
class AssembledStep:
    """The step of a recipe with the pieces the loop, the checkpoints and the bench also read."""

    step: TrainStep | GraphedStep  # what the loop calls
    train_model: torch.nn.Module  # as Accelerate prepared (and maybe compiled) it
    optimizer: torch.optim.Optimizer
    scheduler: object  # or None
    scheduler_steps: str | None  # 'step' | 'epoch' | 'plateau' | None: when the loop steps it
    ema: object  # torch.optim.swa_utils.AveragedModel, or None
    optimizer_implementation: str = "forloop"  # forloop | foreach | fused: the kernels it runs
    not_captured: list[str] = dataclasses.field(default_factory=list)  # why no CUDA graph, when one was wanted

    @property
    def cuda_graphs(self) -> bool:
        """Whether the step's forward and backward were replayed from a CUDA graph."""
        return isinstance(self.step, GraphedStep) and self.step.captured

    @property
    def eval_model(self) -> torch.nn.Module:
        """What is evaluated and saved: the EMA weights when the recipe keeps them."""
        return self.ema.module if self.ema is not None else self.train_model


def assemble_step(model: torch.nn.Module, training: TrainingConfig, accelerator: Accelerator, *, epochs: int,
                  steps_per_epoch: int, n_models: int = 1, teachers: list | None = None) -> AssembledStep:
    """The recipe's training step for `model` (one model or a ModelStack of `n_models`): optimizer, schedule, EMA,
    torch.compile, Accelerate's prepare, the loss with label smoothing and the teachers' soft targets."""
    implementation = optimizer_implementation(training.optimizer.implementation, accelerator.device)
    optimizer = build_optimizer(model.parameters(), training.optimizer, implementation)
    scheduler, when = build_scheduler(optimizer, training.scheduler, epochs, steps_per_epoch)
    ema = None
    if training.ema:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(training.ema), use_buffers=True)
        ema.to(accelerator.device)
    train_model = torch.compile(model) if training.compile else model
    train_model, optimizer = accelerator.prepare(train_model, optimizer)
    # The scheduler and the EMA weights are checkpointed by tinyhub itself (JSON and safetensors), not through
    # Accelerate's custom-object pickles, which load with full unpickling: a checkpoint must never run code.
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=training.label_smoothing)
    step = TrainStep(model, train_model, optimizer, accelerator, criterion, n_models=n_models,
                     grad_clip=training.grad_clip, scheduler=scheduler if when == "step" else None, ema=ema,
                     teachers=list(teachers or []), temperature=training.distill.temperature,
                     distill_weight=training.distill.weight)
    wanted, not_captured = cuda_graph.setting(training.cuda_graphs), []
    if wanted != "false":
        not_captured = cuda_graph.capture_blockers(
            device=accelerator.device, processes=accelerator.num_processes,
            mixed_precision=str(accelerator.mixed_precision), compiled=training.compile, distilled=bool(teachers),
            deterministic=training.deterministic, n_models=n_models, model=model)
        if not not_captured:
            step = GraphedStep(step)
    return AssembledStep(step, train_model, optimizer, scheduler, when, ema, implementation, not_captured)
