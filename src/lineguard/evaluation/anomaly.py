"""Evaluate a model on a test split: metrics.json plus the plots a person looks at."""

from __future__ import annotations

import heapq
import json
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from lineguard.data import DataSplit, SampleRef
from lineguard.data.seen import SeenImages
from lineguard.decision import Calibration, Decision, f1_optimal_threshold, sensitivity_threshold
from lineguard.evaluation.result import Evaluation, EvaluationRequest, as_prepared, fmt
from lineguard.metrics import aupro, binary_rates, image_auroc, pixel_auroc, resize_mask
from lineguard.results import AnomalyPrediction

CHUNK = 32
N_SHOWN = 12  # parts per heatmap gallery


@dataclass(order=True)
class ShownPart:
    """A part kept for a heatmap gallery; ordered by ``key`` alone."""

    key: float
    index: int
    score: float = field(compare=False)
    image: np.ndarray = field(compare=False, repr=False)
    amap: np.ndarray = field(compare=False, repr=False)
    mask: np.ndarray | None = field(compare=False, repr=False)


class Gallery:
    """The ``n`` parts with the largest key, kept while streaming (a min-heap)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self._heap: list[ShownPart] = []

    def offer(self, part: ShownPart) -> None:
        if len(self._heap) >= self.n and not part > self._heap[0]:
            return
        # Copy the map: a view would keep its whole batch of maps alive.
        kept = replace(part, amap=part.amap.copy())
        if len(self._heap) < self.n:
            heapq.heappush(self._heap, kept)
        else:
            heapq.heapreplace(self._heap, kept)

    def parts(self) -> list[ShownPart]:
        return sorted(self._heap, reverse=True)


class Scorer(Protocol):
    """What evaluation needs: a trained model today, an exported bundle later."""

    calibration: Calibration | None
    metadata: dict[str, Any]

    def predict(self, images: Sequence[np.ndarray]) -> AnomalyPrediction: ...


def _chunks(items: Sequence[SampleRef], size: int):
    for i in range(0, len(items), size):
        yield items[i : i + size]


def split_as_fitted(
    metadata: dict[str, Any],
    data: str | Path,
    format: str,
    seed: int | None = None,
    test_fraction: float | None = None,
) -> DataSplit:
    """DATA split as `fit` split it (its stored seed and test fraction), unless overridden; prepared
    as the check it was trained for prepares images, when it was."""
    from lineguard.data import open_dataset

    split_info = metadata.get("split", {})
    split = open_dataset(
        data,
        str(format),
        seed=seed if seed is not None else int(split_info.get("seed", 0)),
        test_fraction=test_fraction if test_fraction is not None else split_info.get("test_fraction"),
        good_class=split_info.get("good_class"),
    )
    return as_prepared(split, metadata)  # every part: `export --int8` calibrates on its good images


def unseen_test_samples(split: DataSplit, metadata: dict[str, Any]) -> list[SampleRef]:
    """The test split minus every image the model was fitted or calibrated on."""
    return SeenImages.of(metadata).leave_out(split.test, split.name)[0]


def evaluate_anomaly_model(
    model: Scorer,
    split: DataSplit,
    out_dir: str | Path | None = None,
    *,
    progress: bool = False,
    fpr_limit: float = 0.3,
    target_sensitivity: float = 0.99,
) -> dict[str, Any]:
    if model.calibration is None:
        raise ValueError("the model has no calibrated thresholds; fit it with `lineguard fit`")
    thresholds = model.calibration.thresholds
    test = unseen_test_samples(split, model.metadata)
    n_excluded = len(split.test) - len(test)

    labels = np.array([s.label for s in test], dtype=bool)
    with_masks = split.has_masks
    scores = np.empty(len(test), np.float64)
    gt_masks: list[np.ndarray] = []
    maps: list[np.ndarray] = []
    # What a quality engineer looks at first: the highest scores overall, the good
    # parts closest to rejection and the defects closest to escaping.
    galleries = {
        "worst": Gallery(N_SHOWN),
        "good_highest": Gallery(N_SHOWN),
        "defect_lowest": Gallery(N_SHOWN),
    }
    seconds = 0.0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(test), desc="evaluate", unit="img", leave=False)
    offset = 0
    for chunk in _chunks(test, CHUNK):
        loaded = [s.load() for s in chunk]
        start = time.perf_counter()
        pred = model.predict([x.image for x in loaded])
        seconds += time.perf_counter() - start
        scores[offset : offset + len(chunk)] = pred.scores
        for j, x in enumerate(loaded):
            amap = pred.maps[j]
            if with_masks:
                mask = x.mask if x.mask is not None else np.zeros(x.image.shape[:2], bool)
                gt_masks.append(resize_mask(mask, amap.shape))
                maps.append(amap)
            score = float(pred.scores[j])
            shown = ShownPart(score, offset + j, score, x.image, amap, x.mask)
            galleries["worst"].offer(shown)
            if labels[offset + j]:
                galleries["defect_lowest"].offer(ShownPart(-score, offset + j, score, x.image, amap, x.mask))
            else:
                galleries["good_highest"].offer(shown)
        offset += len(chunk)
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()

    rates = binary_rates(labels, scores, thresholds.ng)
    decided = np.array([d.value for d in thresholds.decide_many(scores)])
    table = {
        cls: {d.value: int(np.sum((decided == d.value) & (labels == is_defect))) for d in Decision}
        for cls, is_defect in (("good", False), ("defect", True))
    }
    n_good, n_defect = int((~labels).sum()), int(labels.sum())
    metrics: dict[str, Any] = {
        "dataset": split.name,
        "dataset_notes": list(split.notes),
        "n_good": n_good,
        "n_defect": n_defect,
        "n_excluded_seen_in_fit": n_excluded,
        "image_auroc": image_auroc(labels, scores),
        "pixel_auroc": pixel_auroc(gt_masks, maps) if with_masks else None,
        "aupro": aupro(gt_masks, maps, fpr_limit) if with_masks else None,
        "aupro_fpr_limit": fpr_limit,
        "pixel_metrics_resolution": list(maps[0].shape) if maps else None,
        "threshold": thresholds.ng,
        "review_threshold": thresholds.review,
        **rates,
        "decisions": table,
        "escape_rate": table["defect"]["OK"] / n_defect if n_defect else None,
        "ms_per_image": 1000.0 * seconds / len(test),
        "calibration": model.calibration.to_dict(),
    }
    if n_good and n_defect:
        f1_t, f1 = f1_optimal_threshold(scores, labels)
        metrics["tuned_on_test_set"] = {
            "note": "optimistic: chosen on these test labels; for information, not for the line",
            "f1_optimal_threshold": f1_t,
            "f1": f1,
            "sensitivity_target": target_sensitivity,
            "sensitivity_threshold": sensitivity_threshold(scores[labels], target_sensitivity),
        }
    describe = getattr(model, "config", None)
    metrics["model"] = {
        "kind": getattr(model, "kind", None),
        **(describe() if callable(describe) else {}),
        "training_fingerprint": model.metadata.get("training_fingerprint"),
        "fit_seconds": model.metadata.get("fit_seconds"),
    }
    metrics["machine"] = {"platform": platform.platform(), "processor": platform.processor()}
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
        from lineguard.evaluation.report import write_gallery, write_plots

        write_plots(out, labels, scores, thresholds)
        for name, gallery in galleries.items():
            parts = gallery.parts()
            write_gallery(out / name, parts, [test[p.index] for p in parts], thresholds)
    return metrics


def evaluate_on_data(estimator: Scorer, request: EvaluationRequest) -> Evaluation:
    """`lineguard evaluate` for an anomaly model or bundle: DATA split as fitted, then scored."""
    r = request
    split = split_as_fitted(estimator.metadata, r.data, r.format, r.seed, r.test_fraction)
    m = evaluate_anomaly_model(estimator, split, r.out, progress=True)
    summary = (
        f"{m['dataset']}: {m['n_good']} good, {m['n_defect']} defect | "
        f"image AUROC {fmt(m['image_auroc'])}  pixel AUROC {fmt(m['pixel_auroc'])}  "
        f"AUPRO@0.3 {fmt(m['aupro'])} | at NG >= {m['threshold']:.4g}: "
        f"FRR {fmt(m['false_reject_rate'])}, sensitivity {fmt(m['sensitivity'])} | "
        f"{m['ms_per_image']:.1f} ms/img"
    )
    return Evaluation(m, summary)
