"""The training side's workflows: one ``train(task, data, format, out, config)`` for every task.

Imported lazily (PEP 562), so ``lineguard.train.config`` — the typed settings the command line
validates and shows in its help — loads without PyTorch.
"""

from __future__ import annotations

from lineguard.lazy import lazy_exports

_EXPORTS = {
    "Candidate": "lineguard.train.fit",
    "auto_image_size": "lineguard.train.fit",
    "build_candidate": "lineguard.train.fit",
    "candidate_configs": "lineguard.train.fit",
    "fit_anomaly_model": "lineguard.train.fit",
    "native_size": "lineguard.train.fit",
    "select_anomaly_model": "lineguard.train.fit",
    "Trained": "lineguard.train.workflow",
    "TrainingHooks": "lineguard.train.workflow",
    "train": "lineguard.train.workflow",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
