"""Plots for an evaluation: ROC, score histogram with thresholds, heatmap overlays."""

from __future__ import annotations

from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")  # headless: the line PC and CI have no screen
import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import roc_curve

from lineguard.decision import DecisionThresholds
from lineguard.preprocess import to_uint8_scale


def plot_roc(path: Path, labels: np.ndarray, scores: np.ndarray) -> None:
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    if labels.any() and not labels.all():
        fpr, tpr, _ = roc_curve(labels, scores)
        ax.plot(fpr, tpr, lw=2)
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1)
    ax.set(
        xlabel="false-reject rate (good parts flagged)",
        ylabel="sensitivity",
        title="Image-level ROC",
        xlim=(0, 1),
        ylim=(0, 1.01),
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_histogram(
    path: Path, labels: np.ndarray, scores: np.ndarray, thresholds: DecisionThresholds
) -> None:
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    bins = np.histogram_bin_edges(scores, bins=40).tolist()
    ax.hist(scores[~labels], bins=bins, alpha=0.6, label=f"good ({(~labels).sum()})", color="tab:green")
    if labels.any():
        ax.hist(scores[labels], bins=bins, alpha=0.6, label=f"defect ({labels.sum()})", color="tab:red")
    ax.axvline(thresholds.review, c="orange", ls="--", label=f"review ≥ {thresholds.review:.3g}")
    ax.axvline(thresholds.ng, c="black", ls="-", label=f"NG ≥ {thresholds.ng:.3g}")
    ax.set(xlabel="anomaly score", ylabel="parts", title="Score distribution")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def overlay(image: np.ndarray, amap: np.ndarray, vmax: float, mask: np.ndarray | None) -> np.ndarray:
    """RGB uint8: the part beside its anomaly map in 'jet' (red = at the NG threshold), defect outlined."""
    base = np.clip(to_uint8_scale(image), 0, 255).astype(np.uint8)
    if base.ndim == 2:
        base = cv2.cvtColor(base, cv2.COLOR_GRAY2RGB)
    h, w = base.shape[:2]
    heat = cv2.resize(amap, (w, h), interpolation=cv2.INTER_LINEAR)
    heat = np.clip(heat / max(vmax, 1e-12), 0, 1)
    colour = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET)[:, :, ::-1]
    blended = cv2.addWeighted(base, 0.5, colour, 0.5, 0)
    if mask is not None and mask.any():
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        for panel in (base, blended):
            cv2.drawContours(panel, contours, -1, (255, 255, 255), max(1, w // 250))
    gap = np.full((h, max(4, w // 50), 3), 255, np.uint8)
    return np.hstack([base, gap, blended])


def write_plots(out, labels, scores, thresholds) -> None:
    out = Path(out)
    plot_roc(out / "roc.png", labels, scores)
    plot_histogram(out / "score_histogram.png", labels, scores, thresholds)


def write_gallery(folder: Path, parts, samples, thresholds) -> None:
    """One PNG per part: <rank>_<truth>_<decision>_<name>.png."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    for rank, (part, sample) in enumerate(zip(parts, samples, strict=True), 1):
        rgb = overlay(part.image, part.amap, thresholds.ng, part.mask)
        truth = "defect" if sample.label else "good"
        name = f"{rank:02d}_{truth}_{thresholds.decide(part.score).value}_{Path(sample.path).stem}.png"
        cv2.imwrite(str(folder / name), rgb[:, :, ::-1])
