"""Small building blocks shared by the architecture families."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair


class _ChannelsLastMaxPool(torch.autograd.Function):
    """Max pooling of an NCHW tensor through the channels-last kernels, forward and backward; NCHW in and out."""

    @staticmethod
    def forward(ctx, x, pool):
        x_cl = x.contiguous(memory_format=torch.channels_last)
        y, indices = F.max_pool2d(x_cl, pool.kernel_size, pool.stride, pool.padding, pool.dilation,
                                  ceil_mode=pool.ceil_mode, return_indices=True)
        ctx.save_for_backward(x_cl, indices)
        ctx.pool = pool
        return y.contiguous()

    @staticmethod
    def backward(ctx, grad):
        x_cl, indices = ctx.saved_tensors
        p = ctx.pool
        grad_x = torch.ops.aten.max_pool2d_with_indices_backward(
            grad.contiguous(memory_format=torch.channels_last), x_cl, _pair(p.kernel_size),
            _pair(p.stride if p.stride is not None else p.kernel_size), _pair(p.padding), _pair(p.dilation),
            p.ceil_mode, indices)
        return grad_x.contiguous(), None


class MaxPool2d(nn.MaxPool2d):
    """`nn.MaxPool2d` that pools NCHW tensors through the channels-last kernels on the CPU, with bit for bit the
    same values and gradients.

    PyTorch's CPU kernel for NCHW max pooling is about ten times slower than its channels-last kernel on these
    small feature maps (it was a quarter of gap8k's training step). Both kernels take the first maximum of each
    window, so pooling a channels-last copy, and passing the gradient back through the channels-last backward
    kernel, gives identical results in NCHW. The layout copies cost part of what they save: gap8k's and gap20k's
    bf16 steps ran 1.12-1.15x faster, the fp32 models' about as fast (docs: Speed). Other inputs (GPU,
    channels-last already) pool as `nn.MaxPool2d` does.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x.device.type == "cpu" and x.dim() == 4 and x.is_contiguous()
                and not x.is_contiguous(memory_format=torch.channels_last) and not self.return_indices):
            if torch.is_grad_enabled() and x.requires_grad:
                return _ChannelsLastMaxPool.apply(x, self)
            return super().forward(x.contiguous(memory_format=torch.channels_last)).contiguous()
        return super().forward(x)


def conv_bn_relu(cin: int, cout: int, kernel: int = 3, padding: int = 1, *, bias: bool = False,
                 dropout: float = 0.0, stride: int = 1, groups: int = 1) -> nn.Sequential:
    """Conv -> BatchNorm -> ReLU (-> Dropout when dropout > 0)."""
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=bias, groups=groups),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    ]
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)
