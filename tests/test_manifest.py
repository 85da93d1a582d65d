"""The typed bundle manifest: schema 1 bundles upgrade without a value changing, edits that
break the document are refused by key, and the published JSON Schema is the code's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lineguard.errors import ModelFileError
from lineguard.runtime.manifest import (
    AnomalyManifest,
    ClassifyManifest,
    manifest_json_schema,
    parse_manifest,
)

V1 = Path(__file__).parent / "data" / "manifest_v1"  # written by LineGuard before the typed manifest
SCHEMA = Path(__file__).parents[1] / "docs" / "bundle-manifest.schema.json"


def v1(name: str) -> dict:
    return json.loads((V1 / f"{name}.json").read_text())


def test_schema_1_anomaly_manifests_upgrade_value_for_value():
    for name in ("padim", "patchcore-tiled-faiss"):
        old = v1(name)
        new = parse_manifest(old, name)
        assert isinstance(new, AnomalyManifest) and new.schema_version == 2
        assert new.decision.thresholds.to_dict() == old["calibration"]["thresholds"]
        assert new.decision.calibration.to_dict() == {
            **old["calibration"],
            "warnings": old["calibration"]["warnings"],
        }
        pre = old["preprocessing"]
        assert (new.preprocessing.height, new.preprocessing.width) == (pre["height"], pre["width"])
        assert list(new.preprocessing.mean) == pre["mean"] and list(new.preprocessing.std) == pre["std"]
        assert new.graph.file == old["graph"]["file"] and new.graph.outputs == old["graph"]["outputs"]
        assert {k: v.sha256 for k, v in new.files.items()} == {
            k: v["sha256"] for k, v in old["files"].items()
        }
        assert new.model.kind == old["model"]["kind"] and new.provenance.created == old["created"]
        assert new.provenance.training == old["metadata"]
    tiled = parse_manifest(v1("patchcore-tiled-faiss"), "tiled")
    old_tiling = v1("patchcore-tiled-faiss")["tiling"]
    assert tiled.part_top_k == old_tiling["part_top_k"] and tiled.tiling.overlap == old_tiling["overlap"]
    assert tiled.search.kind == "faiss-flat" and tiled.search.memory_bank_file == "memory_bank.safetensors"
    assert tiled.bundle_files() == ["model.onnx", "head.onnx", "memory_bank.safetensors"]


def test_schema_1_classifier_manifest_upgrades_value_for_value():
    old = v1("classify")
    new = parse_manifest(old, "classify")
    assert isinstance(new, ClassifyManifest)
    assert new.decision.thresholds.to_dict() == old["decision"]["thresholds"]
    assert list(new.decision.good_classes) == old["decision"]["good_classes"]
    assert list(new.classes) == old["classes"] and new.temperature == old["temperature"]


def test_a_broken_manifest_is_refused_naming_the_key():
    doc = v1("padim")
    doc["calibration"]["thresholds"] = {"review": 5.0, "ng": 1.0}
    with pytest.raises(
        ModelFileError, match=r"m.json: not a valid bundle manifest \(anomaly.decision.thresholds"
    ):
        parse_manifest(doc, "m.json")
    doc = json.loads(parse_manifest(v1("padim"), "x").model_dump_json())
    doc["graph"]["precison"] = "int8"  # misspelt: silently ignored, the bundle would run fp32
    with pytest.raises(ModelFileError, match=r"anomaly.graph.precison: Extra inputs are not permitted"):
        parse_manifest(doc, "m.json")
    doc = json.loads(parse_manifest(v1("padim"), "x").model_dump_json())
    doc["decision"]["thresholds"]["ng"] = 1e9  # raised without the calibration that set it
    with pytest.raises(
        ModelFileError, match=r"decision\.thresholds differ from the ones decision\.calibration set"
    ):
        parse_manifest(doc, "m.json")
    doc = json.loads(parse_manifest(v1("padim"), "x").model_dump_json())
    del doc["files"]["model.onnx"]
    with pytest.raises(ModelFileError, match=r"model\.onnx is used by the bundle but not listed under files"):
        parse_manifest(doc, "m.json")
    doc["task"] = "weld-seam"
    with pytest.raises(ModelFileError, match="does not match any of the expected tags"):
        parse_manifest(doc, "m.json")


def test_a_manifest_round_trips_and_the_published_schema_is_the_codes():
    for name in ("padim", "patchcore-tiled-faiss", "classify"):
        manifest = parse_manifest(v1(name), name)
        assert parse_manifest(json.loads(manifest.model_dump_json()), name) == manifest
    # regenerate: python -c "import json; from lineguard.runtime.manifest import manifest_json_schema as s;
    # print(json.dumps(s(), indent=2))" > docs/bundle-manifest.schema.json
    assert json.loads(SCHEMA.read_text()) == manifest_json_schema()
