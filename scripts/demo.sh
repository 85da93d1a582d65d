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
ELPV="$(python -c 'from lineguard.data.readers import elpv_root; print(elpv_root())')"
# cell0004 and cell0009 are rated defect-free, cell0001 and cell0002 defective.
lineguard predict runs/elpv-model "$ELPV/images/cell0004.png" "$ELPV/images/cell0009.png" \
    "$ELPV/images/cell0001.png" "$ELPV/images/cell0002.png"
