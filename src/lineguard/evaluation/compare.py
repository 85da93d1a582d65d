"""Two bundles on the same labelled parts, as a changeover needs them compared: each one's AUROC
and, at its own thresholds, its false-reject, review and escape rates, and the parts whose
decision would change. Runs on ONNX Runtime (no torch); AUROC needs scikit-learn (``[eval]``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lineguard.data import DataSplit, SampleRef
from lineguard.data.image_io import read_image
from lineguard.data.seen import SeenImages


@dataclass(frozen=True)
class BundleScore:
    """One bundle on the compared parts."""

    bundle: str
    task: str
    image_auroc: float | None
    false_reject_rate: float | None  # good parts it fails as NG
    good_to_review: float | None  # good parts it sends to REVIEW
    escape_rate: float | None  # defective parts it passes as OK
    decisions: tuple[str, ...]  # per part, in the order of ``Comparison.parts``
    scores: tuple[float, ...]


@dataclass(frozen=True)
class Changed:
    file: str
    defective: bool
    decision_a: str
    score_a: float
    decision_b: str
    score_b: float


@dataclass(frozen=True)
class Comparison:
    data: str
    parts: tuple[str, ...]
    n_good: int
    n_defect: int
    excluded_seen: int  # parts left out because one of the bundles saw them in training
    a: BundleScore
    b: BundleScore
    changed: tuple[Changed, ...]

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def _share(hits: np.ndarray, among: np.ndarray) -> float | None:
    return float(hits[among].mean()) if among.any() else None


def score_bundle(runtime: Any, samples: Sequence[SampleRef], progress: bool = False) -> BundleScore:
    """Every part through the bundle as the station runs it (``inspect``): score and decision."""
    from tqdm.auto import tqdm

    from lineguard.metrics.anomaly import image_auroc

    scores, decisions = [], []
    for sample in tqdm(samples, desc=f"score {Path(str(runtime.source)).name}", disable=not progress):
        result = runtime.inspect(read_image(sample.path))
        scores.append(float(result.score))
        decisions.append(result.decision.value)
    labels = np.asarray([s.label for s in samples], bool)
    decided = np.asarray(decisions)
    return BundleScore(
        bundle=str(runtime.source),
        task=runtime.task,
        image_auroc=image_auroc(labels, np.asarray(scores)),
        false_reject_rate=_share(decided == "NG", ~labels),
        good_to_review=_share(decided == "REVIEW", ~labels),
        escape_rate=_share(decided == "OK", labels),
        decisions=tuple(decisions),
        scores=tuple(scores),
    )


def compare_bundles(a: Any, b: Any, split: DataSplit, progress: bool = False) -> Comparison:
    """Both bundles on every labelled part of the data (its train, test and calibration defects)
    that neither bundle saw in training (by content digest)."""
    samples = list({s.path: s for s in (*split.train, *split.test, *split.calibration_defects)}.values())
    excluded = 0
    for runtime in (a, b):
        samples, dropped = SeenImages.of(runtime.metadata).leave_out(samples, split.name)
        excluded += dropped
    if not samples:
        raise ValueError(f"{split.name}: no part is left that neither bundle was trained on")
    labels = np.asarray([s.label for s in samples], bool)
    score_a, score_b = score_bundle(a, samples, progress), score_bundle(b, samples, progress)
    changed = tuple(
        Changed(str(s.path), bool(s.label), da, sa, db, sb)
        for s, da, sa, db, sb in zip(
            samples, score_a.decisions, score_a.scores, score_b.decisions, score_b.scores, strict=True
        )
        if da != db
    )
    return Comparison(
        data=split.name,
        parts=tuple(str(s.path) for s in samples),
        n_good=int((~labels).sum()),
        n_defect=int(labels.sum()),
        excluded_seen=excluded,
        a=score_a,
        b=score_b,
        changed=changed,
    )
