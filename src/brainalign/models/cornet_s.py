"""CORnet-S (Kubilius et al. 2019), written from the architecture in methods.md §1.1.

Module names (and therefore state-dict keys) follow the published checkpoint
``cornet_s-1d3f7974.pth``: ``V1.conv1.weight``, ``V1.norm1.*``, ``V2.conv_input.weight``,
``V2.skip.weight``, ``V2.norm_skip.*``, ``V2.conv1/conv2/conv3.weight``, ``V2.norm{1,2,3}_{t}.*``
(one BatchNorm per recurrent step t), ``decoder.linear.{weight,bias}``.

Parameter count (all convs bias-free; BN has weight + bias):
V1 = 3·64·49 + 64·64·9 + 2·(2·64) = 46,528;
CORblock_S(i, o, T) = i·o (conv_input) + o² (skip) + 2o (norm_skip) + 4o² + 9·16o² + 4o² (conv1-3)
+ T·(2·4o + 2·4o + 2·o) (per-step BNs) = i·o + 153·o² + 2o + 18·T·o;
V2 (64, 128, 2) = 2,519,808; V4 (128, 256, 4) = 10,078,720; IT (256, 512, 2) = 40,258,560;
decoder 512·1000 + 1000 = 513,000; total **53,416,616**.

CPU speed: at small inputs (e.g. 64 px: V4 runs at 4x4, IT at 2x2) the block convolutions are huge
weight matrices applied to a handful of positions, where oneDNN's convolution (and PyTorch's
per-sample fallback) reach ~5-10 % of the machine's matrix-multiply speed. On CPU, block convolutions
whose output has at most :data:`CPU_GEMM_MAX_POSITIONS` positions per image are therefore computed as
one matrix product over the whole batch (``unfold`` + GEMM; the same convolution, rounding differs at
float32 precision). CUDA always uses cuDNN.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
from torch import nn

#: file name of the published ImageNet checkpoint (hash 1d3f7974)
CORNET_S_CHECKPOINT = "cornet_s-1d3f7974.pth"
CORNET_S_URL = "https://s3.amazonaws.com/cornet-models/cornet_s-1d3f7974.pth"
CORNET_S_N_PARAMETERS = 53_416_616

#: on CPU, block convolutions with at most this many output positions per image run as one GEMM over the
#: batch (0 = always ``torch.nn.functional.conv2d``). 16 = 4x4: at 64 px that is V4 and IT; at 224 px none.
CPU_GEMM_MAX_POSITIONS = 16


def _conv_gemm(x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int) -> torch.Tensor:
    """Bias-free 2-D convolution as one matrix product over batch and positions.

    Parameters
    ----------
    x : Tensor (B, C, H, W)
    weight : Tensor (O, C, k, k)

    Returns
    -------
    Tensor (B, O, H_out, W_out), contiguous; equals ``F.conv2d(x, weight, stride=stride, padding=padding)``.
    """
    b, c, h, w = x.shape
    o, _, kh, kw = weight.shape
    ho = (h + 2 * padding - kh) // stride + 1
    wo = (w + 2 * padding - kw) // stride + 1
    if kh == kw == 1 and padding == 0:
        cols = x[:, :, ::stride, ::stride] if stride > 1 else x
        cols = cols.transpose(0, 1).reshape(c, b * ho * wo)  # (C, B*L)
    else:
        cols = nn.functional.unfold(x, (kh, kw), padding=padding, stride=stride)  # (B, C*k*k, L)
        cols = cols.transpose(0, 1).reshape(c * kh * kw, b * ho * wo)
    out = weight.reshape(o, -1) @ cols  # (O, B*L)
    return out.reshape(o, b, ho, wo).transpose(0, 1).contiguous()


def conv2d(x: torch.Tensor, weight: torch.Tensor, stride: int = 1, padding: int = 0) -> torch.Tensor:
    """Bias-free convolution of a CORnet-S block: :func:`_conv_gemm` on CPU for small outputs, else ``F.conv2d``.

    Parameters
    ----------
    x : Tensor (B, C, H, W)
    weight : Tensor (O, C, k, k)
    """
    if x.device.type == "cpu" and CPU_GEMM_MAX_POSITIONS > 0 and x.dim() == 4:
        k = weight.shape[-1]
        ho = (x.shape[-2] + 2 * padding - k) // stride + 1
        wo = (x.shape[-1] + 2 * padding - k) // stride + 1
        if ho * wo <= CPU_GEMM_MAX_POSITIONS:
            return _conv_gemm(x, weight, stride, padding)
    return nn.functional.conv2d(x, weight, None, stride=stride, padding=padding)


class BlockConv2d(nn.Conv2d):
    """``nn.Conv2d`` without bias (same parameter, same state-dict key) computed by :func:`conv2d`;
    ``forward(x, stride=None)`` can override the stride (the recurrent 3x3 conv: 2 at t=0, 1 after)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)

    def forward(self, x: torch.Tensor, stride: int | None = None) -> torch.Tensor:
        return conv2d(x, self.weight, self.stride[0] if stride is None else stride, self.padding[0])


class CORblockS(nn.Module):
    """Recurrent bottleneck block: ``conv_input`` once, then ``times`` steps sharing conv weights.

    Step t: 1x1 (o->4o) - BN_t - ReLU - 3x3 (4o->4o, stride 2 at t=0) - BN_t - ReLU - 1x1 (4o->o) - BN_t,
    plus skip (t=0: BN(1x1 stride-2 conv(x)); t>0: x), then ReLU.

    Input (B, in, H, W) -> output (B, out, H/2, W/2).
    """

    scale = 4

    def __init__(self, in_channels: int, out_channels: int, times: int = 1):
        super().__init__()
        self.times = times
        wide = out_channels * self.scale
        self.conv_input = BlockConv2d(in_channels, out_channels, kernel_size=1)
        self.skip = BlockConv2d(out_channels, out_channels, kernel_size=1, stride=2)
        self.norm_skip = nn.BatchNorm2d(out_channels)
        self.conv1 = BlockConv2d(out_channels, wide, kernel_size=1)
        self.nonlin1 = nn.ReLU(inplace=True)
        # stride is applied per step in forward (2 at t=0, 1 afterwards); weights shared across steps
        self.conv2 = BlockConv2d(wide, wide, kernel_size=3, stride=1, padding=1)
        self.nonlin2 = nn.ReLU(inplace=True)
        self.conv3 = BlockConv2d(wide, out_channels, kernel_size=1)
        self.nonlin3 = nn.ReLU(inplace=True)
        for t in range(times):
            setattr(self, f"norm1_{t}", nn.BatchNorm2d(wide))
            setattr(self, f"norm2_{t}", nn.BatchNorm2d(wide))
            setattr(self, f"norm3_{t}", nn.BatchNorm2d(out_channels))

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        x = self.conv_input(inp)
        for t in range(self.times):
            if t == 0:
                skip = self.norm_skip(self.skip(x))
                stride = 2
            else:
                skip = x
                stride = 1
            x = self.nonlin1(getattr(self, f"norm1_{t}")(self.conv1(x)))
            x = self.conv2(x, stride=stride)
            x = self.nonlin2(getattr(self, f"norm2_{t}")(x))
            x = getattr(self, f"norm3_{t}")(self.conv3(x))
            x = self.nonlin3(x + skip)
        return x


class CORnetS(nn.Module):
    """CORnet-S: ``V1`` (64x56x56), ``V2`` (128x28x28), ``V4`` (256x14x14), ``IT`` (512x7x7),
    ``decoder`` (``avgpool`` -> ``flatten`` -> ``linear`` 512->1000). Input (B, 3, 224, 224)."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.V1 = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)),
            ("norm1", nn.BatchNorm2d(64)),
            ("nonlin1", nn.ReLU(inplace=True)),
            ("pool", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
            ("conv2", nn.Conv2d(64, 64, kernel_size=3, stride=1, padding=1, bias=False)),
            ("norm2", nn.BatchNorm2d(64)),
            ("nonlin2", nn.ReLU(inplace=True)),
        ]))
        self.V2 = CORblockS(64, 128, times=2)
        self.V4 = CORblockS(128, 256, times=4)
        self.IT = CORblockS(256, 512, times=2)
        self.decoder = nn.Sequential(OrderedDict([
            ("avgpool", nn.AdaptiveAvgPool2d(1)),
            ("flatten", nn.Flatten()),
            ("linear", nn.Linear(512, num_classes)),
        ]))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialisation of the original training code: convs N(0, sqrt(2 / (k·k·out))), BN (1, 0)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / n))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                m.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.V1(x)
        x = self.V2(x)
        x = self.V4(x)
        x = self.IT(x)
        return self.decoder(x)


def cornet_s(num_classes: int = 1000) -> CORnetS:
    """A randomly initialised CORnet-S (use :func:`brainalign.models.load_model` for weights)."""
    return CORnetS(num_classes)
