"""The `gap` family: tinyhub's own variants for budgets where a seed architecture misses its target.

A variant within the same parameter budget, for where the exact seed architecture misses its target after a real
search. The seeds spend their parameters where they help least: `model4` starts with 6 channels at
full resolution and squeezes its last stage to 10 channels before pooling; `opt6k` puts a quarter of its budget
into a linear head. The `gap` layout moves the budget into features:

    1 -> stem -> width          3x3, padded, at 28x28
    max-pool
    width -> stem               1x1 transition
    stem -> width -> width      3x3, unpadded: 14 -> 12 -> 10
    max-pool
    width -> width              3x3, padded, at 5x5
    global average pooling, bias-free 1x1 conv width -> classes

Bias-free convs with BatchNorm, ReLU and optional Dropout; receptive field 24 pixels before the second pooling.

- `gap8k` (stem 8, width 16): 7,432 parameters, about 1.44M MACs per image, for the <8k budget of model4 / opt6k.
- `gap20k` (stem 12, width 26): 18,720 parameters, about 3.5M MACs per image, for the <20k budget of `efficient`.
- `gap5k` (stem 6, width 13): 4,836 parameters, for the <=5,000-parameter frontier.
- `gap2k` (stem 4, width 8): 1,956 parameters, the same layout under 2,000.
"""

from __future__ import annotations

from torch import nn

from ._base import TinyClassifier
from ._blocks import MaxPool2d, conv_bn_relu
from ._registry import register_model
from .catalog import CATALOG


class _GapNet(TinyClassifier):
    """The shared layout; each registered subclass fixes its default widths."""

    min_input_size = 12  # the two unpadded convolutions after the first pool need 6x6

    def __init__(self, stem: int, width: int, dropout: float = 0.0, **common):
        super().__init__(**common)
        self.features = nn.Sequential(
            conv_bn_relu(self.in_chans, stem, dropout=dropout),
            conv_bn_relu(stem, width, dropout=dropout),
            MaxPool2d(2),
            conv_bn_relu(width, stem, kernel=1, padding=0),
            conv_bn_relu(stem, width, padding=0, dropout=dropout),
            conv_bn_relu(width, width, padding=0, dropout=dropout),
            MaxPool2d(2),
            conv_bn_relu(width, width, dropout=dropout),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Conv2d(width, self.num_classes, 1, bias=False)

    def forward_features(self, x):
        return self.classifier(self.pool(self.features(x))).flatten(1)


def _variant(name: str, stem: int, width: int) -> type[_GapNet]:
    """One registered member of the family: the shared layout with its own default widths."""

    def __init__(self, stem: int = stem, width: int = width, dropout: float = 0.0, **common):
        _GapNet.__init__(self, stem, width, dropout, **common)

    cls = type(name.capitalize(), (_GapNet,), {
        "__init__": __init__, "__module__": __name__,
        "__doc__": f"`gap` layout with {stem} / {width} channels: {CATALOG[name].parameters:,} parameters."})
    return register_model(name)(cls)


Gap8k = _variant("gap8k", 8, 16)
Gap20k = _variant("gap20k", 12, 26)
Gap5k = _variant("gap5k", 6, 13)
Gap2k = _variant("gap2k", 4, 8)
