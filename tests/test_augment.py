"""Augmentation keeps boxes and masks on the defect; synthetic defects change what their mask says."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import textured_part

pytest.importorskip("torchvision")

from lineguard.augment import copy_paste, cutpaste, perlin, scar, synthetic_defect_set
from lineguard.augment.transforms import AugmentConfig, augment_sample, build_augmentation


def marked_part(h: int = 96, w: int = 128):
    """A dark part with one bright rectangular defect: its box and mask are known exactly."""
    image = np.full((h, w, 3), 40, np.uint8)
    image[20:45, 70:110] = 230
    mask = np.zeros((h, w), np.uint8)
    mask[20:45, 70:110] = 1
    return image, np.array([[70, 20, 110, 45]], np.float32), np.array([3]), mask


def bbox_of(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


@pytest.mark.parametrize(
    "config",
    [
        AugmentConfig(hflip=1.0, brightness=0, contrast=0),
        AugmentConfig(hflip=0.0, vflip=1.0, rot90=True, brightness=0, contrast=0),
        AugmentConfig(hflip=0.5, translate=0.1, scale=(0.8, 1.2), brightness=0.2, contrast=0.2),
        AugmentConfig(degrees=25, noise_std=0.02, blur=0.5),
    ],
)
def test_boxes_and_masks_follow_the_image(config):
    import torch

    transform = build_augmentation(config)
    for seed in range(12):
        torch.manual_seed(seed)
        image, boxes, labels, mask = marked_part()
        out, out_boxes, out_labels, out_mask = augment_sample(transform, image, boxes, labels, mask)
        bright = out.mean(axis=2) > 135
        assert out_mask.shape == out.shape[:2]
        overlap = (bright & (out_mask > 0)).sum() / max(1, (bright | (out_mask > 0)).sum())
        assert overlap > 0.85, f"seed {seed}: mask and image disagree (IoU {overlap:.2f})"
        assert out_labels.tolist() == [3]
        truth = bbox_of(out_mask)
        if config.degrees:  # a rotated rectangle's box encloses it
            assert (out_boxes[0, :2] <= truth[:2] + 2).all() and (out_boxes[0, 2:] >= truth[2:] - 2).all()
        else:
            np.testing.assert_allclose(out_boxes[0], truth, atol=2.0)


def test_a_box_pushed_out_of_the_image_is_dropped_with_its_label():
    import torch

    transform = build_augmentation(AugmentConfig(hflip=0, translate=0.3, brightness=0, contrast=0))
    dropped = 0
    for seed in range(40):
        torch.manual_seed(seed)
        image, boxes, labels, mask = marked_part()
        image[:], mask[:] = 40, 0  # the defect near the right edge this time
        image[20:45, 112:124], mask[20:45, 112:124] = 230, 1
        boxes = np.array([[112, 20, 124, 45]], np.float32)
        _, out_boxes, out_labels, out_mask = augment_sample(transform, image, boxes, labels, mask)
        assert len(out_boxes) == len(out_labels)
        if len(out_boxes) == 0:
            dropped += 1
            assert out_mask.sum() < 0.1 * mask.sum()  # the defect really left the image
    assert dropped > 0


def test_unknown_augmentation_key_is_an_error():
    with pytest.raises(ValueError, match=r"unknown augmentation keys \['flip'\]"):
        AugmentConfig.from_dict({"flip": 0.5})


@pytest.mark.parametrize("make", [cutpaste, scar, perlin])
def test_synthetic_defects_change_only_what_the_mask_marks(make):
    rng = np.random.default_rng(0)
    for _ in range(5):
        good = textured_part(rng)
        bad, mask = make(good, rng)
        assert bad.shape == good.shape and bad.dtype == good.dtype and mask.dtype == bool
        assert 0.001 < mask.mean() < 0.6
        changed = bad != good
        assert not changed[~mask].any()  # nothing outside the mask moved
        assert changed[mask].mean() > 0.3  # and the marked area really differs


def test_copy_paste_moves_a_real_defect_with_a_feathered_edge():
    rng = np.random.default_rng(1)
    good = textured_part(rng)
    donor = textured_part(rng)
    donor_mask = np.zeros(donor.shape, bool)
    donor_mask[40:60, 30:90] = True
    donor[donor_mask] = 10
    out, mask = copy_paste(good, donor, donor_mask, rng, feather_px=2)
    assert mask.sum() == donor_mask.sum()
    assert np.median(out[mask]) < 40  # the dark defect arrived
    far = ~np.pad(mask, 0)
    import cv2

    far = cv2.dilate(mask.astype(np.uint8), np.ones((9, 9))) == 0
    assert (out[far] == good[far]).all()  # the feathering stays near the defect
    with pytest.raises(ValueError, match="empty"):
        copy_paste(good, donor, np.zeros_like(donor_mask), rng)


def test_synthetic_defect_set_is_reproducible():
    rng = np.random.default_rng(2)
    good = [textured_part(rng) for _ in range(3)]
    a = synthetic_defect_set(good, 6, seed=5)
    b = synthetic_defect_set(good, 6, seed=5)
    assert all((x == y).all() for x, y in zip(a[0], b[0], strict=True))
    assert len(a[1]) == 6 and all(m.any() for m in a[1])


def test_fit_can_set_the_review_band_on_synthetic_defects(folder_dataset, tmp_path):
    from lineguard.data import open_dataset
    from lineguard.models import Padim
    from lineguard.train import fit_anomaly_model

    split = open_dataset(folder_dataset, "folder", seed=0)
    plain = fit_anomaly_model(Padim("efficientnet_lite0", (64, 64), seed=0), split, seed=0)
    helped = fit_anomaly_model(
        Padim("efficientnet_lite0", (64, 64), seed=0),
        split,
        seed=0,
        synthetic_defects=12,
        review_on_synthetic=True,
    )
    measured = fit_anomaly_model(
        Padim("efficientnet_lite0", (64, 64), seed=0), split, seed=0, synthetic_defects=12
    )
    # without review_on_synthetic the synthetic defects only measure: same thresholds, an escape estimate
    assert measured.calibration.thresholds == plain.calibration.thresholds
    assert (
        measured.calibration.expected_escape_rate is not None
        and plain.calibration.expected_escape_rate is None
    )
    assert measured.calibration.defect_source == "synthetic"
    assert plain.metadata["n_calibration_synthetic"] == 0 and helped.metadata["n_calibration_synthetic"] == 12
    assert helped.calibration.thresholds.ng == plain.calibration.thresholds.ng  # NG still from the good parts
    assert helped.calibration.thresholds.review < plain.calibration.thresholds.review  # the band widened
    assert any("synthetic defects" in w for w in helped.calibration.warnings)
