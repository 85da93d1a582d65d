"""Detector outputs → detections: score threshold, top-k, per-class NMS (numpy only, no torch).

Training-side prediction and the bundle runtime both call :func:`select_detections`
on the same raw graph outputs, so the two give the same boxes by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lineguard.results import Detections


@dataclass(frozen=True)
class DetectionSettings:
    """How raw per-location outputs become detections (stored with the model and the bundle)."""

    score_threshold: float = 0.05
    iou_threshold: float = 0.6
    max_detections: int = 100
    top_k: int = 1000

    def to_dict(self) -> dict[str, float | int]:
        return {
            "score_threshold": self.score_threshold,
            "iou_threshold": self.iou_threshold,
            "max_detections": self.max_detections,
            "top_k": self.top_k,
        }

    @classmethod
    def from_dict(cls, doc: dict | None) -> DetectionSettings:
        return cls(**(doc or {}))


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one xyxy box with each of (K, 4) boxes."""
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression; indices kept, highest score first (stable for ties)."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        best = order[0]
        keep.append(int(best))
        rest = order[1:]
        order = rest[box_iou(boxes[best], boxes[rest]) <= iou_threshold]
    return np.asarray(keep, np.int64)


def select_detections(
    boxes: np.ndarray,
    scores: np.ndarray,
    settings: DetectionSettings,
    input_size: tuple[int, int],
    image_size: tuple[int, int] | None = None,
) -> Detections:
    """One image's raw outputs → detections in ``image_size`` pixels.

    ``boxes`` (A, 4) xyxy and ``scores`` (A, C) per location, in network-input pixels
    (``input_size`` = height, width); ``image_size`` (height, width) of the original image
    to scale the boxes back to (default: the input size)."""
    height, width = input_size
    flat = scores.reshape(-1)
    candidates = np.flatnonzero(flat > settings.score_threshold)
    if candidates.size > settings.top_k:
        top = np.argpartition(-flat[candidates], settings.top_k - 1)[: settings.top_k]
        candidates = candidates[top]
    if candidates.size == 0:
        return Detections.empty()
    n_classes = scores.shape[1]
    location, class_id = candidates // n_classes, candidates % n_classes
    confidence = flat[candidates].astype(np.float32)
    xyxy = boxes[location].astype(np.float32)
    xyxy[:, [0, 2]] = np.clip(xyxy[:, [0, 2]], 0, width)
    xyxy[:, [1, 3]] = np.clip(xyxy[:, [1, 3]], 0, height)
    # Per-class NMS in one pass: each class's boxes moved to their own far-away region.
    offset = class_id[:, None].astype(np.float32) * (max(height, width) + 1.0)
    keep = nms(xyxy + offset, confidence, settings.iou_threshold)[: settings.max_detections]
    xyxy, confidence, class_id = xyxy[keep], confidence[keep], class_id[keep]
    if image_size is not None and tuple(image_size) != (height, width):
        sy, sx = image_size[0] / height, image_size[1] / width
        xyxy = xyxy * np.asarray([sx, sy, sx, sy], np.float32)
    return Detections(xyxy.astype(np.float32), confidence, class_id.astype(np.int64))
