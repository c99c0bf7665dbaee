"""The `fast` family: tinyhub's layout for time to a good model on a CPU (the speed recipes, docs: Speed).

Where the other families spend their first layers at full resolution, `fast` leaves 28x28 after one convolution and
pools before normalising, so BatchNorm and ReLU run on a quarter of the positions:

    1 -> c1      5x5, unpadded: 28 -> 24, max-pool -> 12, BatchNorm, ReLU
    c1 -> c2     3x3, unpadded: 12 -> 10, max-pool -> 5, BatchNorm, ReLU
    c2 -> c3     3x3, unpadded: 5 -> 3, BatchNorm, ReLU
    global average pooling, Linear c3 -> classes

Bias-free convolutions, optional Dropout after each block (off in the speed recipes). On a 2-core CPU, in bf16 and
channels_last, its training step ran about 3.8x as many images per second as gap8k's (25,800 against 6,900 at batch
128), with three times the parameters (results/experiments/time-to-target/step-rates.txt).

- `fast24k` (16 / 32 / 64 channels): 24,314 parameters, about 0.86M MACs per image.
"""

from __future__ import annotations

from torch import nn

from ._base import TinyClassifier
from ._blocks import MaxPool2d
from ._registry import register_model
from .catalog import CATALOG


def _conv_pool_bn_relu(cin: int, cout: int, kernel: int, pool: bool, dropout: float) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, bias=False), *([MaxPool2d(2)] if pool else []), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True), *([nn.Dropout(dropout)] if dropout > 0 else [])]


class _FastNet(TinyClassifier):
    """The shared layout; each registered subclass fixes its default widths."""

    min_input_size = 22  # 5x5, pool, 3x3, pool, 3x3 need 22 pixels

    def __init__(self, c1: int, c2: int, c3: int, dropout: float = 0.0, **common):
        super().__init__(**common)
        self.features = nn.Sequential(
            *_conv_pool_bn_relu(self.in_chans, c1, 5, pool=True, dropout=dropout),
            *_conv_pool_bn_relu(c1, c2, 3, pool=True, dropout=dropout),
            *_conv_pool_bn_relu(c2, c3, 3, pool=False, dropout=dropout),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c3, self.num_classes)

    def forward_features(self, x):
        return self.classifier(self.pool(self.features(x)).flatten(1))


def _variant(name: str, c1: int, c2: int, c3: int) -> type[_FastNet]:
    def __init__(self, c1: int = c1, c2: int = c2, c3: int = c3, dropout: float = 0.0, **common):
        _FastNet.__init__(self, c1, c2, c3, dropout, **common)

    cls = type(name.capitalize(), (_FastNet,), {
        "__init__": __init__, "__module__": __name__,
        "__doc__": f"`fast` layout with {c1} / {c2} / {c3} channels: {CATALOG[name].parameters:,} parameters."})
    return register_model(name)(cls)


Fast24k = _variant("fast24k", 16, 32, 64)
