"""Choosing backbone x input size on validation defects: which candidates, and which one is kept."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from conftest import add_scratch, textured_part
from typer.testing import CliRunner

from lineguard.cli import app
from lineguard.data import DataSplit, SampleRef
from lineguard.data.samples import DEFECT, GOOD
from lineguard.models import load_model
from lineguard.train import candidate_configs, select_anomaly_model
from lineguard.train.fit import MIN_SELECTION_DEFECTS


def _write(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), image)
    return path


def _split(root: Path, n_good: int = 20, n_defect: int = MIN_SELECTION_DEFECTS) -> DataSplit:
    """Portrait 100x40 parts; defects are brighter, so a mean-brightness score separates them."""
    good = [
        SampleRef(_write(root / f"g{i}.png", np.full((100, 40), 100, np.uint8)), GOOD) for i in range(n_good)
    ]
    bad = [
        SampleRef(_write(root / f"d{i}.png", np.full((100, 40), 200, np.uint8)), DEFECT, "spot")
        for i in range(n_defect)
    ]
    return DataSplit("toy", tuple(good), (), (), tuple(bad))


def test_candidates_without_enough_defects_are_the_defaults_only(tmp_path):
    split = _split(tmp_path, n_defect=MIN_SELECTION_DEFECTS - 1)
    assert candidate_configs(split) == [("efficientnet_lite0", (640, 256))]
    assert candidate_configs(split, "mobilenetv2", (64, 32)) == [("mobilenetv2", (64, 32))]


def test_candidates_with_defects_default_first(tmp_path):
    split = _split(tmp_path)
    configs = candidate_configs(split)
    assert configs[0] == ("efficientnet_lite0", (640, 256))  # H x W: the aspect ratio is kept
    assert len(configs) == 6 and len(set(configs)) == 6
    assert {size for _, size in configs} == {(640, 256), (480, 192)}
    assert {name for name, _ in configs} == {f"efficientnet_lite{i}" for i in range(3)}
    # A fixed choice is kept; only the other axis varies; --no-select turns selection off.
    assert candidate_configs(split, "mobilenetv2") == [
        ("mobilenetv2", (640, 256)),
        ("mobilenetv2", (480, 192)),
    ]
    assert [name for name, _ in candidate_configs(split, image_size=(64, 32))] == [
        f"efficientnet_lite{i}" for i in range(3)
    ]
    assert candidate_configs(split, select=False) == [configs[0]]


class _FakeModel:
    """Stands in for an AnomalyModel: its 'backbone' says how well it sees the defects."""

    def __init__(self, backbone: str, image_size: tuple[int, int]) -> None:
        self.backbone, self.image_size = backbone, image_size
        self.metadata: dict = {}
        self.calibration = None
        self.fitted = False

    def fit(self, images, *, total=None, progress=False):
        list(images)
        self.fitted = True
        self.metadata["fit_seconds"] = 0.0
        return self

    def predict(self, images, *, total=None, progress=False):
        assert self.fitted
        means = np.array([float(np.mean(image)) for image in images])
        if self.backbone == "blind":  # scores unrelated to the defects: a constant
            means = np.zeros_like(means)
        elif self.backbone == "inverted":  # ranks every defect below every good part
            means = -means
        jitter = np.linspace(0, 1e-3, len(means))  # distinct good scores for the FRR quantile
        return SimpleNamespace(scores=means + jitter)


def test_selection_keeps_the_best_validation_auroc(tmp_path):
    split = _split(tmp_path)
    candidates = [("blind", (8, 8)), ("sharp", (8, 8)), ("inverted", (8, 8)), ("sharp", (16, 16))]
    seen = []
    model = select_anomaly_model(_FakeModel, candidates, split, report=seen.append, seed=0)
    aurocs = [t["validation_auroc"] for t in seen]
    assert aurocs == pytest.approx([0.5, 1.0, 0.0, 1.0], abs=0.06)
    # Ties keep the earlier candidate.
    assert (model.backbone, model.image_size) == ("sharp", (8, 8))
    assert model.metadata["selection"]["trials"] == seen
    assert model.metadata["validation"]["n_defect"] == MIN_SELECTION_DEFECTS
    assert model.calibration is not None and model.calibration.n_defect == MIN_SELECTION_DEFECTS


def test_selection_refuses_candidates_it_cannot_rank(tmp_path):
    split = _split(tmp_path, n_defect=0)
    with pytest.raises(ValueError, match="labelled calibration defects"):
        select_anomaly_model(_FakeModel, [("a", (8, 8)), ("b", (8, 8))], split)


def _kolektor_like(root: Path, items: int = 12) -> Path:
    """kosNN/PartN.png + PartN_label.png, two scratched parts in every item."""
    rng = np.random.default_rng(0)
    for item in range(1, items + 1):
        for part in range(5):
            image = textured_part(rng, 64)
            mask = np.zeros_like(image, dtype=bool)
            if part < 2:
                image, mask = add_scratch(rng, image)
            _write(root / f"kos{item:02d}" / f"Part{part}.png", image)
            _write(root / f"kos{item:02d}" / f"Part{part}_label.png", mask.astype(np.uint8) * 255)
    return root


def test_fit_cli_selects_on_validation_defects_and_records_it(tmp_path):
    data = _kolektor_like(tmp_path / "ksdd")
    out = tmp_path / "model"
    args = ["fit", str(data), "--format", "kolektor", "--size", "64", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    model = load_model(str(out))
    trials = model.metadata["selection"]["trials"]
    assert [t["backbone"] for t in trials] == [f"efficientnet_lite{i}" for i in range(3)]
    best = max(t["validation_auroc"] for t in trials)
    first_best = next(t for t in trials if t["validation_auroc"] == best)
    assert model.backbone == first_best["backbone"]
    assert model.metadata["validation"]["image_auroc"] == pytest.approx(best)
    assert "validation AUROC" in result.output

    plain = tmp_path / "plain"
    result = CliRunner().invoke(app, [*args[:-1], str(plain), "--no-select"])
    assert result.exit_code == 0, result.output
    model = load_model(str(plain))
    assert model.backbone == "efficientnet_lite0" and "selection" not in model.metadata
