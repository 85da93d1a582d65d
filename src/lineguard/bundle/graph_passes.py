"""Rewrites of exported ONNX graphs that keep their outputs and make them cheaper to run."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np


def fold_constants(path: Path) -> None:
    """Fold the shape arithmetic the torch exporter leaves (e.g. for pad sizes) into constants.

    ONNX Runtime's basic level only evaluates constant subgraphs and drops no-op
    nodes: standard ONNX in, standard ONNX out, the same numbers.
    """
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        folded = Path(tmp) / "folded.onnx"
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(folded)
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        folded.replace(path)


def fold_pads_into_convs(path: Path) -> int:
    """Merge each zero Pad that only feeds convolutions into their own ``pads``.

    TensorFlow's "SAME" padding pads one pixel more at the bottom/right of
    stride-2 convolutions; torch cannot say that in a Conv, so it exports a
    separate Pad, which costs a full copy of the feature map. ONNX's Conv takes
    asymmetric pads directly. Returns the number of Pads removed.
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    graph_outputs = {o.name for o in graph.output}
    removed = []
    for pad in graph.node:
        if pad.op_type != "Pad" or pad.output[0] in graph_outputs:
            continue
        mode = next((a.s for a in pad.attribute if a.name == "mode"), b"constant")
        if mode != b"constant" or len(pad.input) < 2 or pad.input[1] not in initializers:
            continue
        if len(pad.input) > 2 and pad.input[2]:
            value = initializers.get(pad.input[2])
            if value is None or np.any(numpy_helper.to_array(value) != 0):
                continue
        if len(pad.input) > 3 and pad.input[3]:  # explicit axes: leave alone
            continue
        pads = numpy_helper.to_array(initializers[pad.input[1]]).astype(np.int64)
        users = consumers.get(pad.output[0], [])
        if len(pads) != 8 or pads[[0, 1, 4, 5]].any() or (pads < 0).any() or not users:
            continue
        if any(u.op_type != "Conv" or u.input[0] != pad.output[0] for u in users):
            continue
        if any(a.name == "auto_pad" and a.s not in (b"", b"NOTSET") for u in users for a in u.attribute):
            continue
        for conv in users:
            own = next((list(a.ints) for a in conv.attribute if a.name == "pads"), [0, 0, 0, 0])
            merged = [own[0] + pads[2], own[1] + pads[3], own[2] + pads[6], own[3] + pads[7]]
            kept = [a for a in conv.attribute if a.name != "pads"]
            del conv.attribute[:]
            conv.attribute.extend([*kept, onnx.helper.make_attribute("pads", [int(p) for p in merged])])
            conv.input[0] = pad.input[0]
        removed.append(pad)
    for pad in removed:
        graph.node.remove(pad)
    used = {name for node in graph.node for name in node.input}
    for tensor in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(tensor)
    if removed:
        onnx.checker.check_model(model)
        onnx.save(model, str(path))
    return len(removed)
