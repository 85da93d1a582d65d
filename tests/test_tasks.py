"""The task registry: every entry resolves, lookups name what they could not find, and a new
kind plugs in as one entry (the example of docs/tasks.md, run for real)."""

from __future__ import annotations

import json
import shutil
from typing import Literal

import numpy as np
import pytest

from lineguard.errors import ModelFileError
from lineguard.runtime import load_bundle
from lineguard.runtime.inspector import BundleRuntime, InspectionResult
from lineguard.runtime.manifest import BundleManifest, _manifest_adapter
from lineguard.tasks import TASKS, TaskSpec, get_task
from lineguard.train.config import AnomalyConfig

TORCH_FREE = ("runtime", "evaluator")
TORCH_SIDE = ("model", "exporter")


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_entry_resolves_and_names_its_own_task(name):
    spec = TASKS[name]
    assert spec.manifest.model_fields["task"].default == name
    for role in (*TORCH_FREE, *TORCH_SIDE):
        assert callable(spec.resolve(role)), role
    model = spec.resolve("model")
    assert model.task == name
    assert spec.label_formats


def test_an_unknown_task_is_refused_by_name():
    with pytest.raises(ModelFileError, match=r"b/manifest.json: task 'weld' is not known .*known: anomaly"):
        get_task("weld", "b/manifest.json")
    with pytest.raises(ValueError, match="--format elpv: detect models read voc, coco, yolo"):
        get_task("detect").check_format("elpv")


# -- a new kind: its manifest, its runtime and one registry entry -------------------------------


class GaugeManifest(BundleManifest):
    task: Literal["gauge"] = "gauge"
    unit: str


class GaugeRuntime(BundleRuntime):
    """Reads the anomaly graph's score as a gauge value in the manifest's unit."""

    def _configure(self, bundle, threads) -> None:
        self.unit = self.manifest.unit
        self.output_name = self.graph.outputs["score"]

    def inspect(self, image: np.ndarray) -> InspectionResult:
        batch = self.preprocessing.resized_rgb(image)[None].astype(np.float32)
        (score,) = self.session.run([self.output_name], {self.input_name: batch})
        value = float(score[0])
        return InspectionResult(value, self.thresholds.decide(value), None, label=self.unit)


@pytest.fixture
def gauge_task(monkeypatch):
    spec = TaskSpec(
        "gauge",
        "a reading in a unit",
        GaugeManifest,
        runtime="test_tasks:GaugeRuntime",
        evaluator="lineguard.evaluation.anomaly:evaluate_on_data",
        model="lineguard.models.base:AnomalyModel",
        exporter="lineguard.bundle.export:export_anomaly_bundle",
        label_formats=("folder",),
        config=AnomalyConfig,
        trainer="lineguard.train.fit:train_anomaly",
    )
    monkeypatch.setitem(TASKS, "gauge", spec)
    _manifest_adapter.cache_clear()
    yield spec
    monkeypatch.delitem(TASKS, "gauge")
    _manifest_adapter.cache_clear()


def test_a_new_kind_is_one_registry_entry(gauge_task, station_bundle, parts, tmp_path):
    bundle = shutil.copytree(station_bundle, tmp_path / "gauge")
    doc = json.loads((bundle / "manifest.json").read_text())
    kept = ("format", "schema_version", "model", "preprocessing", "graph", "decision", "provenance", "files")
    doc = {key: doc[key] for key in kept} | {"task": "gauge", "unit": "mm"}
    (bundle / "manifest.json").write_text(json.dumps(doc))
    gauge = load_bundle(bundle)
    assert isinstance(gauge, GaugeRuntime) and gauge.task == "gauge" and gauge.unit == "mm"
    reading = gauge.inspect(parts["defect"][0])
    assert reading.label == "mm"
    assert reading.score == pytest.approx(
        load_bundle(station_bundle).inspect(parts["defect"][0]).score, rel=1e-5
    )
    del doc["unit"]
    (bundle / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(ModelFileError, match=r"gauge.unit: Field required"):
        load_bundle(bundle)


def test_every_tool_kind_resolves_and_a_new_one_is_its_file_plus_one_entry(tmp_path, monkeypatch) -> None:
    """The docs' smallest tool (docs/tasks.md), written to a package of its own, runs through
    build_tool once its one TOOLS line is there."""
    import re
    import sys
    from pathlib import Path

    import cv2

    from lineguard.tools import config
    from lineguard.tools.checks import build_tool

    for kind, entry in config.TOOLS.items():
        assert config.resolve(entry.settings).model_fields["kind"].annotation == Literal[kind]
        assert callable(config.resolve(entry.tool).build)
    page = (Path(__file__).resolve().parents[1] / "docs" / "tasks.md").read_text()
    section = page.split("## Adding a tool (check) kind", 1)[1]
    module, entry = re.findall(r"```python\n(.*?)```", section, re.S)
    (tmp_path / "mypackage").mkdir()
    (tmp_path / "mypackage" / "__init__.py").write_text("")
    (tmp_path / "mypackage" / "edges.py").write_text(module)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "mypackage", raising=False)
    line = eval("{" + entry.strip().rstrip(",") + "}", {"ToolKind": config.ToolKind})  # the docs' one line
    monkeypatch.setitem(config.TOOLS, "edges", line["edges"])
    settings = config.resolve(line["edges"].settings)(kind="edges", start=(5, 20), end=(95, 20), expect=2)
    tool = build_tool(settings, None)
    image = np.full((40, 100), 60, np.uint8)
    cv2.rectangle(image, (30, 0), (70, 39), 200, -1)  # two edges across the line
    assert tool.run(image).decision.value == "OK"
    assert tool.run(np.full((40, 100), 60, np.uint8)).decision.value == "NG"
