"""Export parity: the ONNX bundle gives the training model's scores, maps and decisions."""

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from helpers import shared_dataset

from lineguard.bundle import export_bundle
from lineguard.data import open_dataset
from lineguard.errors import ModelFileError
from lineguard.models import CalibrationSet, Padim, PatchCore
from lineguard.runtime import load_bundle
from lineguard.train.fit import iter_images

SIZE = (96, 128)


def fitted(kind, good, backbone="efficientnet_lite0"):
    cls = PatchCore if kind == "patchcore" else Padim
    return cls(backbone, SIZE, seed=0).fit(good, calibration=CalibrationSet(good[:8]))


def assert_parity(model, bundle_dir, images):
    want = model.predict(images)
    got = load_bundle(bundle_dir, threads=2).predict(images)
    np.testing.assert_allclose(got.scores, want.scores, rtol=1e-4)
    np.testing.assert_allclose(got.maps, want.maps, rtol=1e-3, atol=1e-3 * float(np.abs(want.maps).max()))
    th = model.thresholds
    assert th.decide_many(got.scores) == th.decide_many(want.scores)


@pytest.mark.parametrize("kind", ["patchcore", "padim"])
def test_bundle_parity_on_generated_parts(kind, parts, tmp_path):
    model = fitted(kind, parts["good"])
    export_bundle(model, tmp_path / "b")
    # grey, colour, 16-bit and off-size images all go through the same preprocessing
    images = parts["test_good"][:3] + parts["defect"][:3]
    images += [
        np.repeat(parts["defect"][4][:, :, None], 3, axis=2),
        parts["test_good"][5].astype(np.uint16) * 257,
    ]
    assert_parity(model, tmp_path / "b", images)
    # The "SAME" pads were folded into the convolutions; only the map head's reflect pads remain.
    graph = onnx.load(str(tmp_path / "b" / "model.onnx")).graph
    modes = [
        next((a.s for a in n.attribute if a.name == "mode"), b"constant")
        for n in graph.node
        if n.op_type == "Pad"
    ]
    assert modes and set(modes) == {b"reflect"}


@pytest.mark.parametrize("backbone", ["efficientnet_lite1", "efficientnet_lite2"])
def test_bundle_parity_for_the_other_auto_backbones(backbone, parts, tmp_path):
    # `fit` may pick these on validation defects; their bundles must score as they did in training.
    model = fitted("padim", parts["good"], backbone)
    export_bundle(model, tmp_path / "b")
    assert_parity(model, tmp_path / "b", parts["test_good"][:3] + parts["defect"][:3])


@pytest.mark.shared
@pytest.mark.parametrize("kind", ["patchcore", "padim"])
def test_bundle_parity_on_kolektor(kind, tmp_path):
    split = open_dataset(shared_dataset("kolektorsdd"), "kolektor", seed=0)
    good = list(iter_images(split.train[:20]))
    model = fitted(kind, good)
    export_bundle(model, tmp_path / "b")
    test = [s for s in split.test if s.label][:4] + [s for s in split.test if not s.label][:4]
    assert_parity(model, tmp_path / "b", list(iter_images(test)))


def test_bundle_result_and_batch_form(parts, tmp_path):
    model = fitted("padim", parts["good"])
    inspector = load_bundle(export_bundle(model, tmp_path / "b"))
    result = inspector.inspect(parts["defect"][0])
    assert result.anomaly_map.shape == SIZE and np.isfinite(result.score)
    assert result.decision == model.thresholds.decide(result.score)
    assert {"preprocess", "infer", "total"} <= set(result.timings_ms)
    batch = inspector.inspect_batch(parts["defect"][:3])
    assert batch[0].score == pytest.approx(result.score, rel=1e-5)


def test_bundle_refuses_tampering_and_newer_schema(parts, tmp_path):
    model = fitted("padim", parts["good"][:6])
    bundle = export_bundle(model, tmp_path / "b")
    graph = bundle / "model.onnx"
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0x01
    graph.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="sha256 differs"):
        load_bundle(bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["schema_version"] = 99
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match="bundle schema 99 is newer than this LineGuard"):
        load_bundle(bundle)


def test_zipped_bundle_loads_and_bad_archives_are_refused(parts, tmp_path, monkeypatch):
    import tempfile
    import zipfile

    from lineguard.bundle import zip_bundle

    bundle = export_bundle(fitted("padim", parts["good"][:6]), tmp_path / "b")
    archive = zip_bundle(bundle, tmp_path / "b.zip")
    images = parts["defect"][:2]
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    inspector = load_bundle(archive)
    # Nothing unpacked stays behind while it runs: a kill -9 used to leak the unpacked bundle.
    assert list(temp.iterdir()) == []
    np.testing.assert_array_equal(
        inspector.predict(images).scores, load_bundle(bundle).predict(images).scores
    )
    assert inspector.source == archive
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(evil, "w") as dst:
        for name in src.namelist():
            dst.writestr(name, src.read(name))
        dst.writestr("../escape.txt", "x")
    with pytest.raises(ModelFileError, match="plain files only"):
        load_bundle(evil)
    assert not (tmp_path / "escape.txt").exists()
    not_zip = tmp_path / "model.bin"
    not_zip.write_bytes(b"not a bundle")
    with pytest.raises(ModelFileError, match="neither a bundle folder nor a zip"):
        load_bundle(not_zip)


def test_unknown_provider_is_a_clear_error(parts, tmp_path):
    bundle = export_bundle(fitted("padim", parts["good"][:6]), tmp_path / "b")
    with pytest.raises(ModelFileError, match="not available here"):
        load_bundle(bundle, providers=["NoSuchExecutionProvider"])


def test_runtime_runs_without_torch(parts, tmp_path):
    """Load and inspect in a fresh interpreter where importing torch fails."""
    bundle = export_bundle(fitted("padim", parts["good"][:6]), tmp_path / "b")
    np.save(tmp_path / "part.npy", parts["defect"][0])
    code = f"""
import sys
class BlockTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in this test")
sys.meta_path.insert(0, BlockTorch())
import numpy as np
from lineguard.runtime import load_bundle
r = load_bundle({str(bundle)!r}).inspect(np.load({str(tmp_path / "part.npy")!r}))
assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules), "torch was imported"
print(r.decision.value, r.score)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] in {"OK", "REVIEW", "NG"}


def test_runtime_environment_without_torch_installed(parts, tmp_path):
    """In CI, scripts/test.sh installs `lineguard` without extras into a second venv."""
    import os

    python = os.environ.get("LINEGUARD_RUNTIME_PYTHON")
    if not python:
        pytest.skip("LINEGUARD_RUNTIME_PYTHON not set (scripts/test.sh sets it)")
    bundle = export_bundle(fitted("patchcore", parts["good"][:6]), tmp_path / "b")
    image = tmp_path / "part.png"
    import cv2

    cv2.imwrite(str(image), parts["defect"][0])
    no_torch = subprocess.run([python, "-c", "import torch"], capture_output=True, check=False)
    assert no_torch.returncode != 0, "the runtime environment must not have torch"
    out = subprocess.run(
        [python, "-m", "lineguard.cli", "predict", str(bundle), str(image), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    expected = load_bundle(bundle).predict([cv2.imread(str(image), cv2.IMREAD_UNCHANGED)]).scores[0]
    assert record["score"] == pytest.approx(float(expected), rel=1e-5)


@pytest.mark.parametrize("search", ["faiss-flat", "faiss-hnsw"])
def test_faiss_search_bundles(search, parts, tmp_path):
    pytest.importorskip("faiss")
    model = fitted("patchcore", parts["good"])
    bundle = export_bundle(model, tmp_path / "b", search=search)
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["search"]["kind"] == search
    assert manifest["search"]["memory_bank_size"] == model.module.memory_bank.shape[0]
    images = parts["test_good"][:4] + parts["defect"][:4]
    if search == "faiss-flat":  # exact search: the same numbers as the graph
        assert_parity(model, bundle, images)
    else:  # approximate: never closer than the true neighbour, and the same ranking here
        want = model.predict(images).scores
        got = load_bundle(bundle).predict(images).scores
        assert np.all(got >= want * (1 - 1e-4))
        assert list(np.argsort(got)) == list(np.argsort(want))
    result = load_bundle(bundle).inspect(parts["defect"][0])
    assert {"embed", "search", "map"} <= set(result.timings_ms)


def test_faiss_search_is_only_for_patchcore(parts, tmp_path):
    model = fitted("padim", parts["good"][:6])
    with pytest.raises(ValueError, match="PatchCore's memory bank"):
        export_bundle(model, tmp_path / "b", search="faiss-flat")


def test_reference_patchcore_bundle_parity_and_faiss_refused(parts, tmp_path):
    """The paper's re-weighted score (top-k over the bank, gathers) runs in the ONNX graph too."""
    model = PatchCore.reference("efficientnet_lite0", SIZE, seed=0)
    model.fit(parts["good"][:6], calibration=CalibrationSet(parts["good"][:8]))
    export_bundle(model, tmp_path / "b")
    assert_parity(model, tmp_path / "b", parts["test_good"][:3] + parts["defect"][:3])
    with pytest.raises(ValueError, match="only the in-graph search"):
        export_bundle(model, tmp_path / "f", search="faiss-flat")


def test_the_eager_search_blocks_never_reach_the_bundle_graph(parts, tmp_path, monkeypatch):
    """Blocks are for PyTorch's memory; traced into the graph they would fix the batch size."""
    import lineguard.models.layers as layers

    model = fitted("patchcore", parts["good"][:6])
    monkeypatch.setattr(layers, "SEARCH_BLOCK_ELEMENTS", 1)  # every query its own block, in eager
    export_bundle(model, tmp_path / "b")
    assert_parity(model, tmp_path / "b", parts["defect"][:3] + parts["test_good"][:2])
