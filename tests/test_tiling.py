"""Tiling: tiles cover the part, maps merge back exactly, and model and bundle tile alike."""

import itertools

import numpy as np
import pytest
from helpers import add_scratch, textured_part

from lineguard.bundle import export_bundle
from lineguard.metrics import image_auroc
from lineguard.models import CalibrationSet, Padim, PatchCore, load_model
from lineguard.preprocess import Tiling, part_score
from lineguard.runtime import load_bundle


def test_tiles_cover_the_part_and_sit_flush_with_its_edges():
    t = Tiling(height=300, width=500, tile_height=128, tile_width=128, overlap=32)
    ys = sorted({y for y, _ in t.origins})
    xs = sorted({x for _, x in t.origins})
    assert ys[0] == 0 and ys[-1] == 300 - 128 and xs[-1] == 500 - 128
    assert all(b - a <= 128 - 32 for a, b in itertools.pairwise(xs))
    covered = np.zeros((300, 500), bool)
    for y, x in t.origins:
        covered[y : y + 128, x : x + 128] = True
    assert covered.all()


def test_merge_of_split_map_is_the_map():
    t = Tiling(200, 330, 96, 128, 16)
    amap = np.random.default_rng(0).random((200, 330, 1)).astype(np.float32)
    tiles = t.split(amap)[..., 0]
    np.testing.assert_allclose(t.merge(tiles), amap[..., 0], rtol=1e-6)


def test_bad_tilings_are_refused():
    with pytest.raises(ValueError, match="larger than the part"):
        Tiling(100, 100, 128, 128, 0)
    with pytest.raises(ValueError, match="overlap"):
        Tiling(300, 300, 128, 128, 128)


def test_part_score_over_the_whole_map():
    amap = np.zeros((10, 10), np.float32)
    amap[0, :3] = [5, 4, 3]
    assert part_score(amap, np.array([1.0, 7.0]), top_k=3) == pytest.approx(4.0)
    assert part_score(amap, np.array([1.0, 7.0]), top_k=0) == 7.0


@pytest.fixture(scope="module")
def tiled_model():
    """Parts of 128x320 inspected in 128x128 tiles: a scratch anywhere must show."""
    rng = np.random.default_rng(5)
    tiling = Tiling(128, 320, 128, 128, 32)
    good = [np.hstack([textured_part(rng, 128) for _ in range(3)])[:, :320] for _ in range(10)]
    model = PatchCore("efficientnet_lite0", (128, 128), coreset_ratio=0.05, tiling=tiling)
    model.fit(good, calibration=CalibrationSet(good[:5]))
    test_good = [np.hstack([textured_part(rng, 128) for _ in range(3)])[:, :320] for _ in range(5)]
    defects = []
    for k in range(5):
        panels = [textured_part(rng, 128) for _ in range(3)]
        panels[k % 3] = add_scratch(rng, panels[k % 3])[0]  # scratch in a different tile each time
        defects.append(np.hstack(panels)[:, :320])
    return model, test_good, defects


def test_tiled_model_finds_scratches_in_any_tile(tiled_model):
    model, test_good, defects = tiled_model
    pred = model.predict(test_good + defects)
    assert pred.maps.shape == (10, 128, 320)
    assert image_auroc(np.r_[np.zeros(5), np.ones(5)], pred.scores) == 1.0


def test_tiled_model_round_trips_and_exports_with_parity(tiled_model, tmp_path):
    model, test_good, defects = tiled_model
    images = test_good[:2] + defects[:3] + [np.kron(defects[0], np.ones((2, 2), np.uint8))]  # any size
    want = model.predict(images)
    model.save(tmp_path / "m")
    again = load_model(str(tmp_path / "m")).predict(images)
    np.testing.assert_array_equal(want.scores, again.scores)
    bundle = load_bundle(export_bundle(model, tmp_path / "b"))
    assert bundle.tiling == model.tiling
    got = bundle.predict(images)
    np.testing.assert_allclose(got.scores, want.scores, rtol=1e-4)
    np.testing.assert_allclose(got.maps, want.maps, rtol=1e-3, atol=1e-3 * float(want.maps.max()))
    assert model.thresholds.decide_many(got.scores) == model.thresholds.decide_many(want.scores)
    assert "merge_tiles" in bundle.inspect(defects[0]).timings_ms


def test_padim_refuses_tiling():
    with pytest.raises(ValueError, match="position-free"):
        Padim("efficientnet_lite0", (128, 128), tiling=Tiling(128, 320, 128, 128, 32))
