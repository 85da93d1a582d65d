"""Segmentation metrics and report: image-level AP and AUROC, mask IoU / F1 at the NG probability,
pixel AP, defect areas; a precision-recall plot and overlays of the test defects. No torch."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lineguard.data.seen import NONE_SEEN, SeenImages
from lineguard.evaluation.result import Evaluation, EvaluationRequest, fmt
from lineguard.metrics.anomaly import resize_mask


def segmentation_metrics(
    labels: np.ndarray,
    scores: np.ndarray,
    masks: Sequence[np.ndarray | None],
    maps: np.ndarray,
    threshold: float,
    review_threshold: float | None = None,
    mask_threshold: float = 0.5,
) -> dict[str, Any]:
    """Image-level metrics at the NG ``threshold`` (and the share of defects caught as REVIEW or NG
    when ``review_threshold`` is given); pixel masks: the probability map at or above ``mask_threshold``
    (the part decision's threshold is tuned for the part score, not for outlining the defect)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    labels = np.asarray(labels, bool)
    truth = np.stack(
        [resize_mask(m, maps.shape[1:]) if m is not None else np.zeros(maps.shape[1:], bool) for m in masks]
    )
    predicted = maps >= mask_threshold
    tp = int((predicted & truth).sum())
    fp = int((predicted & ~truth).sum())
    fn = int((~predicted & truth).sum())
    per_image_iou = [
        float((p & t).sum() / max(1, (p | t).sum()))
        for p, t, bad in zip(predicted, truth, labels, strict=True)
        if bad
    ]
    both = labels.any() and (~labels).any()
    decided_ng = scores >= threshold
    return {
        "n_good": int((~labels).sum()),
        "n_defect": int(labels.sum()),
        "image_ap": float(average_precision_score(labels, scores)) if labels.any() else None,
        "image_auroc": float(roc_auc_score(labels, scores)) if both else None,
        "threshold": float(threshold),
        "false_reject_rate": float(decided_ng[~labels].mean()) if (~labels).any() else None,
        "sensitivity": float(decided_ng[labels].mean()) if labels.any() else None,
        "review_threshold": None if review_threshold is None else float(review_threshold),
        "defects_caught_review_or_ng": float((scores[labels] >= review_threshold).mean())
        if review_threshold is not None and labels.any()
        else None,
        "good_sent_to_review_or_ng": float((scores[~labels] >= review_threshold).mean())
        if review_threshold is not None and (~labels).any()
        else None,
        "mask_threshold": float(mask_threshold),
        "mask_iou": tp / max(1, tp + fp + fn),
        "mask_f1": 2 * tp / max(1, 2 * tp + fp + fn),
        "mean_iou_defect_images": float(np.mean(per_image_iou)) if per_image_iou else None,
        "pixel_ap": float(average_precision_score(truth.ravel(), maps.ravel())) if truth.any() else None,
    }


def evaluate_segmenter(
    estimator: Any, samples: Sequence[Any], out: str | Path | None, seen: SeenImages = NONE_SEEN
) -> dict[str, Any]:
    """Segment the test samples (a trained model or a bundle), compute metrics, write the report."""
    from lineguard.data import read_image, read_mask

    samples, n_seen = seen.leave_out(samples)
    images = [read_image(s.path) for s in samples]
    masks = [
        read_mask(s.mask_path, image.shape[:2]) if s.mask_path else None
        for s, image in zip(samples, images, strict=True)
    ]
    labels = np.array([s.label == 1 for s in samples])
    start = time.perf_counter()
    prediction = estimator.predict(images)
    elapsed = time.perf_counter() - start
    threshold = estimator.thresholds.ng
    metrics = segmentation_metrics(
        labels, prediction.scores, masks, prediction.maps, threshold, estimator.thresholds.review
    )
    metrics["ms_per_image"] = 1e3 * elapsed / max(1, len(samples))
    metrics["n_excluded_seen_in_fit"] = n_seen
    # Defect areas in the original image's pixels (the map is at the network input size).
    areas = []
    for image, amap in zip(images, prediction.maps, strict=True):
        scale = image.shape[0] * image.shape[1] / (amap.shape[0] * amap.shape[1])
        areas.append(float((amap >= metrics["mask_threshold"]).sum() * scale))
    metrics["defect_area_px"] = {
        "median_on_defect_images": float(np.median(np.array(areas)[labels])) if labels.any() else None
    }
    if out is not None:
        _write_report(Path(out), metrics, labels, prediction, images, masks)
    return metrics


def _write_report(out: Path, metrics, labels, prediction, images, masks) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import cv2
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve

    from lineguard.evaluation.report import overlay

    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if labels.any() and (~labels).any():
        precision, recall, _ = precision_recall_curve(labels, prediction.scores)
        fig, ax = plt.subplots(figsize=(4.5, 4))
        ax.plot(recall, precision)
        ax.set_xlabel("recall (defective parts found)")
        ax.set_ylabel("precision")
        ax.set_title(f"image AP {metrics['image_ap']:.4f}")
        fig.tight_layout()
        fig.savefig(out / "precision_recall.png", dpi=120)
        plt.close(fig)
    gallery = out / "defects"
    gallery.mkdir(exist_ok=True)
    for i in np.flatnonzero(labels)[:24]:
        amap = prediction.maps[i]
        image = cv2.resize(images[i], (amap.shape[1], amap.shape[0]))
        mask = resize_mask(masks[i], amap.shape) if masks[i] is not None else None
        picture = overlay(image, amap, 1.0, mask)
        cv2.imwrite(
            str(gallery / f"{i:04d}_score{prediction.scores[i]:.3f}.png"),
            cv2.cvtColor(picture, cv2.COLOR_RGB2BGR),
        )


def evaluate_on_data(estimator: Any, request: EvaluationRequest) -> Evaluation:
    """`lineguard evaluate` for a segmenter or its bundle: the labelled split as trained, then scored."""
    _, test, seen = request.labelled_test(estimator, "segment")
    m = evaluate_segmenter(estimator, test, request.out, seen)
    summary = (
        f"{m['n_good']} good, {m['n_defect']} defect | image AP {fmt(m['image_ap'])} AUROC "
        f"{fmt(m['image_auroc'])} | at NG >= {m['threshold']:.2f}: FRR {fmt(m['false_reject_rate'])}, "
        f"sensitivity {fmt(m['sensitivity'])} | mask IoU {m['mask_iou']:.4f} F1 {m['mask_f1']:.4f} | "
        f"{m['ms_per_image']:.1f} ms/img"
    )
    return Evaluation(m, summary)
