"""`opt6k`: the 6,132-parameter optimised CNN (seed project 004, "MNIST Training Experiments - Optimization")."""

from __future__ import annotations

from torch import nn

from ._base import TinyClassifier
from ._blocks import MaxPool2d, conv_bn_relu
from ._registry import register_model


@register_model("opt6k")
class Opt6k(TinyClassifier):
    """Bias-free 3x3 convs with BN+ReLU (+Dropout after every block but the first, as in the seed's Opt-2):
    1->10, 10->10, 10->10, max-pool, 10->8, 8->8, max-pool, 8->8, 8->8; flatten 8x3x3 = 72;
    Linear(72->20), Linear(20->10) — exactly 6,132 parameters.

    The seed lists no padding except "(padded)" at the end; the only reading that ends at 3x3 keeps the first
    five convs unpadded (28->26->24->22, pool 11->9->7, pool 3) and pads the last two. Its head has no
    activation between the two linear layers; that is kept.
    At other input sizes s the flatten is 8 x k x k with k = floor((floor((s-6)/2) - 4) / 2); the five unpadded
    convolutions need s >= 18.
    """

    min_input_size = 18

    def __init__(self, dropout: float = 0.05, **common):
        super().__init__(**common)
        side = ((self.input_size - 6) // 2 - 4) // 2
        self.features = nn.Sequential(
            conv_bn_relu(self.in_chans, 10, padding=0),
            conv_bn_relu(10, 10, padding=0, dropout=dropout),
            conv_bn_relu(10, 10, padding=0, dropout=dropout),
            MaxPool2d(2),
            conv_bn_relu(10, 8, padding=0, dropout=dropout),
            conv_bn_relu(8, 8, padding=0, dropout=dropout),
            MaxPool2d(2),
            conv_bn_relu(8, 8, padding=1, dropout=dropout),
            conv_bn_relu(8, 8, padding=1, dropout=dropout),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(8 * side * side, 20), nn.Linear(20, self.num_classes))

    def forward_features(self, x):
        return self.head(self.features(x))
