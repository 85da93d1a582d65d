"""Classification metrics and plots: accuracy, per-class precision / recall / F1, confusion matrix,
calibration (ECE and a reliability diagram). numpy + scikit-learn + matplotlib; no torch."""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lineguard.data.seen import NONE_SEEN, SeenImages
from lineguard.evaluation.result import Evaluation, EvaluationRequest
from lineguard.metrics.calibration import expected_calibration_error


def classification_metrics(
    labels: Sequence[int], probabilities: np.ndarray, classes: Sequence[str]
) -> dict[str, Any]:
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    y = np.asarray(labels, np.int64)
    p = np.asarray(probabilities)
    predicted = p.argmax(axis=1)
    indices = list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(
        y, predicted, labels=indices, zero_division=0
    )
    return {
        "n_images": len(y),
        "accuracy": float((predicted == y).mean()) if len(y) else float("nan"),
        "balanced_accuracy": float(np.mean([recall[i] for i in indices if support[i] > 0])),
        "macro_f1": float(np.mean(f1)),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(classes)
        },
        "confusion_matrix": confusion_matrix(y, predicted, labels=indices).tolist(),
        "classes": list(classes),
        "ece": expected_calibration_error(p, y),
        "mean_confidence": float(p.max(axis=1).mean()) if len(y) else float("nan"),
    }


def write_classification_report(
    metrics: dict[str, Any], probabilities: np.ndarray, labels: Sequence[int], out: str | Path
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, allow_nan=True))
    classes = metrics["classes"]
    matrix = np.asarray(metrics["confusion_matrix"])
    fig, ax = plt.subplots(figsize=(1.2 * len(classes) + 3, 1.1 * len(classes) + 2.5))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    for (i, j), n in np.ndenumerate(matrix):
        ax.text(j, i, str(n), ha="center", va="center", color="white" if n > matrix.max() / 2 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"accuracy {metrics['accuracy']:.4f} on {metrics['n_images']} images")
    fig.tight_layout()
    fig.savefig(out / "confusion_matrix.png", dpi=120)
    plt.close(fig)
    # Reliability diagram: does a 90 % confidence mean right 90 % of the time?
    p = np.asarray(probabilities)
    confidence, correct = p.max(axis=1), p.argmax(axis=1) == np.asarray(labels)
    edges = np.linspace(0, 1, 11)
    centres, accuracy = [], []
    for lo, hi in itertools.pairwise(edges):
        inside = (confidence > lo) & (confidence <= hi)
        if inside.any():
            centres.append(confidence[inside].mean())
            accuracy.append(correct[inside].mean())
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfectly calibrated")
    ax.plot(centres, accuracy, "o-", label=f"model (ECE {metrics['ece']:.3f})")
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(out / "reliability.png", dpi=120)
    plt.close(fig)
    return out


def evaluate_classifier(
    estimator: Any,
    samples: Sequence[Any],
    classes: Sequence[str],
    out: str | Path | None,
    seen: SeenImages = NONE_SEEN,
) -> dict[str, Any]:
    """Classify the test samples (a trained model or a bundle), compute the metrics, write the report."""
    import time

    from lineguard.data import read_image

    if tuple(classes) != tuple(estimator.classes):
        raise ValueError(
            f"the data's classes {list(classes)} differ from the model's {list(estimator.classes)}"
        )
    samples, n_seen = seen.leave_out(samples)
    labels = [s.label for s in samples]
    start = time.perf_counter()
    probabilities = estimator.predict([read_image(s.path) for s in samples]).probabilities
    elapsed = time.perf_counter() - start
    metrics = classification_metrics(labels, probabilities, classes)
    metrics["ms_per_image"] = 1e3 * elapsed / max(1, len(samples))
    metrics["n_excluded_seen_in_fit"] = n_seen
    metrics["temperature"] = estimator.temperature
    if out is not None:
        write_classification_report(metrics, probabilities, labels, out)
    return metrics


def evaluate_on_data(estimator: Any, request: EvaluationRequest) -> Evaluation:
    """`lineguard evaluate` for a classifier or its bundle: the labelled split as trained, then scored."""
    annotated, test, seen = request.labelled_test(estimator, "classify")
    m = evaluate_classifier(estimator, test, annotated.classes, request.out, seen)
    summary = (
        f"{m['n_images']} test images | accuracy {m['accuracy']:.4f} | balanced accuracy "
        f"{m['balanced_accuracy']:.4f} | macro F1 {m['macro_f1']:.4f} | ECE {m['ece']:.4f} | "
        f"{m['ms_per_image']:.1f} ms/img"
    )
    return Evaluation(m, summary)
