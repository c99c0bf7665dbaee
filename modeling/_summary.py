"""`summary(model)`: a torchsummary-style per-layer table with parameters and multiply-accumulates."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class LayerRow:
    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int
    macs: int


@dataclass
class ModelSummary:
    rows: list[LayerRow]
    total_params: int
    trainable_params: int
    macs: int  # multiply-accumulates for one image
    input_shape: tuple[int, ...]

    def as_dict(self) -> dict:
        return {
            "layers": [vars(r) | {"output_shape": list(r.output_shape)} for r in self.rows],
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "macs": self.macs,
            "input_shape": list(self.input_shape),
        }

    def to_markdown(self) -> str:
        lines = ["| layer | type | output shape | parameters | MACs |", "|---|---|---|---:|---:|"]
        for r in self.rows:
            lines.append(f"| {r.name} | {r.kind} | {list(r.output_shape)} | {r.params:,} | {r.macs:,} |")
        lines.append(f"| **total** | | | **{self.total_params:,}** | **{self.macs:,}** |")
        return "\n".join(lines)

    def __str__(self) -> str:
        header = f"{'Layer':<28}{'Type':<18}{'Output shape':<20}{'Params':>10}{'MACs':>12}"
        bar = "=" * len(header)
        out = [bar, header, bar]
        for r in self.rows:
            shape = "[-1, " + ", ".join(str(d) for d in r.output_shape) + "]"
            out.append(f"{r.name:<28}{r.kind:<18}{shape:<20}{r.params:>10,}{r.macs:>12,}")
        out += [
            bar,
            f"Total params: {self.total_params:,}",
            f"Trainable params: {self.trainable_params:,}",
            f"Non-trainable params: {self.total_params - self.trainable_params:,}",
            f"MACs per image: {self.macs:,}",
            bar,
        ]
        return "\n".join(out)


def _macs(module: nn.Module, out: torch.Tensor) -> int:
    if isinstance(module, nn.Conv2d):
        per_output = (module.in_channels // module.groups) * module.kernel_size[0] * module.kernel_size[1]
        return out[0].numel() * per_output
    if isinstance(module, nn.Linear):
        return module.in_features * module.out_features
    return 0


@torch.no_grad()
def summary(model: nn.Module, input_shape: tuple[int, int, int] | None = None) -> ModelSummary:
    """Run one image through `model` and tabulate every leaf layer (batch dimension shown as -1)."""
    if input_shape is None:
        input_shape = model.expected_input_shape
    rows: list[LayerRow] = []
    hooks = []
    for name, module in model.named_modules():
        if list(module.children()) or module is model:
            continue

        def hook(mod, _inp, out, name=name):
            params = sum(p.numel() for p in mod.parameters(recurse=False))
            rows.append(LayerRow(name, type(mod).__name__, tuple(out.shape[1:]), params, _macs(mod, out)))

        hooks.append(module.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        model(torch.zeros(1, *input_shape, device=device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return ModelSummary(rows, total, trainable, sum(r.macs for r in rows), tuple(input_shape))
