"""The classic U-Net used by edgeseg's semantic models.

Encoder 32-64-128-256, bridge 512, transposed-convolution decoder with skip
concatenation, 1x1 head producing one logit map per class. Convolutions are
3x3/padding 1 with BatchNorm and ReLU, so the network is fully convolutional:
it trains on crops and runs on the full 256x256 frame.
"""

import torch
from torch import nn


class DoubleConv(nn.Sequential):
    """Two 3x3 conv-BN-ReLU layers: the building block of every U-Net level."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        )


class UNet(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 5,
                 widths=(32, 64, 128, 256), bridge: int = 512):
        super().__init__()
        self.encoders = nn.ModuleList()
        c = in_channels
        for w in widths:
            self.encoders.append(DoubleConv(c, w))
            c = w
        self.pool = nn.MaxPool2d(2)
        self.bridge = DoubleConv(c, bridge)
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        c = bridge
        for w in reversed(widths):
            self.ups.append(nn.ConvTranspose2d(c, w, 2, stride=2))
            self.decoders.append(DoubleConv(2 * w, w))
            c = w
        self.head = nn.Conv2d(c, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for enc in self.encoders:
            x = enc(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bridge(x)
        for up, dec, skip in zip(self.ups, self.decoders, reversed(skips)):
            x = dec(torch.cat([up(x), skip], dim=1))
        return self.head(x)

