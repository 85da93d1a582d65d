#!/usr/bin/env bash
# The main job on a real sample: learn good solar cells from the ELPV dataset
# (installed from PyPI), evaluate on held-out good and defective cells, and
# decide a few parts. Writes everything under runs/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
set -x
lineguard fit elpv --format elpv --out runs/elpv-model
lineguard evaluate runs/elpv-model elpv --format elpv --out runs/elpv-report
# Decide four held-out cells (never used in fitting): two rated good, two defective.
CELLS="$(python -c '
from lineguard.data import open_dataset
test = open_dataset("elpv", "elpv").test
good = [s.path for s in test if not s.label][:2]
bad = [s.path for s in test if s.label][:2]
print(" ".join(map(str, good + bad)))')"
lineguard predict runs/elpv-model $CELLS
