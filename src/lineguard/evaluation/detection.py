"""Detection report: mAP@0.5 and mAP@0.5:0.95 (COCOeval), AP@0.5 per class, part-level decisions
when the test split has good parts; precision-recall curves per class and overlays of boxes. No torch."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lineguard.data.seen import NONE_SEEN, SeenImages
from lineguard.evaluation.result import Evaluation, EvaluationRequest
from lineguard.metrics.detection import detection_map
from lineguard.results import Detections


def part_metrics(labels: np.ndarray, scores: np.ndarray, review: float, ng: float) -> dict[str, Any]:
    """Parts with any labelled box are defective; a part's score is its top detection."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    both = labels.any() and (~labels).any()
    return {
        "n_good": int((~labels).sum()),
        "n_defect": int(labels.sum()),
        "image_ap": float(average_precision_score(labels, scores)) if both else None,
        "image_auroc": float(roc_auc_score(labels, scores)) if both else None,
        "threshold": float(ng),
        "review_threshold": float(review),
        "false_reject_rate": float((scores[~labels] >= ng).mean()) if (~labels).any() else None,
        "sensitivity": float((scores[labels] >= ng).mean()) if labels.any() else None,
        "defects_caught_review_or_ng": float((scores[labels] >= review).mean()) if labels.any() else None,
    }


def evaluate_detector(
    estimator: Any, samples: Sequence[Any], out: str | Path | None, seen: SeenImages = NONE_SEEN
) -> dict[str, Any]:
    """Detect on the test samples (a trained model or a bundle), compute metrics, write the report."""
    from lineguard.data import read_image

    samples, n_seen = seen.leave_out(samples)
    images = [read_image(s.path) for s in samples]
    start = time.perf_counter()
    found: list[Detections] = estimator.predict(images)
    elapsed = time.perf_counter() - start
    classes = tuple(estimator.classes)
    result = detection_map(found, [s.boxes for s in samples], [s.box_labels for s in samples], len(classes))
    labels = np.array([len(s.boxes) > 0 for s in samples])
    scores = np.array([d.top_score for d in found], np.float32)
    thresholds = estimator.thresholds
    metrics: dict[str, Any] = {
        "n_images": len(samples),
        "n_excluded_seen_in_fit": n_seen,
        "n_boxes": int(sum(len(s.boxes) for s in samples)),
        "map50": result["map50"],
        "map": result["map"],
        "per_class": {
            name: {"ap50": ap, "n_boxes": int(sum((s.box_labels == k).sum() for s in samples))}
            for k, (name, ap) in enumerate(zip(classes, result["per_class_ap50"], strict=True))
        },
        "parts": part_metrics(labels, scores, thresholds.review, thresholds.ng),
        "ms_per_image": 1e3 * elapsed / max(1, len(samples)),
    }
    if out is not None:
        _write_report(Path(out), metrics, result["pr50"], classes, images, samples, found, thresholds.review)
    return metrics


def _write_report(out: Path, metrics, pr50, classes, images, samples, found, review: float) -> None:
    import cv2
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if pr50.get("precision"):
        fig, ax = plt.subplots(figsize=(5.5, 4.5))
        for k, precision in pr50["precision"].items():
            name = classes[int(k)]
            ax.plot(pr50["recall"], precision, label=f"{name} (AP {metrics['per_class'][name]['ap50']:.3f})")
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_title(f"IoU 0.5: mAP {metrics['map50']:.4f}")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "precision_recall.png", dpi=120)
        plt.close(fig)
    gallery = out / "detections"
    gallery.mkdir(exist_ok=True)
    for i in range(min(24, len(images))):
        picture = draw_detections(images[i], found[i], classes, samples[i].boxes, min_confidence=review)
        cv2.imwrite(
            str(gallery / f"{i:04d}_{Path(samples[i].path).stem}.png"),
            cv2.cvtColor(picture, cv2.COLOR_RGB2BGR),
        )


def draw_detections(
    image: np.ndarray,
    found: Detections,
    classes: Sequence[str],
    truth: np.ndarray | None = None,
    min_confidence: float = 0.0,
) -> np.ndarray:
    """RGB picture: labelled boxes in green, detections at or above ``min_confidence`` in red."""
    import cv2

    from lineguard.preprocess import to_uint8_scale
    from lineguard.preprocess.transforms import as_rgb

    picture = np.ascontiguousarray(
        as_rgb(np.clip(to_uint8_scale(image), 0, 255).astype(np.uint8), image.shape)
    )
    for box in np.asarray(truth if truth is not None else np.zeros((0, 4))).reshape(-1, 4):
        x0, y0, x1, y1 = (int(v) for v in np.rint(box))
        cv2.rectangle(picture, (x0, y0), (x1, y1), (0, 200, 0), 1)
    for box, score, cls in zip(found.xyxy, found.confidence, found.class_id, strict=True):
        if score < min_confidence:
            continue
        x0, y0, x1, y1 = (int(v) for v in np.rint(box))
        cv2.rectangle(picture, (x0, y0), (x1, y1), (230, 30, 30), 1)
        cv2.putText(
            picture,
            f"{classes[int(cls)]} {score:.2f}",
            (x0 + 2, max(10, y0 + 10)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.35,
            (230, 30, 30),
            1,
            cv2.LINE_AA,
        )
    return picture


def evaluate_on_data(estimator: Any, request: EvaluationRequest) -> Evaluation:
    """`lineguard evaluate` for a detector or its bundle: the labelled split as trained, then scored."""
    _, test, seen = request.labelled_test(estimator, "detect")
    m = evaluate_detector(estimator, test, request.out, seen)
    per_class = ", ".join(
        f"{name} {v['ap50']:.3f}" for name, v in m["per_class"].items() if v["ap50"] is not None
    )
    summary = (
        f"{m['n_images']} test images, {m['n_boxes']} boxes | mAP@0.5 {m['map50']:.4f} "
        f"mAP@0.5:0.95 {m['map']:.4f} | AP@0.5 {per_class} | {m['ms_per_image']:.1f} ms/img"
    )
    return Evaluation(m, summary)
