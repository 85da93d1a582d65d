"""Inspection metrics (scikit-learn where it has them; AUPRO implemented here)."""

from lineguard.metrics.anomaly import (
    aupro,
    binary_rates,
    image_auroc,
    pixel_auroc,
    pro_curve,
    resize_mask,
)

__all__ = ["aupro", "binary_rates", "image_auroc", "pixel_auroc", "pro_curve", "resize_mask"]
