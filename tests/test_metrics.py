import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import roc_auc_score

from lineguard.metrics import aupro, binary_rates, image_auroc, pixel_auroc, pro_curve, resize_mask


def random_case(seed: int = 0):
    rng = np.random.default_rng(seed)
    masks, maps = [], []
    for i in range(6):
        mask = np.zeros((24, 24), bool)
        if i % 2:
            mask[rng.integers(0, 12) :][:5, 3:9] = True
            mask[18:21, 15:22] = True
        amap = rng.random((24, 24)).astype(np.float32) + 0.8 * mask
        masks.append(mask)
        maps.append(np.round(amap, 2))  # ties on purpose
    return masks, maps


def test_image_auroc_matches_sklearn_and_handles_one_class():
    labels = np.array([0, 0, 1, 1, 0, 1])
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9])
    assert image_auroc(labels, scores) == pytest.approx(roc_auc_score(labels, scores))
    assert image_auroc(np.zeros(3), np.arange(3)) is None


def test_pixel_auroc_matches_sklearn():
    masks, maps = random_case()
    want = roc_auc_score(np.stack(masks).ravel(), np.stack(maps).ravel())
    assert pixel_auroc(masks, maps) == pytest.approx(want)


def brute_force_aupro(masks, maps, limit=0.3, steps=4000):
    gt = np.stack(masks)
    am = np.stack(maps)
    regions = []
    for i, m in enumerate(gt):
        labels, n = ndimage.label(m, structure=np.ones((3, 3)))
        regions += [(i, labels == r) for r in range(1, n + 1)]
    fprs, pros = [], []
    for t in np.linspace(am.max() + 1e-6, am.min() - 1e-6, steps):
        pred = am >= t
        fprs.append((pred & ~gt).sum() / (~gt).sum())
        pros.append(np.mean([pred[i][r].mean() for i, r in regions]))
    fprs, pros = np.array(fprs), np.array(pros)
    keep = fprs <= limit
    x = np.r_[fprs[keep], limit]
    y = np.r_[pros[keep], np.interp(limit, fprs, pros)]
    return np.trapezoid(y, x) / limit


def test_aupro_matches_brute_force_thresholds():
    masks, maps = random_case(3)
    assert aupro(masks, maps) == pytest.approx(brute_force_aupro(masks, maps), abs=2e-3)


def test_aupro_perfect_and_none():
    masks, _ = random_case(4)
    perfect = [m.astype(np.float32) for m in masks]
    assert aupro(masks, perfect) == pytest.approx(1.0)
    empty = [np.zeros((4, 4), bool)] * 2
    assert aupro(empty, [np.zeros((4, 4))] * 2) is None


def test_pro_curve_is_monotone_and_ends_at_one():
    masks, maps = random_case(5)
    fpr, pro, _ = pro_curve(masks, maps)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(pro) >= -1e-12)
    assert fpr[-1] == pytest.approx(1.0) and pro[-1] == pytest.approx(1.0)


def test_binary_rates():
    labels = np.array([0, 0, 0, 0, 1, 1])
    scores = np.array([0.1, 0.2, 0.6, 0.3, 0.7, 0.4])
    r = binary_rates(labels, scores, 0.5)
    assert r["false_reject_rate"] == 0.25 and r["sensitivity"] == 0.5
    assert r["precision"] == 0.5 and r["f1"] == pytest.approx(0.5)


def test_resize_mask_keeps_thin_defects():
    mask = np.zeros((100, 100), bool)
    mask[50, 10:90] = True  # one pixel thin: under half of any 4x4 cell
    small = resize_mask(mask, (25, 25))
    assert small.any() and small.shape == (25, 25)
    block = np.zeros((100, 100), bool)
    block[0:40, 0:40] = True
    assert resize_mask(block, (10, 10)).sum() == 16
