"""A few-thousand-parameter stand-in with CORnet-S's interface (``V1, V2, V4, IT, decoder``), for tests,
CPU demos and benchmarks of the training machinery. Not a model of anything."""

from __future__ import annotations

from collections import OrderedDict

from torch import nn


class _Block(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(cout)
        self.nonlin = nn.ReLU()

    def forward(self, x):
        return self.nonlin(self.norm(self.conv(x)))


class _Decoder(nn.Module):
    def __init__(self, cin, n_classes):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.linear = nn.Linear(cin, n_classes)

    def forward(self, x):
        return self.linear(self.flatten(self.avgpool(x)))


class TinyCORnet(nn.Sequential):
    """Sequential V1 -> V2 -> V4 -> IT -> decoder, each block conv3x3/s2 + BN + ReLU.

    Parameters
    ----------
    width : int
        Channels of V1 (V2: 2x, V4: 2x, IT: 4x).
    n_classes : int
    """

    def __init__(self, width: int = 4, n_classes: int = 10):
        super().__init__(OrderedDict([
            ("V1", _Block(3, width)), ("V2", _Block(width, 2 * width)), ("V4", _Block(2 * width, 2 * width)),
            ("IT", _Block(2 * width, 4 * width)), ("decoder", _Decoder(4 * width, n_classes)),
        ]))
