"""`gap8k`: tinyhub's own variant for the <8k budget of `model4` and `opt6k` (7,432 parameters).

Issue #7 asks for a variant within the same budget where the exact seed architecture misses its target after a
real search. The seeds spend their parameters where they help least: `model4` starts with 6 channels at full
resolution and squeezes its last stage to 10 channels before pooling; `opt6k` puts a quarter of its budget into a
linear head. `gap8k` moves the budget into features: 8 then 16 channels at 28x28, a 1x1 transition, two unpadded
16-channel convs at 14->12->10, a padded 16-channel conv at 5x5, global average pooling and a 1x1 classifier.
"""

from __future__ import annotations

from torch import nn

from ._base import TinyClassifier
from ._blocks import conv_bn_relu
from ._registry import register_model


@register_model("gap8k", param_budget=8_000, design="tinyhub variant for the <8k budget of model4 / opt6k")
class Gap8k(TinyClassifier):
    """1->8->16 (28x28, padded), max-pool, 1x1 16->8, 8->16->16 (unpadded: 14->12->10), max-pool, 16->16 (5x5,
    padded), global average pooling, bias-free 1x1 conv 16->10. Bias-free 3x3 convs with BN, ReLU and optional
    Dropout; receptive field 24 pixels before pooling. 7,432 parameters, about 1.44M MACs per image.
    """

    def __init__(self, dropout: float = 0.0, **common):
        super().__init__(**common)
        self.features = nn.Sequential(
            conv_bn_relu(self.in_chans, 8, dropout=dropout),
            conv_bn_relu(8, 16, dropout=dropout),
            nn.MaxPool2d(2),
            conv_bn_relu(16, 8, kernel=1, padding=0),
            conv_bn_relu(8, 16, padding=0, dropout=dropout),
            conv_bn_relu(16, 16, padding=0, dropout=dropout),
            nn.MaxPool2d(2),
            conv_bn_relu(16, 16, dropout=dropout),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Conv2d(16, self.num_classes, 1, bias=False)

    def forward_features(self, x):
        return self.classifier(self.pool(self.features(x))).flatten(1)
