"""Choosing backbone x input size on validation defects: which candidates, and which one is kept."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from helpers import add_scratch, textured_part
from typer.testing import CliRunner

from lineguard.cli import app
from lineguard.data import DataSplit, SampleRef
from lineguard.data.samples import DEFECT, GOOD
from lineguard.models import load_model
from lineguard.preprocess.transforms import Preprocessing
from lineguard.train import Candidate, build_candidate, candidate_configs, select_anomaly_model
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
    assert candidate_configs(split) == [("padim", "efficientnet_lite0", (640, 256))]
    assert candidate_configs(split, "mobilenetv2", (64, 32), model="patchcore") == [
        ("patchcore", "mobilenetv2", (64, 32))
    ]


def test_candidates_with_defects_default_first(tmp_path):
    split = _split(tmp_path)
    configs = candidate_configs(split)
    assert configs[0] == ("padim", "efficientnet_lite0", (640, 256))  # H x W: the aspect ratio is kept
    assert len(configs) == 7 and len(set(configs)) == 7
    padim = [c for c in configs if c.model == "padim"]
    assert {c.image_size for c in padim} == {(640, 256), (480, 192)}
    assert {c.backbone for c in padim} == {f"efficientnet_lite{i}" for i in range(3)}
    # the other model kind on the default backbone and size, last
    assert configs[-1] == ("patchcore", "efficientnet_lite0", (640, 256))
    # A fixed choice is kept; only the other axes vary; --no-select turns selection off.
    assert candidate_configs(split, "mobilenetv2", model="padim") == [
        ("padim", "mobilenetv2", (640, 256)),
        ("padim", "mobilenetv2", (480, 192)),
    ]
    assert [c.backbone for c in candidate_configs(split, image_size=(64, 32), model="padim")] == [
        f"efficientnet_lite{i}" for i in range(3)
    ]
    assert candidate_configs(split, select=False) == [configs[0]]


class _FakeModel:
    """Stands in for an AnomalyModel: its 'backbone' says how well it sees the defects."""

    def __init__(self, backbone: str, image_size: tuple[int, int]) -> None:
        self.backbone, self.image_size = backbone, image_size
        self.preprocessing = Preprocessing(*image_size, mean=(0, 0, 0), std=(1, 1, 1))  # drift reference
        self.metadata: dict = {}
        self.calibration = None
        self.fitted = False

    def fit(self, images, *, total=None, progress=False, calibration=None):
        from lineguard.models import AnomalyModel

        list(images)
        self.fitted = True
        self.metadata["fit_seconds"] = 0.0
        if calibration is not None:  # the thresholds, set as every anomaly model's fit sets them
            AnomalyModel._calibrate(self, calibration, progress)  # type: ignore[arg-type]
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
    candidates = [
        Candidate("fake", *c)
        for c in [("blind", (8, 8)), ("sharp", (8, 8)), ("inverted", (8, 8)), ("sharp", (16, 16))]
    ]
    seen = []
    model = select_anomaly_model(
        lambda c: _FakeModel(c.backbone, c.image_size), candidates, split, report=seen.append, seed=0
    )
    aurocs = [t["validation_auroc"] for t in seen]
    assert aurocs == pytest.approx([0.5, 1.0, 0.0, 1.0], abs=0.06)
    # Ties keep the earlier candidate.
    assert (model.backbone, model.image_size) == ("sharp", (8, 8))
    assert model.metadata["selection"]["trials"] == seen
    assert model.metadata["validation"]["n_defect"] == MIN_SELECTION_DEFECTS
    assert model.calibration is not None and model.calibration.n_defect == MIN_SELECTION_DEFECTS


def test_selection_refuses_candidates_it_cannot_rank(tmp_path):
    split = _split(tmp_path, n_defect=0)
    with pytest.raises(ValueError, match="labelled calibration defects or synthetic ones"):
        select_anomaly_model(
            _FakeModel, [Candidate("fake", "a", (8, 8)), Candidate("fake", "b", (8, 8))], split
        )


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
    assert [(t["model"], t["backbone"]) for t in trials] == [
        *[("padim", f"efficientnet_lite{i}") for i in range(3)],
        ("patchcore", "efficientnet_lite0"),
    ]
    best = max(t["validation_auroc"] for t in trials)
    first_best = next(t for t in trials if t["validation_auroc"] == best)
    assert (model.kind, model.backbone) == (first_best["model"], first_best["backbone"])
    assert model.metadata["validation"]["image_auroc"] == pytest.approx(best)
    assert "validation AUROC" in result.output

    plain = tmp_path / "plain"
    result = CliRunner().invoke(app, [*args[:-1], str(plain), "--no-select"])
    assert result.exit_code == 0, result.output
    model = load_model(str(plain))
    assert (
        model.kind == "padim" and model.backbone == "efficientnet_lite0" and "selection" not in model.metadata
    )


def test_synthetic_defects_rank_candidates_without_labelled_ones(tmp_path):
    """No labelled defects: a real PatchCore and a blind scorer are told apart on synthetic defects."""
    from lineguard.models import PatchCore

    rng = np.random.default_rng(0)
    good = [SampleRef(_write(tmp_path / f"g{i}.png", textured_part(rng, 64)), GOOD) for i in range(30)]
    split = DataSplit("toy", tuple(good), ())
    # without labelled defects, enough synthetic ones rank the model kinds (not backbones or sizes)
    assert [c.model for c in candidate_configs(split, synthetic_defects=MIN_SELECTION_DEFECTS)] == [
        "padim",
        "patchcore",
    ]
    assert len(candidate_configs(split, synthetic_defects=MIN_SELECTION_DEFECTS - 1)) == 1

    def build(c: Candidate):
        if c.backbone == "blind":
            return _FakeModel("blind", c.image_size)
        return PatchCore(c.backbone, c.image_size, coreset_ratio=0.05, seed=0)

    seen = []
    candidates = [
        Candidate("fake", "blind", (64, 64)),
        Candidate("patchcore", "efficientnet_lite0", (64, 64)),
    ]
    model = select_anomaly_model(build, candidates, split, report=seen.append, seed=0, synthetic_defects=30)
    assert model.backbone == "efficientnet_lite0"
    assert seen[0]["validation_auroc"] == pytest.approx(0.5, abs=0.1) and seen[1]["validation_auroc"] > 0.8
    assert model.metadata["validation"]["defects"] == "synthetic"
    assert "synthetic calibration defects" in model.metadata["selection"]["criterion"]
    assert model.calibration.defect_source == "synthetic"


def test_build_candidate_gives_each_model_the_options_it_takes():
    options = {"coreset_ratio": 0.05, "reweight_neighbours": 0, "top_fraction": 0.02, "seed": 3}
    padim = build_candidate(Candidate("padim", "efficientnet_lite0", (64, 64)), **options)
    patchcore = build_candidate(Candidate("patchcore", "efficientnet_lite0", (64, 64)), **options)
    assert padim.kind == "padim" and padim.top_fraction == 0.02 and padim.seed == 3
    assert patchcore.coreset_ratio == 0.05 and patchcore.top_fraction == 0.02
    # A misspelt option is not silently dropped for every candidate.
    with pytest.raises(ValueError, match="coreset_ration"):
        build_candidate(Candidate("padim", "efficientnet_lite0", (64, 64)), coreset_ration=0.1)
