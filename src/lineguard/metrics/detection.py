"""Detection mAP with pycocotools' reference COCOeval: mAP@0.5 and mAP@0.5:0.95 (101-point
interpolated precision, up to 100 detections per image, all object sizes), per-class AP@0.5 and
the precision-recall curves at IoU 0.5."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from lineguard.results import Detections


def _xywh(box: np.ndarray) -> list[float]:
    x0, y0, x1, y1 = (float(v) for v in box)
    return [x0, y0, x1 - x0, y1 - y0]


def detection_map(
    detections: Sequence[Detections],
    gt_boxes: Sequence[np.ndarray],
    gt_labels: Sequence[np.ndarray],
    n_classes: int,
) -> dict[str, Any]:
    """Compare per-image detections with ground truth (same pixel coordinates).

    Returns map50, map (0.5:0.95), per_class_ap50 (None for a class without ground truth),
    and pr50: per class the recall grid and precision at IoU 0.5."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not (len(detections) == len(gt_boxes) == len(gt_labels)):
        raise ValueError("detections, boxes and labels must cover the same images")
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for i, (found, boxes, labels) in enumerate(zip(detections, gt_boxes, gt_labels, strict=True)):
        images.append({"id": i})
        for box, label in zip(np.asarray(boxes).reshape(-1, 4), np.asarray(labels).reshape(-1), strict=True):
            x, y, w, h = _xywh(box)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i,
                    "category_id": int(label),
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
        for box, score, label in zip(found.xyxy, found.confidence, found.class_id, strict=True):
            results.append(
                {"image_id": i, "category_id": int(label), "bbox": _xywh(box), "score": float(score)}
            )
    if not annotations:
        raise ValueError("no ground-truth boxes to evaluate detection against")
    if not results:
        no_curves: dict[str, Any] = {"recall": [], "precision": {}}
        return {"map50": 0.0, "map": 0.0, "per_class_ap50": [None] * n_classes, "pr50": no_curves}
    with contextlib.redirect_stdout(io.StringIO()):  # COCOeval prints its progress and table
        truth = COCO()
        truth.dataset = {
            "images": images,
            "annotations": annotations,
            "categories": [{"id": k} for k in range(n_classes)],
        }
        truth.createIndex()
        evaluation = COCOeval(truth, truth.loadRes(results), "bbox")
        evaluation.params.catIds = list(range(n_classes))
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    precision = evaluation.eval["precision"]  # [iou, recall, class, area, max dets]
    recall_grid = evaluation.params.recThrs
    per_class: list[float | None] = []
    pr50: dict[int, list[float]] = {}
    for k in range(n_classes):
        curve = precision[0, :, k, 0, -1]
        if (curve < 0).all():  # no ground truth of this class
            per_class.append(None)
            continue
        per_class.append(float(np.mean(np.clip(curve, 0, None))))
        pr50[k] = [float(v) for v in np.clip(curve, 0, None)]
    return {
        "map50": float(max(evaluation.stats[1], 0.0)),
        "map": float(max(evaluation.stats[0], 0.0)),
        "per_class_ap50": per_class,
        "pr50": {"recall": [float(r) for r in recall_grid], "precision": pr50},
    }
