"""Augmentation settings (torch-free: training configs and model documents validate them).

Configured by a plain mapping (from YAML or the CLI), every key optional::

    hflip: 0.5            # probability
    vflip: 0.5
    rot90: true           # random multiples of 90 degrees (parts without an up direction)
    degrees: 10           # random rotation in [-10, 10]
    translate: 0.05       # fraction of the size
    scale: [0.9, 1.1]
    brightness: 0.2       # colour jitter strengths
    contrast: 0.2
    noise_std: 0.02       # Gaussian noise, on the 0..1 scale
    blur: 0.2             # probability of a Gaussian blur (kernel 3 or 5)
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class AugmentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    hflip: float = Field(0.5, ge=0, le=1)
    vflip: float = Field(0.0, ge=0, le=1)
    rot90: bool = False
    degrees: float = Field(0.0, ge=0, le=180)
    translate: float = Field(0.0, ge=0, le=1)
    scale: tuple[float, float] = (1.0, 1.0)
    brightness: float = Field(0.1, ge=0)
    contrast: float = Field(0.1, ge=0)
    noise_std: float = Field(0.0, ge=0)
    blur: float = Field(0.0, ge=0, le=1)

    @classmethod
    def from_dict(cls, doc: dict[str, Any] | None) -> AugmentConfig:
        doc = dict(doc or {})
        unknown = sorted(set(doc) - set(cls.model_fields))
        if unknown:
            raise ValueError(f"unknown augmentation keys {unknown}; known: {sorted(cls.model_fields)}")
        return cls.model_validate(doc)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


# Detectors and segmenters: defects have no up or left, so both flips by default.
FLIPS = AugmentConfig(hflip=0.5, vflip=0.5, brightness=0.1, contrast=0.1)
