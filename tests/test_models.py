import json

import numpy as np
import pytest
import torch

from lineguard.errors import ModelFileError
from lineguard.metrics import image_auroc, pixel_auroc
from lineguard.models import AnomalyModel, Padim, PatchCore, load_model

SIZE = (128, 128)


def make(kind: str, **kwargs):
    if kind == "patchcore":
        return PatchCore("efficientnet_lite0", SIZE, coreset_ratio=0.05, seed=0, **kwargs)
    return Padim("efficientnet_lite0", SIZE, seed=0, **kwargs)


@pytest.fixture(scope="module", params=["patchcore", "padim"])
def fitted(request, parts):
    return make(request.param).fit(parts["good"])


def test_detects_and_localises_generated_scratches(fitted, parts):
    images = parts["test_good"] + parts["defect"]
    labels = np.r_[np.zeros(len(parts["test_good"])), np.ones(len(parts["defect"]))]
    pred = fitted.predict(images)
    assert pred.scores.shape == (20,) and pred.maps.shape == (20, *SIZE)
    assert image_auroc(labels, pred.scores) >= 0.95
    masks = [np.zeros(SIZE, bool)] * len(parts["test_good"]) + parts["mask"]
    assert pixel_auroc(masks, pred.maps) >= 0.9
    # the image score is where the map peaks: on the scratch
    peak = np.unravel_index(pred.maps[-1].argmax(), SIZE)
    ys, xs = np.nonzero(parts["mask"][-1])
    assert abs(peak[0] - ys.mean()) < 40 and abs(peak[1] - xs.mean()) < 40


def test_save_load_round_trip_gives_identical_scores(fitted, parts, tmp_path):
    images = parts["defect"][:3] + parts["test_good"][:3]
    before = fitted.predict(images)
    fitted.save(tmp_path / "m")
    assert not list((tmp_path / "m").glob("*.pt*")) and (tmp_path / "m" / "state.safetensors").exists()
    loaded = load_model(str(tmp_path / "m"))
    assert type(loaded) is type(fitted) and loaded.get_params() == fitted.get_params()
    after = loaded.predict(images)
    np.testing.assert_array_equal(before.scores, after.scores)
    np.testing.assert_array_equal(before.maps, after.maps)


@pytest.mark.parametrize("kind", ["patchcore", "padim"])
def test_fit_is_deterministic_with_a_seed(kind, parts):
    a = make(kind).fit(parts["good"][:8])
    b = make(kind).fit(parts["good"][:8])
    for (ka, va), (kb, vb) in zip(a.module.state_dict().items(), b.module.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)


def test_any_size_grey_colour_and_16_bit_inputs(parts):
    model = make("patchcore").fit(parts["good"][:6])
    grey = parts["test_good"][0]
    colour = np.repeat(grey[:, :, None], 3, axis=2)
    deep = grey.astype(np.uint16) * 257
    big = np.kron(grey, np.ones((3, 2), np.uint8))  # 384x256: resized to the input size
    s = model.predict([grey, colour, deep, big]).scores
    assert s[0] == pytest.approx(s[1], rel=1e-5)
    assert s[0] == pytest.approx(s[2], rel=1e-4)
    assert np.isfinite(s[3])


def test_patchcore_memory_bank_size_follows_the_ratio(parts):
    model = PatchCore("efficientnet_lite0", SIZE, coreset_ratio=0.1).fit(parts["good"][:4])
    # 4 images x 16 x 16 stride-8 patches = 1024 patches -> 10 % = 103
    assert model.metadata["n_train_patches"] == 1024
    assert model.module.memory_bank.shape == (103, 152)


def test_load_refuses_newer_schema_and_missing_files(fitted, tmp_path):
    fitted.save(tmp_path / "m")
    doc = json.loads((tmp_path / "m" / "model.json").read_text())
    doc["schema_version"] = 99
    (tmp_path / "m" / "model.json").write_text(json.dumps(doc))
    with pytest.raises(ModelFileError, match="anomaly model schema 99 is newer than this LineGuard"):
        AnomalyModel.load(tmp_path / "m")
    with pytest.raises(ModelFileError, match="not found"):
        AnomalyModel.load(tmp_path / "nothing")


def test_a_bad_fit_record_is_refused_naming_the_key(fitted, tmp_path):
    fitted.save(tmp_path / "m")
    doc = json.loads((tmp_path / "m" / "model.json").read_text())
    assert "selection" not in doc["metadata"]  # what a fit did not record stays absent
    doc["metadata"]["seen_sha256"] = 5
    (tmp_path / "m" / "model.json").write_text(json.dumps(doc))
    with pytest.raises(ModelFileError, match=r"model\.json: metadata\.seen_sha256"):
        AnomalyModel.load(tmp_path / "m")


def test_damaged_state_file_is_refused(fitted, tmp_path):
    fitted.save(tmp_path / "m")
    state = tmp_path / "m" / "state.safetensors"
    data = bytearray(state.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit in the weights
    state.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="sha256 differs"):
        AnomalyModel.load(tmp_path / "m")
    state.write_bytes(b"\x00" * 64)  # and a file that is not safetensors at all, with no hash to compare
    doc = json.loads((tmp_path / "m" / "model.json").read_text())
    del doc["files"]
    (tmp_path / "m" / "model.json").write_text(json.dumps(doc))
    with pytest.raises(ModelFileError, match=r"state\.safetensors"):
        AnomalyModel.load(tmp_path / "m")


def test_predict_before_fit_is_an_error():
    with pytest.raises(RuntimeError, match="not fitted"):
        make("patchcore").predict([np.zeros((8, 8), np.uint8)])


def test_padim_inverts_wide_covariances(parts):
    """More features than MKL's threaded LU handles well inside torch's batch loop (see
    batched_inverse): the model still fits, and its inverses invert."""
    from lineguard.models.padim import batched_inverse

    rng = np.random.default_rng(0)
    a = torch.from_numpy(rng.normal(size=(6, 150, 300)))
    cov = a @ a.transpose(1, 2) / 300 + 0.01 * torch.eye(150, dtype=torch.float64)
    identity = batched_inverse(cov) @ cov
    assert torch.allclose(identity, torch.eye(150, dtype=torch.float64).expand_as(identity), atol=1e-8)

    model = Padim("efficientnet_lite0", (64, 64), seed=0, n_features=152).fit(parts["good"][:8])
    assert model.metadata["n_features"] == 152
    assert model.module.inv_cov.shape[1:] == (152, 152)
    assert torch.isfinite(model.module.inv_cov).all()
