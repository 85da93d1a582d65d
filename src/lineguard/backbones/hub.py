"""Backbones whose weights come from a hub (torchvision, timm), for users with internet.

The download happens through the libraries' own loaders; when the hub cannot be
reached the error says so and names the offline backbones that need no network.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from lineguard.backbones.registry import (
    IMAGENET_MEAN_255,
    IMAGENET_STD_255,
    BackboneSpec,
    FeatureExtractor,
    register_backbone,
)
from lineguard.errors import BackboneUnavailable

OFFLINE_HINT = (
    "Offline backbones need no network: efficientnet_lite0, efficientnet_lite1, "
    "efficientnet_lite2, mobilenetv2. Or place the weights file in "
    "$TORCH_HOME/hub/checkpoints (torchvision) / the Hugging Face cache (timm) first."
)


def _hub_failure(name: str, exc: BaseException) -> BackboneUnavailable:
    return BackboneUnavailable(
        f"{name}: could not download its pretrained weights from the hub "
        f"({type(exc).__name__}: {exc}). {OFFLINE_HINT}"
    )


class ResNetFeatures(FeatureExtractor):
    """torchvision ResNet trunk: layer2 (stride 8) and layer3 (stride 16), as in PatchCore."""

    def __init__(self, net: Any) -> None:  # a torchvision ResNet
        super().__init__()
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1: nn.Module = net.layer1
        self.layer2: nn.Module = net.layer2
        self.layer3: nn.Module = net.layer3
        self.channels = (
            _out_channels(self.layer2),
            _out_channels(self.layer3),
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.layer1(self.stem(x))
        f8 = self.layer2(x)
        return [f8, self.layer3(f8)]


def _out_channels(layer: Any) -> int:
    last = layer[-1]
    bn = getattr(last, "bn3", None) or last.bn2
    return int(bn.num_features)


def _torchvision_builder(name: str):
    def build(pretrained: bool) -> FeatureExtractor:
        try:
            import torchvision
        except ImportError:
            raise BackboneUnavailable(f"{name}: torchvision is not installed") from None
        try:
            net = torchvision.models.get_model(name, weights="DEFAULT" if pretrained else None)
        except (OSError, RuntimeError, ValueError) as exc:  # URLError is an OSError
            raise _hub_failure(name, exc) from None
        return ResNetFeatures(net)

    return build


for _name in ("resnet18", "resnet50", "wide_resnet50_2"):
    register_backbone(
        BackboneSpec(
            name=_name,
            build=_torchvision_builder(_name),
            mean=IMAGENET_MEAN_255,
            std=IMAGENET_STD_255,
            source=f"ImageNet, torchvision hub {_name} (downloads on first use)",
            offline=False,
        )
    )


class TimmFeatures(FeatureExtractor):
    def __init__(self, net: nn.Module, channels: tuple[int, int]) -> None:
        super().__init__()
        self.net = net
        self.channels = channels

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return list(self.net(x))


def timm_spec(name: str) -> BackboneSpec:
    """A spec for any timm model, tapping the stages at stride 8 and 16."""
    model_name = name.removeprefix("timm:")

    def build(pretrained: bool) -> FeatureExtractor:
        try:
            import timm
        except ImportError:
            raise BackboneUnavailable(
                f"{name}: timm is not installed (pip install 'lineguard[hub]')"
            ) from None
        try:
            probe = timm.create_model(model_name, pretrained=False, features_only=True)
            reductions = list(probe.feature_info.reduction())
            indices = [reductions.index(8), reductions.index(16)]
        except ValueError:
            raise BackboneUnavailable(f"{name}: has no stride-8 and stride-16 stages") from None
        except RuntimeError as exc:
            raise BackboneUnavailable(f"{name}: unknown timm model ({exc})") from None
        try:
            net = timm.create_model(
                model_name, pretrained=pretrained, features_only=True, out_indices=indices
            )
        except (OSError, RuntimeError) as exc:
            raise _hub_failure(name, exc) from None
        channels = tuple(net.feature_info.channels())
        return TimmFeatures(net, (int(channels[0]), int(channels[1])))

    return BackboneSpec(
        name=name,
        build=build,
        mean=IMAGENET_MEAN_255,
        std=IMAGENET_STD_255,
        source=f"timm {model_name} (downloads on first use)",
        offline=False,
    )
