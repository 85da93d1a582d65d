"""The backbone registry: a name -> how to build it, its input normalisation, its source."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from lineguard.errors import BackboneUnavailable

IMAGENET_MEAN_255 = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD_255 = (0.229 * 255, 0.224 * 255, 0.225 * 255)


class FeatureExtractor(nn.Module):
    """Maps a normalised NCHW batch to [stride-8 features, stride-16 features]."""

    strides: tuple[int, int] = (8, 16)
    channels: tuple[int, int]


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    build: Callable[[bool], FeatureExtractor]
    mean: tuple[float, float, float]  # per RGB channel, 0..255 scale
    std: tuple[float, float, float]
    source: str
    offline: bool  # True when the weights come with a pip package


_REGISTRY: dict[str, BackboneSpec] = {}


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"backbone {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def _ensure_builtin() -> None:
    # Imported lazily so that registering stays a side effect of first use only.
    from lineguard.backbones import efficientnet_lite, hub, mobilenetv2  # noqa: F401


def available_backbones() -> dict[str, BackboneSpec]:
    _ensure_builtin()
    return dict(_REGISTRY)


def get_backbone_spec(name: str) -> BackboneSpec:
    _ensure_builtin()
    if name.startswith("timm:"):
        from lineguard.backbones.hub import timm_spec

        return timm_spec(name)
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) + ", timm:<model name>"
        raise BackboneUnavailable(f"unknown backbone {name!r}; known: {known}") from None


def create_backbone(name: str, pretrained: bool = True) -> FeatureExtractor:
    """Build a backbone in eval mode with frozen weights."""
    spec = get_backbone_spec(name)
    model = spec.build(pretrained)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def load_state_dict_file(path: str, what: str) -> dict[str, torch.Tensor]:
    """Load a weights file without executing pickled code (weights_only=True)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise BackboneUnavailable(f"{what}: weights file {path} not found") from None
    except Exception as exc:  # unpickling refused or damaged file
        raise BackboneUnavailable(f"{what}: cannot load weights from {path}: {exc}") from None
    if not isinstance(state, dict):
        raise BackboneUnavailable(f"{what}: {path} is not a state dict")
    return state
