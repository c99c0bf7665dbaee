"""`efficient`: the 19,578-parameter dual-block CNN (seed project 001, "Efficient MNIST Neural Network")."""

from __future__ import annotations

from torch import nn

from ._base import TinyClassifier
from ._blocks import MaxPool2d, conv_bn_relu
from ._registry import register_model


@register_model("efficient")
class EfficientNet(TinyClassifier):
    """Two conv blocks, global average pooling and a small MLP head — exactly 19,578 parameters.

    Block 1: Conv(1->16, 5x5)+BN+ReLU, Conv(16->16, 3x3)+BN+ReLU, MaxPool -> 14x14x16
    Block 2: Conv(16->32)+BN+ReLU, Conv(32->32)+BN+ReLU, MaxPool -> 7x7x32
    Head: GAP -> Linear(32->64)+ReLU+Dropout(0.25)+Linear(64->10)
    The convolutions keep their bias, as in the seed (its per-block counts 2,800 / 14,016 / 2,762 need it).
    """

    def __init__(self, dropout: float = 0.25, **common):
        super().__init__(**common)
        self.features = nn.Sequential(
            conv_bn_relu(self.in_chans, 16, 5, padding=2, bias=True),
            conv_bn_relu(16, 16, 3, padding=1, bias=True),
            MaxPool2d(2),
            conv_bn_relu(16, 32, 3, padding=1, bias=True),
            conv_bn_relu(32, 32, 3, padding=1, bias=True),
            MaxPool2d(2),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(32, 64), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(64, self.num_classes)
        )

    def forward_features(self, x):
        return self.head(self.pool(self.features(x)))
