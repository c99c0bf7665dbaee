"""Small building blocks shared by the architecture families."""

from __future__ import annotations

from torch import nn


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
