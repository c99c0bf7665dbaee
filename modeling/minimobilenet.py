"""`minimobilenet`: the depthwise-separable MobileNet-style net (seed project 000, "MNIST MiniMobileNet")."""

from __future__ import annotations

from torch import nn

from ._base import TinyClassifier
from ._blocks import conv_bn_relu
from ._registry import register_model


def _separable(cin: int, cout: int, stride: int) -> nn.Sequential:
    """Depthwise 3x3 (+BN+ReLU) then pointwise 1x1 (+BN+ReLU)."""
    return nn.Sequential(
        conv_bn_relu(cin, cin, 3, padding=1, stride=stride, groups=cin),
        conv_bn_relu(cin, cout, 1, padding=0),
    )


@register_model("minimobilenet")
class MiniMobileNet(TinyClassifier):
    """Initial conv 1->12 (3x3, BN, ReLU); separable blocks 12->24, 24->32 (stride 2), 32->24 (stride 2);
    global average pooling, Dropout(0.3), Linear(24->10); Kaiming initialisation.

    Discrepancy: the seed document claims ~8,500-9,500 parameters (and ~8,250 in its own breakdown), but the
    layers it lists come to 3,114 at width 1.0. This is the listed design with its true count; `width` scales
    every channel count (rounded) so the seed's <10k budget can actually be used: width=2.0 gives 9,866 parameters.
    """

    def __init__(self, width: float = 1.0, dropout: float = 0.3, **common):
        super().__init__(**common)
        c = [max(4, int(round(ch * width))) for ch in (12, 24, 32, 24)]
        self.features = nn.Sequential(
            conv_bn_relu(self.in_chans, c[0], 3, padding=1),
            _separable(c[0], c[1], stride=1),
            _separable(c[1], c[2], stride=2),
            _separable(c[2], c[3], stride=2),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(c[3], self.num_classes))
        self._init_weights()

    def _init_weights(self):
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.kaiming_uniform_(m.weight, nonlinearity="linear")
                nn.init.zeros_(m.bias)

    def forward_features(self, x):
        return self.head(self.pool(self.features(x)))
