#!/usr/bin/env bash
# The main job on a real sample: learn good solar cells from the ELPV dataset (installed from
# PyPI), evaluate on held-out cells, export the bundle, then run an inspection station that
# replays 600 held-out cells as a line at 1200 parts/min, records every part and prints a live
# summary. Everything goes under runs/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
set -x
lineguard fit elpv --format elpv --out runs/elpv-model
lineguard evaluate runs/elpv-model elpv --format elpv --out runs/elpv-report
lineguard export runs/elpv-model --out runs/elpv-bundle
# The line: held-out cells (never used in fitting or calibration) in a fixed shuffled order,
# named by their true label.
python - <<'PY'
import random
import shutil
from pathlib import Path
from lineguard.evaluation import split_as_fitted, unseen_test_samples
from lineguard.models import load_model

model = load_model("runs/elpv-model")
line = Path("runs/elpv-line")
shutil.rmtree(line, ignore_errors=True)
line.mkdir(parents=True)
split = split_as_fitted(model.metadata, "elpv", "elpv")
cells = unseen_test_samples(split, model.metadata)
random.Random(0).shuffle(cells)
for i, sample in enumerate(cells):
    shutil.copy(sample.path, line / f"{i:04d}_{'defect' if sample.label else 'good'}{sample.path.suffix}")
PY
rm -rf runs/elpv-station
lineguard run examples/elpv-station.yaml
