"""`net24k`: four convolutions and one linear layer, 24,552 parameters (seed project 002, "MNIST CNN Training")."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from ._base import TinyClassifier
from ._blocks import MaxPool2d
from ._registry import register_model


@register_model("net24k")
class Net24k(TinyClassifier):
    """Conv(1->8), Conv(8->16), Conv(16->22), Conv(22->56), all 3x3 with bias and ReLU; max-pool after the
    1st, 2nd and 4th; flatten 56x4x4 = 896; Linear(896->10); log-softmax output.

    Discrepancy: the seed document lists unpadded 3x3 convolutions with those three pools, which would shrink
    28x28 to 1x1, not the 4x4 its Linear(896) needs. Here every conv is padded ("same") and the last pool uses
    ceil_mode, so 28 -> 14 -> 7 -> 7 -> 4; the parameter count (24,552) is unchanged by padding.
    The output is log-probabilities; cross-entropy on them equals cross-entropy on logits.
    At other input sizes the linear layer takes what the last pool leaves: 56 x ceil(floor(floor(s/2)/2)/2)^2.
    """

    def __init__(self, **common):
        super().__init__(**common)
        side = -(-(self.input_size // 2 // 2) // 2)  # two floor pools, then the ceil-mode pool
        self.conv1 = nn.Conv2d(self.in_chans, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.conv3 = nn.Conv2d(16, 22, 3, padding=1)
        self.conv4 = nn.Conv2d(22, 56, 3, padding=1)
        self.fc1 = nn.Linear(56 * side * side, self.num_classes)
        self.pool = MaxPool2d(2)
        self.pool_last = MaxPool2d(2, ceil_mode=True)

    def forward_features(self, x):
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        x = F.relu(self.conv3(x))
        x = self.pool_last(F.relu(self.conv4(x)))
        return F.log_softmax(self.fc1(x.flatten(1)), dim=1)
