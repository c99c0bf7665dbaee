"""K independent models of one architecture, executed as one: `tinyhub train seeds=[0,1,2,3]`.

A tiny model uses a sliver of the machine, and every honest result needs several seeds. `ModelStack` lays K members
side by side along the channel axis: a convolution with `groups=g` becomes one with `groups=K*g` over K times the
channels, a BatchNorm over K*C channels keeps each member's statistics (a channel only ever sees its own member's
images), a Linear becomes K small matrix products, and dropout draws each member's mask from that member's own
generator. No weight and no activation is shared between members, so member k's forward and gradient are those of
the model trained alone, to floating-point rounding; `unstack` gives back K ordinary models.

Layout: the input is (N, K*C, H, W), member k's images in channels [k*C, (k+1)*C); the output is (N, K, classes).
An input with C channels is one batch shared by every member (evaluation).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from tinyhub import modeling
from tinyhub.errors import UsageError


class StackError(UsageError, ValueError):
    """These models cannot be trained as one stack; the message says why and what to do instead."""


# Modules without parameters or state that act on each channel (or each position) alone: the same module serves
# K members laid side by side along the channels.
_PER_CHANNEL = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardswish, nn.Identity,
                nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Flatten)


class StackedLinear(nn.Module):
    """K Linear layers, member k reading features [k*in, (k+1)*in) and writing [k*out, (k+1)*out)."""

    def __init__(self, layers: list[nn.Linear]):
        super().__init__()
        self.members, self.in_features, self.out_features = len(layers), layers[0].in_features, layers[0].out_features
        self.weight = nn.Parameter(torch.stack([m.weight.detach() for m in layers]))  # (K, out, in)
        has_bias = layers[0].bias is not None
        self.bias = nn.Parameter(torch.stack([m.bias.detach() for m in layers])) if has_bias else None

    def forward(self, x):
        n = x.shape[0]
        y = torch.einsum("nki,koi->nko", x.reshape(n, self.members, self.in_features), self.weight)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(n, self.members * self.out_features)

    def member_state(self, k: int) -> dict:
        state = {"weight": self.weight[k]}
        if self.bias is not None:
            state["bias"] = self.bias[k]
        return state


class StackedDropout(nn.Module):
    """Dropout with each member's mask drawn from that member's generator, exactly as `nn.Dropout` draws it from
    torch's global RNG in a run of its own: same shape, same scaling, and the memory format the member's own run
    uses (the order in which the draws fill the mask), whatever format the stack computes in."""

    def __init__(self, p: float, members: int):
        super().__init__()
        self.p, self.members = p, members
        self.generators: list[torch.Generator] | None = None  # set by ModelStack.seed_dropout every epoch
        self.memory_format = torch.contiguous_format

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        if self.generators is None:
            raise RuntimeError("ModelStack.seed_dropout must be called before training a stack with dropout")
        n, c = x.shape[0], x.shape[1] // self.members
        fmt = self.memory_format if x.dim() == 4 else torch.contiguous_format
        masks = [torch.empty((n, c, *x.shape[2:]), dtype=x.dtype, device=x.device, memory_format=fmt)
                 .bernoulli_(1 - self.p, generator=g).div_(1 - self.p) for g in self.generators]
        return x * torch.cat(masks, 1)


def _stacked_conv(convs: list[nn.Conv2d]) -> nn.Conv2d:
    m, k = convs[0], len(convs)
    conv = nn.Conv2d(k * m.in_channels, k * m.out_channels, m.kernel_size, stride=m.stride, padding=m.padding,
                     dilation=m.dilation, groups=k * m.groups, bias=m.bias is not None, padding_mode=m.padding_mode,
                     device=m.weight.device, dtype=m.weight.dtype)
    with torch.no_grad():
        conv.weight.copy_(torch.cat([c.weight for c in convs]))
        if m.bias is not None:
            conv.bias.copy_(torch.cat([c.bias for c in convs]))
    return conv


def _stacked_batchnorm(norms: list[nn.modules.batchnorm._BatchNorm]) -> nn.Module:
    m, k = norms[0], len(norms)
    norm = type(m)(k * m.num_features, eps=m.eps, momentum=m.momentum, affine=m.affine,
                   track_running_stats=m.track_running_stats, device=m.weight.device, dtype=m.weight.dtype)
    with torch.no_grad():
        for name, _ in list(norm.named_parameters(recurse=False)) + list(norm.named_buffers(recurse=False)):
            if name == "num_batches_tracked":
                getattr(norm, name).copy_(getattr(m, name))
            else:
                getattr(norm, name).copy_(torch.cat([getattr(x, name) for x in norms]))
    return norm


def _stack_module(modules: list[nn.Module], where: str) -> nn.Module:
    m, k = modules[0], len(modules)
    if type(m) in (nn.Conv2d,):
        return _stacked_conv(modules)
    if type(m) in (nn.BatchNorm1d, nn.BatchNorm2d) and m.affine:
        return _stacked_batchnorm(modules)
    if type(m) is nn.Linear:
        return StackedLinear(modules)
    if type(m) is nn.Dropout:
        return StackedDropout(m.p, k)
    if isinstance(m, _PER_CHANNEL):
        return copy.deepcopy(m)
    if type(m) is nn.Sequential:
        return nn.Sequential(*[_stack_module([x[i] for x in modules], f"{where}.{i}") for i in range(len(m))])
    raise StackError(f"{where} is a {type(m).__name__}, which tinyhub cannot stack (it stacks Conv2d, BatchNorm, "
                     "Linear, Dropout, activations and pooling); train the seeds one at a time instead.")


class ModelStack(nn.Module):
    """K models of one architecture and configuration executed as one module (see the module docstring)."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        if len(members) < 2:
            raise StackError("a stack needs at least two models")
        first = members[0]
        if any(type(m) is not type(first) for m in members):
            raise StackError("the models of a stack must share one architecture")
        self.members, self.num_classes, self.in_chans = len(members), first.num_classes, first.in_chans
        self.net = copy.deepcopy(first)  # the architecture's own forward_features, over stacked layers
        for name, _ in first.named_children():
            setattr(self.net, name, _stack_module([getattr(m, name) for m in members], f"{first.architecture}.{name}"))
        own = {n for n, _ in first.named_parameters(recurse=False)} | {n for n, _ in first.named_buffers(recurse=False)}
        if own:
            raise StackError(f"{first.architecture} holds tensors outside its layers ({', '.join(sorted(own))}); "
                             "train the seeds one at a time instead.")
        self._check_equivalence(members)

    @torch.no_grad()
    def _check_equivalence(self, members: list[nn.Module]) -> None:
        """An architecture whose forward mixes channels outside its layers (a softmax over the output, a mean over
        channels) would mix the members: compare the stack with each member alone on one batch, in eval mode."""
        was_training = [m.training for m in members]
        for m in members:
            m.eval()
        self.eval()
        weight = next(members[0].parameters())
        x = torch.rand(3, self.in_chans, members[0].input_size, members[0].input_size, device=weight.device,
                       dtype=weight.dtype)
        ours = self(x)
        for k, m in enumerate(members):
            alone = m(x)
            if not torch.allclose(ours[:, k], alone, rtol=1e-4, atol=1e-5):
                raise StackError(f"{members[0].architecture}'s forward mixes what the stacked layers keep apart (its "
                                 "stacked output differs from the model alone); train the seeds one at a time.")
        for m, t in zip(members, was_training):
            m.train(t)
        self.train()

    def normalize01(self, images01: torch.Tensor) -> torch.Tensor:
        """The members' one normalisation (`TinyClassifier.normalize01`, which they share), of a batch for every
        member (C channels) or of the K members' batches side by side (K*C channels)."""
        if images01.shape[1] == self.in_chans:
            return self.net.normalize01(images01)
        return self.net.normalize01(images01.unflatten(1, (self.members, self.in_chans))
                                    .flatten(0, 1)).unflatten(0, (len(images01), self.members)).flatten(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == self.in_chans:  # one batch for every member
            keep_cl = x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
            x = x.repeat(1, self.members, 1, 1)
            if keep_cl:
                x = x.contiguous(memory_format=torch.channels_last)
        return self.net.forward_features(x).reshape(x.shape[0], self.members, -1)

    def seed_dropout(self, generators: list[torch.Generator], channels_last: bool = False) -> None:
        """Member k's dropout masks come from generators[k], laid out as in a run of its own in that format."""
        for m in self.modules():
            if isinstance(m, StackedDropout):
                m.generators = generators
                m.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def member_state_dict(self, k: int) -> dict[str, torch.Tensor]:
        """Member k's weights and buffers, keyed as in the architecture's own state_dict."""
        state = {}
        for name, module in self.net.named_modules():
            prefix = f"{name}." if name else ""
            if isinstance(module, StackedLinear):
                state.update({prefix + key: t for key, t in module.member_state(k).items()})
            elif isinstance(module, (nn.Conv2d, nn.BatchNorm1d, nn.BatchNorm2d)):
                for key, t in list(module.named_parameters(recurse=False)) + list(module.named_buffers(recurse=False)):
                    if key == "num_batches_tracked":
                        state[prefix + key] = t
                    else:
                        size = t.shape[0] // self.members
                        state[prefix + key] = t[k * size:(k + 1) * size]
        return {key: t.detach().clone() for key, t in state.items()}

    def unstack(self, members: list[nn.Module]) -> list[nn.Module]:
        """Load each member's weights into `members` (models of the stacked architecture) and return them."""
        for k, m in enumerate(members):
            m.load_state_dict(self.member_state_dict(k), strict=True)
        return members

    @torch.no_grad()
    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor:
        """Gradient clipping member by member, as `clip_grad_norm_` clips a model alone: one member's large gradient
        never shrinks another's step. Every stacked tensor holds member k in the k-th block of its first axis.
        Returns the K norms."""
        grads = [p.grad.unflatten(0, (self.members, -1)) for p in self.parameters() if p.grad is not None]
        norms = torch.stack([g.float().pow(2).flatten(1).sum(1) for g in grads]).sum(0).sqrt()
        scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(scale.view(-1, *([1] * (g.dim() - 1))).to(g.dtype))
        return norms


def stackable(name: str, **model_kwargs) -> bool:
    """Whether seeds of this registered architecture can be trained together as one ModelStack."""
    try:
        ModelStack([modeling.create_model(name, **model_kwargs) for _ in range(2)])
    except StackError:
        return False
    return True


__all__ = ["ModelStack", "StackError", "StackedDropout", "StackedLinear", "stackable"]
