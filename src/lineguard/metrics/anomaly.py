"""Image and pixel metrics for anomaly detection.

AUPRO follows the MVTec AD convention: the per-region overlap (PRO) curve is
integrated over false-positive rates from 0 to 0.3 and divided by 0.3, so a
perfect detector scores 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from sklearn.metrics import roc_auc_score


def image_auroc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC AUC over parts; None when only one class is present."""
    labels = np.asarray(labels).astype(bool)
    if labels.all() or not labels.any():
        return None
    return float(roc_auc_score(labels, np.asarray(scores, dtype=np.float64)))


def resize_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bring a boolean mask to the anomaly map's (H, W).

    A pixel is defect when at least half of it is covered; a defect too thin to
    cover half of any pixel keeps every pixel it touches, so it is not lost.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.shape == tuple(shape):
        return mask
    cover = cv2.resize(mask.astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    out = cover >= 0.5
    if mask.any() and not out.any():
        out = cover > 0
    return out


def _stack(masks: Sequence[np.ndarray], maps: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    if len(masks) != len(maps):
        raise ValueError(f"{len(masks)} masks but {len(maps)} maps")
    gt = np.stack([np.asarray(m, dtype=bool) for m in masks])
    am = np.stack([np.asarray(a, dtype=np.float32) for a in maps])
    if gt.shape != am.shape:
        raise ValueError(f"masks {gt.shape} and maps {am.shape} differ in shape")
    return gt, am


def pixel_auroc(masks: Sequence[np.ndarray], maps: Sequence[np.ndarray]) -> float | None:
    """ROC AUC over all pixels of all parts; None without defect pixels."""
    gt, am = _stack(masks, maps)
    if not gt.any() or gt.all():
        return None
    return float(roc_auc_score(gt.ravel(), am.ravel()))


def pro_curve(
    masks: Sequence[np.ndarray], maps: Sequence[np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, pro, thresholds) at every distinct score, descending thresholds.

    Each defect pixel carries weight 1 / (size of its connected region x number
    of regions), each normal pixel 1 / (number of normal pixels); cumulative
    sums over pixels sorted by score give the mean region overlap (PRO) and
    the false-positive rate at each threshold, exactly, in one sort.
    """
    gt, am = _stack(masks, maps)
    weights_pro = np.zeros(gt.shape, dtype=np.float64)
    n_regions = 0
    regions: list[tuple[int, np.ndarray, float]] = []
    for i, m in enumerate(gt):
        if not m.any():
            continue
        count, labels = cv2.connectedComponents(m.astype(np.uint8), connectivity=8)
        for r in range(1, count):
            region = labels == r
            regions.append((i, region, float(region.sum())))
        n_regions += count - 1
    if n_regions == 0:
        raise ValueError("AUPRO needs at least one defect region")
    for i, region, size in regions:
        weights_pro[i][region] = 1.0 / (size * n_regions)
    normal = ~gt
    n_normal = normal.sum()
    if n_normal == 0:
        raise ValueError("AUPRO needs normal pixels")
    weights_fpr = normal / n_normal
    scores = am.ravel()
    order = np.argsort(-scores, kind="stable")
    s = scores[order]
    pro = np.cumsum(weights_pro.ravel()[order])
    fpr = np.cumsum(weights_fpr.ravel()[order])
    last = np.r_[s[1:] != s[:-1], True]
    fpr, pro, s = fpr[last], pro[last], s[last]
    return np.r_[0.0, fpr], np.r_[0.0, pro], np.r_[np.inf, s]


def aupro(masks: Sequence[np.ndarray], maps: Sequence[np.ndarray], fpr_limit: float = 0.3) -> float | None:
    """Area under the PRO curve up to ``fpr_limit``, normalised to [0, 1]."""
    gt, _ = _stack(masks, maps)
    if not gt.any() or gt.all():
        return None
    fpr, pro, _ = pro_curve(masks, maps)
    # Cut the curve at fpr_limit, interpolating the PRO value there.
    keep = fpr <= fpr_limit
    x, y = fpr[keep], pro[keep]
    if x[-1] < fpr_limit:
        j = int(np.searchsorted(fpr, fpr_limit))
        x0, x1, y0, y1 = fpr[j - 1], fpr[j], pro[j - 1], pro[j]
        y_cut = y0 + (y1 - y0) * (fpr_limit - x0) / (x1 - x0)
        x, y = np.r_[x, fpr_limit], np.r_[y, y_cut]
    return float(np.trapezoid(y, x) / fpr_limit)


def binary_rates(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float | None]:
    """False-reject rate, sensitivity, precision and F1 of 'score >= threshold is defect'."""
    labels = np.asarray(labels).astype(bool)
    flagged = np.asarray(scores, dtype=np.float64) >= threshold
    n_good, n_defect = int((~labels).sum()), int(labels.sum())
    tp = int((flagged & labels).sum())
    fp = int((flagged & ~labels).sum())
    fn = n_defect - tp
    return {
        "false_reject_rate": fp / n_good if n_good else None,
        "sensitivity": tp / n_defect if n_defect else None,
        "precision": tp / (tp + fp) if tp + fp else None,
        "f1": 2 * tp / (2 * tp + fp + fn) if n_defect else None,
    }
